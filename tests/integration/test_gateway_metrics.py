"""The gateway's metrics through a real Nginx: its own answers (429, 413, 404, 503 with
no live upstream) counted beside the services', by route and status."""

import pytest
import requests

from tests.support import StackUnderTest, sample, scrape, wait_until


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    # A low rate limit, to meet it on purpose.
    stack = StackUnderTest(tmp_path_factory.mktemp("gateway-metrics"), predictors=2,
                           rate_limit="2r/s", rate_burst=2)
    with stack as running:
        yield running


def counts(stack):
    samples = scrape(f"http://127.0.0.1:{stack.layout.gateway_metrics_port}/metrics")
    return lambda route, status: sample(samples, "gateway_responses_total",
                                        listener="public", route=route, status=str(status))


def settles(stack, route, status, expected):
    try:
        wait_until(lambda: counts(stack)(route, status) == expected, timeout=15)
    except AssertionError:
        raise AssertionError(f"{route} {status} counted {counts(stack)(route, status)} times, "
                             f"not {expected}") from None


def test_nginx_answers_of_its_own_are_counted(limited):
    with requests.Session() as http:
        statuses = [http.post(f"{limited.url}/predict", json={"input": "a cat"},
                              timeout=10).status_code for _ in range(10)]
        too_large = http.post(f"{limited.url}/process", data="x" * (1024 * 1024 + 1),
                              headers={"Content-Type": "application/json"}, timeout=10)
        unknown = [http.get(f"{limited.url}/{path}", timeout=10).status_code
                   for path in ("wp-admin", "a/b/c", "nothing")]

    assert set(statuses) == {200, 429}
    assert too_large.status_code == 413
    assert unknown == [404] * 3
    settles(limited, "/predict", 200, statuses.count(200))
    settles(limited, "/predict", 429, statuses.count(429))
    settles(limited, "/process", 413, 1)
    settles(limited, "other", 404, 3)


def test_no_live_upstream_is_counted_as_the_gateways_503(limited):
    before = counts(limited)("/predict", 503)
    limited.supervisorctl("stop", "predictor:*")
    try:
        response = requests.post(f"{limited.url}/predict", json={"input": "a dog"}, timeout=10)
    finally:
        limited.supervisorctl("start", "predictor:*")
        limited.wait_ready()

    assert response.status_code == 503
    settles(limited, "/predict", 503, before + 1)
