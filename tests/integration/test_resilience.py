"""Faults in the predictor pool, injected for real: signals to replicas, rolling restarts."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from tests.support import ROOT, SteadyClient, served_by_port, wait_until


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
    # supervisord starts it again, and it serves again. A gevent worker sees the stop at
    # its loop's next turn, within a second, and serves what it accepts meanwhile: the
    # replica may still answer for a moment after the requests above.
    wait_until(lambda: stack.replica_pid(port) not in (pid, 0), timeout=60,
               what="a new gunicorn for the replica")
    assert "Shutting down: Master" in stack.log(f"predictor-{port}")
    stack.wait_until_serving(http, port)


def unread_bytes(server_port, client_port):
    """Bytes the server has not read yet on one loopback connection, from /proc/net/tcp."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, remote, _, queues = line.split()[1:5]
            if (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)) == (
                    server_port, client_port):
                return int(queues.split(":")[1], 16)
    raise AssertionError(f"no connection from {client_port} to {server_port}")


def refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the handshake reached the backlog of a listener that closed just then.
        return True
    return False


def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_ones(stack, http):
    # Straight to the replica, without the gateway, whose retries would hide a request
    # that the replica dropped.
    port = stack.predictor_ports[0]
    pid = stack.replica_pid(port)
    body = json.dumps({"input": "a dog still in flight"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        client_port = sock.getsockname()[1]
        head = (b"POST /predict HTTP/1.1\r\nHost: replica\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(head + body[:10])
        # The replica has read the head and the first bytes: the request is in flight.
        wait_until(lambda: unread_bytes(port, client_port) == 0, what="the replica reading")

        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: refuses_connections(port), what="the replica refusing connections")
        sock.sendall(body[10:])
        answer = sock.makefile("rb").read()

    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), answer
    assert json.loads(payload)["prediction"]["input_length"] == len("a dog still in flight")
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
    statuses, served = [], []
    os.killpg(pid, signal.SIGSTOP)  # hangs: accepts connections, never answers
    try:
        started = time.monotonic()
        while time.monotonic() < started + 8:
            response = http.post(f"{stack.url}/predict", json={"input": "hello"}, timeout=15,
                                 headers={"X-Request-ID": f"hung-replica-{len(statuses)}"})
            statuses.append(response.status_code)
            served.append(served_by_port(response))
        took = time.monotonic() - started
    finally:
        os.killpg(pid, signal.SIGCONT)

    assert set(statuses) == {200}
    assert port not in served
    # What each request went through, from the gateway's log: a request sent to the hung
    # replica waited for its read timeout (504) once, then went to another replica; the
    # replica then stayed out for fail_timeout (5 s, counted for every Nginx worker), so
    # one request per 5 s paid that wait, and none paid it twice.
    entries = stack.access_log("hung-replica-", len(statuses))
    hung = f"127.0.0.1:{port}"
    delayed = [entry for entry in entries if hung in entry["upstream_addr"]]
    for entry in delayed:
        addresses = entry["upstream_addr"].split(", ")
        outcomes = dict(zip(addresses, entry["upstream_status"].split(", "), strict=True))
        assert addresses.count(hung) == 1 and outcomes[hung] == "504", entry
        assert outcomes[addresses[-1]] == "200", entry
    assert 1 <= len(delayed) <= 1 + took // 5, delayed
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
