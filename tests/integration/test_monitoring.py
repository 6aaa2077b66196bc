"""The local stack with --monitoring: a real Prometheus scrapes the gateway, Nginx and
every service, its counts match what was sent, and its replica-down alert fires and
clears."""

import json

import pytest
import requests

from tests.support import Prometheus, StackUnderTest, wait_until

VALID, INVALID, FORWARDED = 20, 7, 5


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    stack = StackUnderTest(tmp_path_factory.mktemp("monitored"), predictors=3,
                           rate_limit_enabled=False, monitoring=True)
    with stack as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(monitored):
    return Prometheus(monitored.layout.prometheus_url)


def send_known_traffic(url):
    """A known number of requests: valid and invalid predictions, forwarded inputs."""
    with requests.Session() as http:
        for n in range(VALID):
            assert http.post(f"{url}/predict", json={"input": f"my cat {n}"},
                             timeout=10).status_code == 200
        for _ in range(INVALID):
            assert http.post(f"{url}/predict", json={"input": ""},
                             timeout=10).status_code == 422
        for n in range(FORWARDED):
            assert http.post(f"{url}/process", json={"data": f"a dog {n}",
                                                     "forward_to_model": True},
                             timeout=10).status_code == 200


@pytest.fixture(scope="module")
def traffic(monitored):
    send_known_traffic(monitored.url)


def check_the_counts(prometheus):
    """Prometheus' sums of the gateway's and the services' counters, against what
    send_known_traffic() sent."""
    public = 'listener="public"'
    for route, status, count in (("/predict", 200, VALID), ("/predict", 422, INVALID),
                                 ("/process", 200, FORWARDED)):
        prometheus.settles_at(f'sum(gateway_responses_total{{{public},route="{route}",'
                              f'status="{status}"}})', count)
    # The logger's forwards reach the pool through the internal listener.
    prometheus.settles_at('sum(gateway_responses_total{listener="internal",route="/predict"})',
                          FORWARDED)
    predict = 'job="predictor",route="/predict",method="POST"'
    prometheus.settles_at(f'sum(http_requests_total{{{predict},status="200"}})',
                          VALID + FORWARDED)
    prometheus.settles_at(f'sum(http_requests_total{{{predict},status="422"}})', INVALID)
    prometheus.settles_at("sum(predictor_predictions_total)", VALID + FORWARDED)
    prometheus.settles_at('sum(logger_records_total{outcome="predicted"})', FORWARDED)
    prometheus.settles_at('sum(logger_forward_duration_seconds_count{outcome="predicted"})',
                          FORWARDED)
    prometheus.settles_at("min(predictor_model_ready)", 1)


def test_prometheus_scrapes_every_part_of_the_stack(traffic, prometheus):
    for job, targets in {"gateway": 1, "nginx": 1, "logger": 1, "predictor": 3,
                         "prometheus": 1}.items():
        prometheus.settles_at(f'sum(up{{job="{job}"}})', targets)
    prometheus.settles_at("nginx_up", 1)


def test_the_counts_match_what_was_sent(traffic, prometheus):
    check_the_counts(prometheus)
    prometheus.settles_at('sum(logger_predictor_circuit_state{state="closed"})', 2)  # workers


def test_a_stopped_replica_fires_its_alert_costs_no_request_and_clears(
        monitored, traffic, prometheus):
    port = monitored.predictor_ports[0]
    target = f"127.0.0.1:{monitored.layout.predictor_metrics_ports[0]}"
    assert monitored.supervisorctl("stop", f"predictor:predictor-{port}").returncode == 0
    try:
        with requests.Session() as http:
            statuses = [http.post(f"{monitored.url}/predict", json={"input": f"dog {n}"},
                                  timeout=10).status_code for n in range(VALID)]
        assert statuses == [200] * VALID
        # The gateway tried the stopped replica, and went on to another.
        prometheus.settles_at('sum(gateway_upstream_retries_total{route="/predict"}) > bool 0',
                              1)
        prometheus.settles_at('sum(gateway_responses_total{listener="public",route="/predict",'
                              'status="200"})', 2 * VALID)
        wait_until(lambda: prometheus.alerts("PredictorReplicaDown").get(target) == "firing",
                   timeout=90, what="PredictorReplicaDown firing")
        assert set(prometheus.alerts("PredictorReplicaDown")) == {target}
    finally:
        assert monitored.supervisorctl("start", f"predictor:predictor-{port}").returncode == 0
    wait_until(lambda: not prometheus.alerts("PredictorReplicaDown"), timeout=90,
               what="PredictorReplicaDown cleared")


def test_every_line_of_every_programs_log_is_json(monitored, traffic):
    logs = {path.name: path.read_text() for path in monitored.layout.log_dir.glob("*.log")}
    assert {"nginx.log", "logger.log", "gateway-metrics.log", "prometheus.log",
            "nginx-exporter.log",
            *(f"predictor-{port}.log" for port in monitored.predictor_ports)} <= set(logs)

    for name, text in logs.items():
        lines = text.splitlines()
        assert lines, f"{name} is empty"
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                raise AssertionError(f"{name}: not JSON: {line!r}") from None
            assert isinstance(entry, dict), (name, line)
    # Nginx's error lines (the stopped replica's refused connections) came as JSON.
    errors = [json.loads(line) for line in logs["gateway-metrics.log"].splitlines()
              if '"nginx.error"' in line]
    assert any("connect() failed" in entry["message"] for entry in errors), errors
