"""The forward batcher: forwards at once up to its limit, those that wait in batches."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from logger_service.batching import Forward, ForwardBatcher
from logger_service.client import get_predictor_client
from logger_service.errors import PredictorUnavailable
from logger_service.store import get_store
from tests.support import assert_error, serve, wait_until


def forward_of(text, request_id=None, client_id=None, within=10):
    """A Forward due within this many seconds."""
    return Forward(text, request_id or f"request-{text}", time.monotonic() + within, client_id)


class HeldPool:
    """A send() that records each call's texts and holds the first until released."""

    def __init__(self, fail_with=None):
        self.calls, self.fail_with = [], fail_with
        self.released = threading.Event()

    def __call__(self, forwards):
        self.calls.append([forward.text for forward in forwards])
        if len(self.calls) == 1:
            assert self.released.wait(10)
        if self.fail_with and len(forwards) > 1:
            raise self.fail_with
        return [f"answer to {forward.text}" for forward in forwards]


def behind_a_held_one(send, count, held, batcher):
    """Call send(0) and wait until it is held; call send(1) to send(count - 1) and wait
    until they all wait in batcher; release the first; return each call's result."""
    with ThreadPoolExecutor(count) as threads:
        first = threads.submit(send, 0)
        wait_until(lambda: held.calls, what="the first call")
        rest = [threads.submit(send, index) for index in range(1, count)]
        wait_until(lambda: batcher.waiting == count - 1, what="the others waiting")
        held.released.set()
        return [first.result(), *(future.result() for future in rest)]


def forwards_behind_a_held_one(batcher, pool, texts):
    """Forward texts, the first held at the pool and the others queued behind it; return
    each text's answer or error, in order."""

    def send(index):
        try:
            return batcher.forward(forward_of(texts[index], f"request-{index}"))
        except Exception as exc:  # the test looks at it
            return exc

    return behind_a_held_one(send, len(texts), pool, batcher)


def batcher_for(pool, max_in_flight=1, max_texts=32, max_chars=200_000):
    return ForwardBatcher(pool, max_in_flight, max_texts, max_chars)


def test_forwards_go_alone_while_fewer_than_the_limit_are_out():
    pool = HeldPool()
    pool.released.set()
    batcher = batcher_for(pool, max_in_flight=4)

    answers = [batcher.forward(forward_of(text)) for text in ("a", "b", "c")]

    assert answers == ["answer to a", "answer to b", "answer to c"]
    assert pool.calls == [["a"], ["b"], ["c"]]
    assert batcher.waiting == 0


def test_forwards_that_wait_go_together_and_each_gets_its_own_answer():
    pool = HeldPool()
    texts = [f"text {n}" for n in range(6)]

    answers = forwards_behind_a_held_one(batcher_for(pool), pool, texts)

    assert answers == [f"answer to {text}" for text in texts]
    assert pool.calls[0] == ["text 0"]
    assert len(pool.calls) == 2 and sorted(pool.calls[1]) == texts[1:]


def test_one_clients_waiting_forwards_never_hold_another_clients_back():
    pool = HeldPool()
    batcher = batcher_for(pool)
    with ThreadPoolExecutor(3) as threads:
        first = threads.submit(batcher.forward, forward_of("a0", client_id="a"))
        wait_until(lambda: pool.calls, what="the first call")
        queued = [threads.submit(batcher.forward, forward_of(text, client_id="a"))
                  for text in ("a1", "a2")]
        wait_until(lambda: batcher.waiting == 2, what="client a's others waiting")

        # Client a's call is held and two of its forwards wait: client b's goes at once.
        assert batcher.forward(forward_of("b1", client_id="b")) == "answer to b1"

        pool.released.set()
        assert [future.result() for future in (first, *queued)] == [
            "answer to a0", "answer to a1", "answer to a2"]
    assert pool.calls[1] == ["b1"] and sorted(pool.calls[2]) == ["a1", "a2"]


@pytest.mark.parametrize("limits, most_texts", [
    ({"max_texts": 2}, 2),
    ({"max_chars": 10}, 2),  # texts of 5 characters
    ({"max_chars": 3}, 1),  # a text over the limit still goes, alone
])
def test_a_batch_stays_within_its_limits(limits, most_texts):
    pool = HeldPool()
    texts = [f"txt-{n}" for n in range(7)]

    answers = forwards_behind_a_held_one(batcher_for(pool, **limits), pool, texts)

    assert answers == [f"answer to {text}" for text in texts]
    assert max(map(len, pool.calls[1:])) == most_texts
    assert sorted(text for call in pool.calls for text in call) == texts


@pytest.mark.parametrize("error", [PredictorUnavailable("it answered 503"), RuntimeError("a bug")])
def test_a_failed_batch_fails_each_of_its_forwards_and_the_next_still_goes(error):
    pool = HeldPool(fail_with=error)
    batcher = batcher_for(pool)
    texts = ["first", "b", "c"]

    answers = forwards_behind_a_held_one(batcher, pool, texts)

    assert answers[0] == "answer to first"
    assert answers[1:] == [error, error]
    pool.fail_with = None
    assert batcher.forward(forward_of("after")) == "answer to after"
    assert batcher.waiting == 0


def test_a_forward_still_waiting_at_its_deadline_fails_and_is_never_sent():
    pool = HeldPool()
    batcher = batcher_for(pool)
    with ThreadPoolExecutor(1) as threads:
        first = threads.submit(batcher.forward, forward_of("first"))
        wait_until(lambda: pool.calls, what="the first call")

        with pytest.raises(PredictorUnavailable, match="no forward could go out in time"):
            batcher.forward(forward_of("late", within=0.2))

        assert batcher.waiting == 0
        pool.released.set()
        assert first.result() == "answer to first"
    assert pool.calls == [["first"]]
    # Its place was handed back: the next forward goes at once.
    assert batcher.forward(forward_of("next")) == "answer to next"


# Through the app: what the predictor pool sees, and what each client gets and each record holds.

MODEL = {"name": "pet-text-classifier", "version": "1.0.0"}


def single_answer(text):
    return {"prediction": {"class": "cat", "confidence": 0.5, "input_length": len(text)},
            "message": f"about {text}", "model": MODEL}


def client_of(app):
    with app.app_context():
        return get_predictor_client()


@pytest.fixture(params=[False, True], ids=["answered", "short"])
def pool(request):
    """A predictor pool that answers as /predict does, one text or a batch, holding its
    first call until released; short: a batch's answer has one prediction too few."""
    pool = SimpleNamespace(short=request.param, calls=[], released=threading.Event())

    def answer(headers, body):
        body = json.loads(body)
        pool.calls.append((headers, body))
        if len(pool.calls) == 1:
            pool.released.wait(10)
        if "input" in body:
            return json.dumps(single_answer(body["input"]))
        answers = [single_answer(text) for text in body["inputs"]]
        answers = answers[:-1] if pool.short else answers
        return json.dumps({"predictions": [answer["prediction"] for answer in answers],
                           "messages": [answer["message"] for answer in answers],
                           "model": MODEL})

    server = serve(200, answer)
    pool.url = f"http://127.0.0.1:{server.server_port}/predict"
    yield pool
    pool.released.set()
    server.shutdown()
    server.server_close()


def test_forwards_that_wait_reach_the_pool_as_one_batch_and_each_is_recorded(make_app, pool):
    app = make_app(PREDICTOR_URL=pool.url, PREDICTOR_READ_TIMEOUT=10, FORWARDS_IN_FLIGHT=1)
    texts = [f"my cat number {n} purrs" for n in range(6)]

    def process(index):
        return app.test_client().post(
            "/process", json={"data": texts[index], "forward_to_model": True},
            headers={"X-Request-ID": f"batched-{index}", "X-Client-Id": "acme"})

    responses = behind_a_held_one(process, len(texts), pool, client_of(app).batcher)

    (_, first), (headers, batch) = pool.calls
    assert first == {"input": texts[0]}
    request_ids = headers["X-Batch-Request-IDs"].split()
    assert sorted(request_ids) == [f"batched-{n}" for n in range(1, 6)]
    assert headers["X-Request-ID"] == request_ids[0] and headers["X-Client-Id"] == "acme"
    assert batch == {"inputs": [texts[int(request_id[-1])] for request_id in request_ids]}
    with app.app_context():
        records = {record["request_id"]: record for record in get_store().page(limit=10)}
    assert responses[0].get_json()["model_prediction"] == single_answer(texts[0])
    for index, response in enumerate(responses[1:], start=1):
        record = records[f"batched-{index}"]
        assert record["data"] == texts[index]
        if pool.short:
            assert_error(response, 502, "did not answer a batch of 5 with 5 predictions")
            assert (record["outcome"], record["prediction"]) == ("predictor_error", None)
        else:
            assert response.status_code == 200
            assert response.get_json()["model_prediction"] == single_answer(texts[index])
            assert (record["outcome"], record["prediction"]) == (
                "predicted", single_answer(texts[index]))
