"""Shadow traffic at the logger: a mirrored prediction is taken at once, and the
candidate's answer (or why there is none) recorded beside production's."""

import socket
import threading

import pytest

from logger_service.shadow import ShadowRecorder
from logger_service.store import get_store
from tests.support import free_port, wait_until


@pytest.fixture
def hung_candidate():
    """A port that takes connections and never answers: a hung candidate."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/predict"


def shadows_of(app, request_id):
    with app.app_context():
        _, shadows = get_store().latest_predictions(limit=1000)
    return [(outcome, prediction) for shadow_of, outcome, prediction, _ in reversed(shadows)
            if shadow_of == request_id]


def test_a_mirrored_prediction_is_taken_and_the_candidates_answer_recorded(make_app,
                                                                            candidate_server):
    app = make_app(SHADOW_URL=f"{candidate_server.url}/predict")

    response = app.test_client().post("/shadow", json={"input": "my cat purrs"},
                                      headers={"X-Request-ID": "shadowed-1"})

    assert response.status_code == 202
    assert response.get_json() == {"status": "queued"}
    wait_until(lambda: shadows_of(app, "shadowed-1"), what="the shadow's record")
    [(outcome, prediction)] = shadows_of(app, "shadowed-1")
    assert outcome == "predicted"
    assert prediction["model"]["version"] == "1.1.0"
    assert prediction["prediction"]["class"] == "cat"


def test_a_hung_candidate_delays_no_answer_and_is_recorded_as_unavailable(make_app,
                                                                         hung_candidate):
    app = make_app(SHADOW_URL=hung_candidate, SHADOW_READ_TIMEOUT=0.5)
    client = app.test_client()

    answers = [client.post("/shadow", json={"input": f"a dog {n}"},
                           headers={"X-Request-ID": f"hung-{n}"}) for n in range(3)]

    # Answered while the candidate still holds every one of them.
    assert [answer.status_code for answer in answers] == [202] * 3
    assert all(shadows_of(app, f"hung-{n}") == [] for n in range(3))
    wait_until(lambda: all(shadows_of(app, f"hung-{n}") for n in range(3)))
    assert {outcome for n in range(3) for outcome, _ in shadows_of(app, f"hung-{n}")} == {
        "unavailable"}


def test_a_stopped_candidate_is_recorded_as_unavailable(make_app):
    app = make_app(SHADOW_URL=f"http://127.0.0.1:{free_port()}/predict")

    app.test_client().post("/shadow", json={"input": "a bird"}, headers={"X-Request-ID": "gone"})

    wait_until(lambda: shadows_of(app, "gone"))
    assert shadows_of(app, "gone") == [("unavailable", None)]


def test_without_a_candidate_the_shadow_says_so(make_app, predictor_server):
    app = make_app(SHADOW_URL=f"{predictor_server.url}/predict")  # production only

    app.test_client().post("/shadow", json={"input": "a fish"}, headers={"X-Request-ID": "none"})

    wait_until(lambda: shadows_of(app, "none"))
    assert shadows_of(app, "none") == [("no_candidate", None)]


@pytest.mark.parametrize("body, request_ids", [
    ({"inputs": ["a cat", "a dog"]}, None),  # a client's batch
    ({"inputs": ["a cat", "a dog"]}, "only-one"),
    ({"inputs": ["a cat", "a dog"]}, "one not/sane"),
    ({}, None),
    ({"inputs": []}, ""),
])
def test_a_batch_without_an_id_for_each_text_is_not_shadowed(make_app, hung_candidate, body,
                                                              request_ids):
    headers = {} if request_ids is None else {"X-Batch-Request-IDs": request_ids}
    response = make_app(SHADOW_URL=hung_candidate).test_client().post(
        "/shadow", json=body, headers=headers)

    assert response.status_code == 202
    assert response.get_json() == {"status": "skipped"}


def test_a_batch_of_the_loggers_forwards_is_shadowed_under_each_request_id(make_app,
                                                                           candidate_server):
    app = make_app(SHADOW_URL=f"{candidate_server.url}/predict")

    response = app.test_client().post(
        "/shadow", json={"inputs": ["my cat purrs", "a goldfish in its bowl"]},
        headers={"X-Request-ID": "batch-a", "X-Batch-Request-IDs": "batch-a batch-b"})

    assert response.get_json() == {"status": "queued"}
    wait_until(lambda: shadows_of(app, "batch-a") and shadows_of(app, "batch-b"),
               what="a shadow for each text")
    assert [shadows_of(app, request_id)[0][1]["prediction"]["class"]
            for request_id in ("batch-a", "batch-b")] == ["cat", "fish"]


def test_past_its_queue_a_shadow_is_dropped(store, hung_candidate):
    recorder = ShadowRecorder(hung_candidate, store, read_timeout=5, max_queued=1, threads=1)

    assert recorder.submit("first", "a cat")  # the thread takes it, and waits
    wait_until(lambda: recorder._queue.empty())
    assert recorder.submit("second", "a dog")  # waits in the queue
    assert not recorder.submit("third", "a fish")


def test_a_shadow_needs_the_text_a_prediction_needs(app):
    response = app.test_client().post("/shadow", json={"input": ""})

    assert response.status_code == 422


def test_shadows_run_beside_each_other(make_app, candidate_server):
    app = make_app(SHADOW_URL=f"{candidate_server.url}/predict")
    client = app.test_client()
    threads = [threading.Thread(target=client.post, args=("/shadow",),
                                kwargs={"json": {"input": f"rabbit {n}"},
                                        "headers": {"X-Request-ID": f"many-{n}"}})
               for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wait_until(lambda: all(shadows_of(app, f"many-{n}") for n in range(20)))
    assert {shadows_of(app, f"many-{n}")[0][0] for n in range(20)} == {"predicted"}
