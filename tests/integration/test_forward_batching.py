"""Forwards that wait go to the real predictor pool as one batch, through the gateway,
and each request still gets, and has recorded, the answer its own text would get.

A stack of its own: one logger worker with one call in flight per client (these are all
one client), so that requests that arrive together are sure to wait, and go in batches.
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import StackUnderTest, scrape

TEXTS = [f"{pet} number {n} naps by the window" for n in range(8)
         for pet in ("my cat", "the puppy", "a parrot", "goldfish")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"LOGGER_WORKERS": "1", "LOGGER_FORWARDS_IN_FLIGHT": "1"}
    stack = StackUnderTest(tmp_path_factory.mktemp("batching"), env=env, predictors=3,
                           rate_limit_enabled=False)
    with stack as running:
        yield running


def test_forwards_sent_together_are_batched_and_each_gets_its_own_texts_answer(stack, http):
    # What each text gets alone, from the pool directly.
    alone = {text: http.post(f"{stack.url}/predict", json={"input": text}).json()
             for text in TEXTS}
    start = threading.Barrier(len(TEXTS))

    def process(index):
        start.wait()
        return requests.post(f"{stack.url}/process",
                             json={"data": TEXTS[index], "forward_to_model": True},
                             headers={"X-Request-ID": f"together-{index}"}, timeout=30)

    with ThreadPoolExecutor(len(TEXTS)) as threads:
        responses = list(threads.map(process, range(len(TEXTS))))

    for text, response in zip(TEXTS, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["model_prediction"] == alone[text]
    records = {record["request_id"]: record
               for record in http.get(f"{stack.url}/logs?limit=100").json()["records"]}
    for index, text in enumerate(TEXTS):
        record = records[f"together-{index}"]
        assert (record["data"], record["outcome"]) == (text, "predicted")
        assert record["prediction"] == alone[text]
    # Fewer calls than requests reached the pool, and the logger named each batch's ids.
    batched = [json.loads(line)["message"] for line in stack.log("logger").splitlines()
               if "requests in one batch:" in line]
    named = [request_id for message in batched
             for request_id in message.split(": ", 1)[1].split()]
    assert batched and len(named) == len(set(named))
    calls = [entry for entry in stack.access_log("together-", len(TEXTS))
             if entry["uri"] == "/predict"]
    assert 0 < len(calls) < len(TEXTS)
    # The batch sizes, as an operator sees them.
    metrics = scrape(f"http://127.0.0.1:{stack.layout.logger_metrics_port}/metrics")
    assert metrics["logger_forward_batch_texts_sum", ()] == len(TEXTS)
    assert metrics["logger_forward_batch_texts_count", ()] == len(calls)
