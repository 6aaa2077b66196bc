"""The predictor's own metrics, in one process: predictions, model calls, shedding,
readiness."""

import threading
import time

from prometheus_client import REGISTRY

from predictor_service import create_app
from predictor_service.batching import MicroBatcher
from predictor_service.serving import get_models


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_text_is_counted_by_its_class_and_the_model_that_classified_it(client):
    identity = client.get("/model").get_json()
    labels = {"model": identity["name"], "version": identity["version"]}
    before = {label: value("predictor_predictions_total", **labels, **{"class": label})
              for label in identity["classes"]}
    calls = value("predictor_model_call_duration_seconds_count")
    texts = value("predictor_batch_size_sum")

    answer = client.post("/predict", json={"inputs": ["my dog barks", "the cat purrs",
                                                      "a dog and a ball"]}).get_json()

    classes = [prediction["class"] for prediction in answer["predictions"]]
    for label in identity["classes"]:
        counted = value("predictor_predictions_total", **labels, **{"class": label})
        assert counted - before[label] == classes.count(label)
    assert value("predictor_model_call_duration_seconds_count") - calls == 1
    assert value("predictor_batch_size_sum") - texts == 3


def test_a_shed_request_is_counted():
    app = create_app({"TESTING": True, "MAX_QUEUED_CHARS": 1000, "BATCHING": False})
    client = app.test_client()
    before = value("predictor_requests_shed_total")
    with app.app_context():
        models = get_models()
    assert models.wait(timeout=60), models.error
    admission = models.holder().admission

    with admission.admit(["x" * 1000]):  # the worker is full
        response = client.post("/predict", json={"input": "y" * 100})

    assert response.status_code == 503
    assert value("predictor_requests_shed_total") - before == 1


def test_readiness_and_load_time_are_set_once_the_model_has_loaded(ready_app):
    # The session's app has loaded its model (conftest.ready_app).
    assert value("predictor_model_ready") == 1
    assert value("predictor_model_load_duration_seconds") > 0
    # This process is one worker, with the shipped production version warm.
    assert value("predictor_workers") == 1
    assert value("predictor_model_alias_workers", alias="production", version="1.0.0") == 1


def test_the_queue_depth_counts_requests_waiting_for_a_model_call():
    release, entered = threading.Event(), threading.Event()

    def slow_model(texts):
        entered.set()
        release.wait(10)
        return texts

    batcher = MicroBatcher(slow_model, max_texts=1)
    depth = value("predictor_batch_queue_depth")
    threads = [threading.Thread(target=batcher.predict, args=([f"text {n}"],))
               for n in range(4)]
    threads[0].start()
    assert entered.wait(10)  # the first is in the model; the other three wait
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while value("predictor_batch_queue_depth") - depth < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = value("predictor_batch_queue_depth") - depth

    release.set()
    for thread in threads:
        thread.join(10)
    assert waiting == 3
    assert value("predictor_batch_queue_depth") == depth
