"""The predictor pool behind the gateway: balancing, failover, and all replicas down."""

import os
import signal
from collections import Counter

from tests.support import SteadyClient, served_by_port


def test_requests_are_spread_over_all_replicas(stack, http):
    ports = Counter(
        served_by_port(http.post(f"{stack.url}/predict", json={"input": f"dog {n}"}))
        for n in range(60)
    )

    assert set(ports) == set(stack.predictor_ports)
    assert min(ports.values()) >= 10, ports


def test_a_replica_killed_under_load_costs_no_request_and_comes_back(stack, http):
    victim = stack.predictor_ports[0]
    pid = stack.replica_pid(victim)

    with SteadyClient(f"{stack.url}/predict", {"input": "steady cat"}) as client:
        client.wait_for(100)
        os.killpg(pid, signal.SIGKILL)  # the replica's gunicorn master and its workers
        seen = len(client.statuses)
        client.wait_for(seen + 300)

    assert client.failures == []
    assert set(client.statuses) == {200}
    assert len(client.statuses) >= seen + 300

    # supervisord restarts it (a new pid) and the gateway sends it traffic again.
    stack.wait_until_serving(http, victim)
    assert stack.replica_pid(victim) != pid


def test_all_predictors_down(stack, http):
    stopped = stack.supervisorctl("stop", "predictor:*")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    try:
        # /predict: 503 JSON from the gateway itself, within its bounded retries.
        response = http.post(f"{stack.url}/predict", json={"input": "anyone?"}, timeout=15)
        assert response.status_code == 503
        assert response.json() == {
            "code": 503,
            "status": "Service Unavailable",
            "message": "No upstream server could answer: try again shortly.",
        }

        # /process with forwarding: 503 JSON from the logger, and the input is recorded.
        response = http.post(f"{stack.url}/process",
                             json={"data": "recorded anyway", "forward_to_model": True}, timeout=15)
        assert response.status_code == 503
        assert response.json()["message"].startswith("Predictor is unavailable")
        record = http.get(f"{stack.url}/logs?limit=1").json()["records"][0]
        assert (record["data"], record["outcome"]) == ("recorded anyway", "predictor_unavailable")
        assert record["request_id"] == response.headers["X-Request-ID"]

        # /process without forwarding does not need a predictor at all.
        response = http.post(f"{stack.url}/process", json={"data": "just log"}, timeout=15)
        assert response.status_code == 200
    finally:
        stack.supervisorctl("start", "predictor:*")
        stack.wait_ready()
        stack.wait_until_serving(http)
