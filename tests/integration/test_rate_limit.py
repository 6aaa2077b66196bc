"""The gateway's per-client rate limit: 429 JSON with Retry-After, and an off switch."""

import time

import pytest
import requests

from tests.support import LocalStack


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    stack = LocalStack(tmp_path_factory.mktemp("limited"), predictors=1,
                       extra_args=["--rate-limit", "1r/s", "--rate-burst", "5"])
    with stack as running:
        yield running


def test_over_the_limit_a_client_gets_429_json_with_retry_after(limited):
    with requests.Session() as http:
        responses = [http.post(f"{limited.url}/predict", json={"input": "a"}) for _ in range(30)]

    statuses = [response.status_code for response in responses]
    # The burst (5) and the one request the rate allows pass; past them, the rate
    # (1/s) lets one more through per second, however slow this machine is.
    assert statuses[:6] == [200] * 6
    assert statuses.count(429) >= 15
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
        for path, call in [("/process", lambda: http.post(f"{limited.url}/process",
                                                           json={"data": "a"})),
                           ("/logs", lambda: http.get(f"{limited.url}/logs"))]:
            time.sleep(1.5)  # the bucket drains at 1/s: some requests pass, then 429
            assert 429 in [call().status_code for _ in range(30)], path
        assert {http.get(f"{limited.url}/health").status_code for _ in range(30)} == {200}


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
