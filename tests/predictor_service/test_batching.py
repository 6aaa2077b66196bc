"""Micro-batching: each caller gets its own answer, in order, with errors kept to itself."""

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from predictor_service import create_app
from predictor_service.batching import MicroBatcher
from tests.support import ROOT, in_forked_child, wait_until


class SlowModel:
    """A stand-in model: upper-cases texts, slowly, and remembers each call's size."""

    def __init__(self, delay=0.05, poison="poison"):
        self.delay, self.poison, self.calls = delay, poison, []
        self.lock = threading.Lock()

    def __call__(self, texts):
        with self.lock:
            self.calls.append(len(texts))
        time.sleep(self.delay)
        if self.poison in texts:
            raise ValueError("the model cannot take this input")
        return [text.upper() for text in texts]


def submit_concurrently(batcher, requests):
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        futures = [pool.submit(batcher.predict, texts) for texts in requests]
        return [future.exception() or future.result() for future in futures]


def test_concurrent_callers_share_model_calls_and_each_gets_its_own_answer():
    model = SlowModel()
    batcher = MicroBatcher(model, max_texts=64)
    requests = [[f"text {n}"] for n in range(20)] + [["a", "b", "c"], ["d", "e"]]

    answers = submit_concurrently(batcher, requests)

    assert answers == [[text.upper() for text in texts] for texts in requests]
    assert sum(model.calls) == 25
    assert len(model.calls) < len(requests)  # some calls served several requests


def test_an_input_that_breaks_the_model_fails_only_its_own_request():
    model = SlowModel()
    batcher = MicroBatcher(model, max_texts=64)
    requests = [["one"], ["poison"], ["two", "three"], ["four"]]
    # Hold the batcher busy so that the four requests queue up into one batch.
    blocker = threading.Thread(target=batcher.predict, args=(["first"],))
    blocker.start()
    time.sleep(0.01)

    answers = submit_concurrently(batcher, requests)
    blocker.join()

    assert answers[0] == ["ONE"]
    assert isinstance(answers[1], ValueError)
    assert answers[2] == ["TWO", "THREE"]
    assert answers[3] == ["FOUR"]


def test_batches_never_exceed_the_maximum_size_but_a_large_request_is_taken_whole():
    model = SlowModel(delay=0.02)
    batcher = MicroBatcher(model, max_texts=4)

    answers = submit_concurrently(batcher, [["x"]] * 12 + [["y"] * 10])

    assert answers[-1] == ["Y"] * 10
    assert all(size <= 4 for size in model.calls if size != 10)


def test_a_lone_request_is_not_held_back():
    # A wait of an hour: had the batcher waited for company, these would time out.
    model = SlowModel(delay=0)
    batcher = MicroBatcher(model, max_texts=64, max_wait=3600)

    for n in range(3):
        assert batcher.predict([f"alone {n}"], timeout=30) == [f"ALONE {n}"]
    assert model.calls == [1, 1, 1]


def test_a_request_to_an_idle_worker_is_computed_on_its_own_thread():
    threads = []

    def model(texts):
        threads.append(threading.get_ident())
        return [text.upper() for text in texts]

    batcher = MicroBatcher(model, max_wait=3600)

    assert batcher.predict(["alone"]) == ["ALONE"]
    # No hand-off to the batching thread, and none of its wait for company.
    assert threads == [threading.get_ident()]
    assert batcher.handed == 0


def test_while_the_model_runs_on_a_requests_thread_the_others_queue_and_share_a_call():
    calls, running, gate = [], threading.Event(), threading.Event()

    def held_model(texts):
        calls.append((threading.get_ident(), texts))
        if len(calls) == 1:
            running.set()
            gate.wait(30)
        return [text.upper() for text in texts]

    batcher = MicroBatcher(held_model, max_wait=0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(lambda: (threading.get_ident(), batcher.predict(["first"])))
        assert running.wait(30)
        queued = [pool.submit(batcher.predict, [f"q{n}"]) for n in range(3)]
        wait_until(lambda: batcher.handed == 3, what="three requests queued")
        gate.set()
        caller, answer = first.result(30)
        assert answer == ["FIRST"]
        assert [f.result(30) for f in queued] == [["Q0"], ["Q1"], ["Q2"]]

    assert calls[0] == (caller, ["first"])  # on its own thread
    assert [texts for _, texts in calls[1:]] == [["q0", "q1", "q2"]]  # one call for the rest


def test_under_load_a_batch_waits_for_as_many_requests_as_the_previous_one_held():
    model = SlowModel(delay=0)
    running, gate = threading.Event(), threading.Event()

    def held_model(texts):
        running.set()
        gate.wait(30)
        return model(texts)

    batcher = MicroBatcher(held_model, max_wait=3600)
    with ThreadPoolExecutor(max_workers=4) as pool:
        # The first call holds the model while three requests queue up behind it.
        first = pool.submit(batcher.predict, ["first"])
        assert running.wait(30)
        queued = [pool.submit(batcher.predict, [f"q{n}"]) for n in range(3)]
        wait_until(lambda: batcher.handed == 3, what="three requests queued")
        gate.set()
        assert [f.result(30) for f in [first, *queued]] == [["FIRST"], ["Q0"], ["Q1"], ["Q2"]]
        # Under load now (the last batch held 3): the next batch waits for 3 to join it,
        # however far apart they come.
        late = []
        for n in range(3):
            late.append(pool.submit(batcher.predict, [f"late{n}"]))
            time.sleep(0.1)
        assert [f.result(30) for f in late] == [["LATE0"], ["LATE1"], ["LATE2"]]

    assert model.calls == [1, 3, 3]


def test_the_lightest_waiting_request_goes_first():
    calls = []
    running, gate = threading.Event(), threading.Event()

    def held_model(texts):
        running.set()
        gate.wait(30)
        calls.append(texts)
        return [text.upper() for text in texts]

    # Batches of one request each (max_texts 2, two texts per heavy request).
    batcher = MicroBatcher(held_model, max_texts=2, max_wait=0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(batcher.predict, ["under way"])
        assert running.wait(30)
        heavy = [pool.submit(batcher.predict, ["h" * 10_000, f"heavy {n}"]) for n in range(2)]
        wait_until(lambda: batcher.handed == 2, what="two heavy requests queued")
        light = pool.submit(batcher.predict, ["my cat", "my dog"])
        wait_until(lambda: batcher.handed == 3, what="the light one queued")
        gate.set()
        for future in [first, light, *heavy]:
            future.result(30)

    assert calls[1] == ["my cat", "my dog"]  # before the two heavy ones, queued earlier
    assert [texts[1] for texts in calls[2:]] == ["heavy 0", "heavy 1"]


def test_a_heavy_request_is_computed_in_parts_with_lighter_ones_in_between():
    calls = []
    light = {}

    def model(texts):
        calls.append(texts)
        if len(calls) == 1:  # the heavy request's first part: a light one comes meanwhile
            light["future"] = pool.submit(batcher.predict, ["my cat"])
            # The heavy one's rest is back in line only once this part is done.
            wait_until(lambda: batcher._queue.qsize() == 1, what="the light one queued")
        return [text[:3].upper() for text in texts]

    batcher = MicroBatcher(model, max_texts=64, max_wait=0, max_chars=25)
    with ThreadPoolExecutor(max_workers=2) as pool:
        heavy = batcher.predict(["a" * 10, "b" * 10, "c" * 10, "d" * 30, "e" * 5])
        assert light["future"].result(30) == ["MY "]

    assert heavy == ["AAA", "BBB", "CCC", "DDD", "EEE"]  # every answer, in order
    # Parts of at most 25 characters (a longer text alone), the light one second.
    assert [len("".join(texts)) for texts in calls] == [20, 6, 10, 30, 5]
    assert calls[1] == ["my cat"]


@pytest.mark.parametrize("batching", [True, False])
def test_the_app_answers_concurrent_requests_each_with_its_own_prediction(batching, holder_of):
    app = create_app({"TESTING": True, "BATCHING": batching})
    holder = holder_of(app)
    assert holder.wait(timeout=60)
    texts = ["cat image data", "goldfish in a tank", "my puppy fetches", "a canary sings",
             "bunny eats hay", "x" * 500] * 5

    def ask(text):
        response = app.test_client().post("/predict", json={"input": text})
        return response.get_json()["prediction"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(ask, texts))

    expected = [holder.model.predict([text])[0] for text in texts]
    assert [(a["class"], a["confidence"], a["input_length"]) for a in answers] == [
        (p.label, p.confidence, p.input_length) for p in expected
    ]


def test_a_forked_process_gets_a_batching_thread_of_its_own():
    batcher = MicroBatcher(SlowModel(delay=0), max_texts=8)

    # The child's inherited batcher has no thread until it starts one.
    assert in_forked_child(lambda: batcher.predict(["child"], timeout=10)[0]) == "CHILD"
    assert batcher.predict(["parent"]) == ["PARENT"]


# Run in an interpreter of its own: gevent patches the standard library for good.
ON_GREENLETS = """
from gevent import monkey
monkey.patch_all()  # as gunicorn's gevent worker does before it loads the app
import json
import gevent
from predictor_service.batching import MicroBatcher

calls = []
def model(texts):  # computes without yielding, as the model does
    calls.append(len(texts))
    return [text.upper() for text in texts]

batcher = MicroBatcher(model, max_texts=64)
lone = batcher.predict(["alone"])
lone_calls = list(calls)
calls.clear()
requests = [gevent.spawn(batcher.predict, [f"text {n}"]) for n in range(20)]
gevent.joinall(requests, raise_error=True)
print(json.dumps({"lone": lone, "lone_calls": lone_calls, "calls": calls,
                  "answers": [request.value for request in requests]}))
"""


def test_on_greenlets_the_requests_a_worker_has_read_share_one_model_call():
    # Greenlets take turns: each computed on its own, as on an idle thread, none would
    # ever overlap another, and every model call would hold one text.
    run = subprocess.run([sys.executable, "-c", ON_GREENLETS], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    result = json.loads(run.stdout)
    assert (result["lone"], result["lone_calls"]) == (["ALONE"], [1])
    assert result["answers"] == [[f"TEXT {n}"] for n in range(20)]
    assert result["calls"] == [20]
