"""What Nginx itself does: upstream keep-alive, its own errors and its log."""

import json
import os
import signal
import socket

TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT"}


def loopback_connections_to(ports):
    """The TCP connections (either side) whose server end is one of ports, from /proc."""
    connections = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, remote, state = line.split()[1:4]
                local_port, remote_port = (int(a.rsplit(":", 1)[1], 16) for a in (local, remote))
                if state in TCP_STATES and (local_port in ports or remote_port in ports):
                    connections.add(tuple(sorted((local, remote))))
    return connections


def test_upstream_connections_are_kept_alive_and_reused(stack, http):
    ports = set(stack.predictor_ports)
    before = loopback_connections_to(ports)

    for n in range(90):
        assert http.post(f"{stack.url}/predict", json={"input": f"cat {n}"}).status_code == 200

    new = loopback_connections_to(ports) - before
    # Without keep-alive every request opens (and leaves in TIME_WAIT) a connection: 90.
    # With it, at most one per Nginx worker and replica: 2 workers x 3 replicas here.
    assert len(new) <= 2 * len(ports), len(new)


def test_malformed_http_is_400_json_from_nginx(stack):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        raw = sock.recv(65536).decode()

    head, body = raw.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 400")
    assert "Content-Type: application/json" in head
    assert json.loads(body)["code"] == 400


def test_pool_that_hangs_gives_504_json_within_the_bounded_retries(stack, http):
    pids = [stack.replica_pid(port) for port in stack.predictor_ports]
    for pid in pids:
        os.killpg(pid, signal.SIGSTOP)
    try:
        response = http.post(f"{stack.url}/predict", json={"input": "hello?"}, timeout=30,
                             headers={"X-Request-ID": "hung-pool-1"})
    finally:
        for pid in pids:
            os.killpg(pid, signal.SIGCONT)
    assert response.status_code == 504
    assert response.json()["status"] == "Gateway Timeout"
    # Bounded: each replica tried at most once, each try ended by its read timeout (3 s),
    # and no new try after proxy_next_upstream_timeout (6 s): two tries here.
    [entry] = stack.access_log("hung-pool-1", 1)
    addresses = entry["upstream_addr"].split(", ")
    assert len(set(addresses)) == len(addresses) <= len(stack.predictor_ports)
    ports = {int(address.rsplit(":", 1)[1]) for address in addresses}
    assert ports <= set(stack.predictor_ports)
    assert set(entry["upstream_status"].split(", ")) == {"504"}
    stack.wait_ready()
    # Each replica that timed out is out of rotation for fail_timeout: wait for them all,
    # so that the next test finds the whole pool serving.
    for port in stack.predictor_ports:
        stack.wait_until_serving(http, port)


def test_server_header_hides_the_version(stack, http):
    assert http.get(f"{stack.url}/health").headers["Server"] == "nginx"


def test_access_log_is_json_with_request_id_upstream_and_timings(stack, http):
    http.post(f"{stack.url}/predict", json={"input": "a"}, headers={"X-Request-ID": "log-check-9"})

    [entry] = stack.access_log("log-check-9", 1)
    assert entry["request_id"] == "log-check-9"
    assert entry["status"] == 200
    assert entry["upstream_addr"].rsplit(":", 1)[1] in map(str, stack.predictor_ports)
    assert float(entry["request_time"]) >= 0 and float(entry["upstream_response_time"]) >= 0
