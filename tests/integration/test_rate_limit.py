"""The gateway's per-client rate limit: 429 JSON with Retry-After, and an off switch."""

import math
import time

import pytest
import requests

from tests.support import StackUnderTest, request_from


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    stack = StackUnderTest(tmp_path_factory.mktemp("limited"), predictors=1,
                           rate_limit="1r/s", rate_burst=5)
    with stack as running:
        yield running


def test_over_the_limit_a_client_gets_429_json_with_retry_after(limited):
    started = time.monotonic()
    with requests.Session() as http:
        responses = [http.post(f"{limited.url}/predict", json={"input": "a"}) for _ in range(30)]
    took = time.monotonic() - started

    statuses = [response.status_code for response in responses]
    # The one request the rate allows and the burst (5) pass; past them, the rate (1/s)
    # lets at most one more through per second that the 30 requests took.
    assert statuses[:6] == [200] * 6
    assert statuses.count(200) <= 6 + math.ceil(took)
    assert 429 in statuses
    limited_response = responses[statuses.index(429)]
    assert limited_response.json() == {
        "code": 429,
        "status": "Too Many Requests",
        "message": "Too many requests: slow down.",
    }
    assert limited_response.headers["Retry-After"] == "1"
    assert "Retry-After" not in responses[0].headers


def test_the_limit_covers_every_api_route_but_not_health(limited):
    with requests.Session() as http:
        calls = {
            "/process": lambda: http.post(f"{limited.url}/process", json={"data": "a"}),
            "/logs": lambda: http.get(f"{limited.url}/logs"),
            # Each service's pages, Swagger UI's "try it out" included.
            "/logger/process": lambda: http.post(f"{limited.url}/logger/process",
                                                 json={"data": "a"}),
            "/predictor/predict": lambda: http.post(f"{limited.url}/predictor/predict",
                                                    json={"input": "a"}),
        }
        for path, call in calls.items():
            time.sleep(1.5)  # the bucket drains at 1/s: some requests pass, then 429
            assert 429 in [call().status_code for _ in range(30)], path
        assert {http.get(f"{limited.url}/health").status_code for _ in range(30)} == {200}


def test_each_client_address_has_a_limit_of_its_own(limited):
    def status_from(address):
        return request_from(address, limited.port, "POST", "/predict", {"input": "a"})[0]

    statuses = [status_from("127.0.0.1") for _ in range(30)]
    assert 429 in statuses

    # The rate (1/s) and burst (5) of another address are untouched: 6 pass at once,
    # where the first address's exhausted bucket would let at most one through.
    other = [status_from("127.0.0.2") for _ in range(6)]
    assert other == [200] * 6


def test_after_waiting_retry_after_the_client_is_served_again(limited):
    with requests.Session() as http:
        for _ in range(30):
            http.post(f"{limited.url}/predict", json={"input": "a"})
        time.sleep(1.5)
        assert http.post(f"{limited.url}/predict", json={"input": "a"}).status_code == 200


def test_the_switch_turns_the_limit_off(stack):
    # The shared integration stack runs with --no-rate-limit.
    with requests.Session() as http:
        statuses = {http.post(f"{stack.url}/predict", json={"input": "a"}).status_code
                    for _ in range(300)}

    assert statuses == {200}
