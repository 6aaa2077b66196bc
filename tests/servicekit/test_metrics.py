"""servicekit.metrics in one process: every request but the probes counted and timed."""

import pytest
from prometheus_client import REGISTRY

from predictor_service import create_app


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def client():
    # Any service will do: its model is not needed for the routes asked here.
    return create_app({"TESTING": True, "LOAD_MODEL_ON_START": False}).test_client()


def test_requests_are_counted_by_route_method_and_status(client):
    before = value("http_requests_total", route="/predict", method="POST", status="422")
    timed = value("http_request_duration_seconds_count", route="/predict", method="POST")

    for _ in range(3):
        client.post("/predict", json={"input": ""})

    after = value("http_requests_total", route="/predict", method="POST", status="422")
    assert after - before == 3
    assert value("http_request_duration_seconds_count", route="/predict",
                 method="POST") - timed == 3
    assert value("http_requests_in_flight", route="/predict") == 0


def test_a_request_refused_before_its_view_is_counted_too(client):
    before = value("http_requests_total", route="/predict", method="POST", status="415")

    client.post("/predict", data="input=x", content_type="text/plain")

    assert value("http_requests_total", route="/predict", method="POST", status="415") \
        - before == 1


def test_every_unknown_path_is_one_series(client):
    before = value("http_requests_total", route="<none>", method="GET", status="404")

    for path in ("/nothing", "/wp-admin", "/a/b/c"):
        assert client.get(path).status_code == 404

    assert value("http_requests_total", route="<none>", method="GET", status="404") \
        - before == 3
    assert value("http_requests_total", route="/nothing", method="GET", status="404") == 0


def test_the_probes_are_left_out(client):
    before = value("http_requests_total", route="/health", method="GET", status="200")

    assert client.get("/health").status_code == 200

    assert value("http_requests_total", route="/health", method="GET", status="200") == before


def test_methods_outside_http_are_one_series(client):
    def others():
        return sum(value("http_requests_total", route="<none>", method="<other>", status=status)
                   for status in ("404", "405"))

    before = others()

    for method in ("FOO", "BREW", "X-MADE-UP"):
        assert client.open("/predict/nothing", method=method).status_code in (404, 405)

    assert others() - before == 3
    assert value("http_requests_total", route="<none>", method="FOO", status="404") == 0
