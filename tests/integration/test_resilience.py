"""Faults in the predictor pool, injected for real: signals to replicas, rolling restarts."""

import os
import signal
import subprocess
import sys
import time

from tests.support import ROOT, SteadyClient, served_by_port


def test_sigterm_to_a_replica_under_load_costs_no_request(stack, http):
    port = stack.predictor_ports[1]
    pid = stack.replica_pid(port)

    with SteadyClient(f"{stack.url}/predict", {"input": "steady dog"}) as client:
        client.wait_for(100)
        os.kill(pid, signal.SIGTERM)  # gunicorn: stop accepting, finish in flight, exit
        seen = len(client.statuses)
        client.wait_for(seen + 300)

    assert client.failures == []
    assert set(client.statuses) == {200}
    assert "Shutting down: Master" in stack.log(f"predictor-{port}")
    # supervisord starts it again, and it serves again.
    stack.wait_until_serving(http, port)
    assert stack.replica_pid(port) != pid


def test_rolling_restart_under_load_costs_no_request(stack, http):
    pids = {port: stack.replica_pid(port) for port in stack.predictor_ports}

    with SteadyClient(f"{stack.url}/predict", {"input": "steady bird"}, max_seconds=120) as client:
        client.wait_for(50)
        restart = subprocess.run(
            [sys.executable, "-m", "gateway", "restart", "predictor",
             "--run-dir", str(stack.run_dir)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        seen = len(client.statuses)
        client.wait_for(seen + 100)

    assert restart.returncode == 0, restart.stderr
    assert restart.stdout.count("restarted predictor:predictor-") == 3
    assert client.failures == []
    assert set(client.statuses) == {200}
    for port, old_pid in pids.items():
        assert stack.replica_pid(port) != old_pid
        stack.wait_until_serving(http, port)


def test_a_hung_replica_costs_one_timeout_then_leaves_the_rotation(stack, http):
    port = stack.predictor_ports[2]
    pid = stack.replica_pid(port)
    latencies, statuses, served = [], [], []
    os.killpg(pid, signal.SIGSTOP)  # hangs: accepts connections, never answers
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = http.post(f"{stack.url}/predict", json={"input": "hello"}, timeout=15)
            latencies.append(time.monotonic() - started)
            statuses.append(response.status_code)
            served.append(served_by_port(response))
    finally:
        os.killpg(pid, signal.SIGCONT)

    assert set(statuses) == {200}
    assert port not in served
    # A request sent to the hung replica waits for proxy_read_timeout (3 s) once, then
    # goes to another; the replica then stays out for fail_timeout (5 s), so in 8 s at
    # most two requests paid that wait, and none paid it twice.
    slow = [latency for latency in latencies if latency >= 2.5]
    assert 1 <= len(slow) <= 2
    assert max(latencies) < 2 * 3
    stack.wait_until_serving(http, port)


def test_with_the_pool_hung_the_logger_answers_before_the_gateway_gives_up(stack, http):
    pids = [stack.replica_pid(port) for port in stack.predictor_ports]
    for pid in pids:
        os.killpg(pid, signal.SIGSTOP)
    try:
        response = http.post(f"{stack.url}/process",
                             json={"data": "hung pool", "forward_to_model": True}, timeout=30)
    finally:
        for pid in pids:
            os.killpg(pid, signal.SIGCONT)

    # The logger's own 503 (its read timeout, 5 s), not the gateway's 504 (10 s).
    assert response.status_code == 503
    assert response.json()["message"].startswith("Predictor is unavailable: no answer within")
    record = http.get(f"{stack.url}/logs?limit=1").json()["records"][0]
    assert (record["data"], record["outcome"]) == ("hung pool", "predictor_unavailable")
    stack.wait_ready()
    for port in stack.predictor_ports:
        stack.wait_until_serving(http, port)
