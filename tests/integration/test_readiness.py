"""The gateway's /ready: 200 while one predictor replica and the logger can answer, 503
JSON naming the pool that cannot; /health says only that the gateway itself runs."""

import pytest
import requests

from tests.support import StackUnderTest, wait_until


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory):
    stack = StackUnderTest(tmp_path_factory.mktemp("readiness"), predictors=2,
                           rate_limit_enabled=False)
    with stack as running:
        yield running


def ready(stack):
    return requests.get(f"{stack.url}/ready", timeout=10)


def test_ready_while_every_pool_can_answer(small_stack):
    response = ready(small_stack)

    assert response.status_code == 200
    assert response.json() == {"status": "ready",
                               "checks": {"predictors": "ready", "logger": "ready"}}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"]


def test_one_ready_replica_is_enough(small_stack):
    first = small_stack.predictor_ports[0]
    small_stack.supervisorctl("stop", f"predictor:predictor-{first}")
    try:
        assert [ready(small_stack).status_code for _ in range(5)] == [200] * 5
    finally:
        small_stack.supervisorctl("start", f"predictor:predictor-{first}")
        small_stack.wait_ready()


def test_not_ready_without_any_predictor_though_still_alive(small_stack):
    small_stack.supervisorctl("stop", "predictor:*")
    try:
        response = ready(small_stack)
        assert response.status_code == 503
        assert response.json()["errors"] == {"predictors": "not ready"}
        assert response.json()["message"] == "No predictor replica is ready."
        assert response.headers["Retry-After"] == "1"
        assert requests.get(f"{small_stack.url}/health", timeout=10).status_code == 200
    finally:
        small_stack.supervisorctl("start", "predictor:*")
        small_stack.wait_ready()
    wait_until(lambda: ready(small_stack).status_code == 200, timeout=30,
               what="ready again")


def test_not_ready_without_the_logger(small_stack):
    small_stack.supervisorctl("stop", "logger")
    try:
        response = ready(small_stack)
        assert response.status_code == 503
        assert response.json()["errors"] == {"predictors": "ready", "logger": "not ready"}
    finally:
        small_stack.supervisorctl("start", "logger")
        small_stack.wait_ready()
    wait_until(lambda: ready(small_stack).status_code == 200, timeout=30,
               what="ready again")


def test_ready_takes_no_other_method(small_stack):
    response = requests.post(f"{small_stack.url}/ready", json={}, timeout=10)

    assert response.status_code == 405
    assert response.json()["code"] == 405
