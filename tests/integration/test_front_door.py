"""The front door under hostile clients: connection floods, slow clients, one client's
many requests, the logger's forwards, and answers that stay JSON (docs/security.md)."""

import json
import resource
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import (
    ConnectionFrom,
    StackUnderTest,
    close_held,
    connect_from,
    first_answers,
    hold_requests,
    listening_addresses,
    request_from,
    wait_until,
)

ATTACKER, BYSTANDER, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A stack with the gateway's default per-client limits (the `stack` fixture has
    them off, for load)."""
    with StackUnderTest(tmp_path_factory.mktemp("guarded"), predictors=2) as running:
        yield running


def test_a_local_gateway_serves_this_machine_only(stack):
    assert listening_addresses(stack.port) == {"127.0.0.1"}
    assert listening_addresses(stack.layout.internal_port) == {"127.0.0.1"}


def raise_open_file_limit(count):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= count + 1000, f"this machine allows {hard} open files: too few for the test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_half_requests(port, count):
    """count connections from ATTACKER that each send a request's head without its end."""
    sockets = []
    for _ in range(count):
        sock = connect_from(ATTACKER, port)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    return sockets


def reset_or_closed(sock):
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_thousands_of_half_open_connections_leave_every_other_client_served(stack):
    raise_open_file_limit(3000)
    half_open = open_half_requests(stack.port, 3000)
    try:
        statuses = [
            request_from(BYSTANDER, stack.port, "POST", "/predict", {"input": "my cat"})[0]
            for _ in range(30)
        ] + [request_from(BYSTANDER, stack.port, "GET", "/health")[0] for _ in range(30)]
        # Each is reset once it has sent no complete header for client_header_timeout.
        wait_until(lambda: all(reset_or_closed(sock) for sock in half_open[:50]), timeout=60,
                   what="the half-open connections reset")
    finally:
        for sock in half_open:
            sock.close()

    assert statuses == [200] * 60


def test_requests_in_progress_per_client_are_capped_with_429(guarded):
    held = hold_requests(ATTACKER, guarded.port, "/process", 80)
    try:
        refused = first_answers(held, 80 - 64)
        health = request_from(ATTACKER, guarded.port, "GET", "/health")[0]
        bystander = request_from(BYSTANDER, guarded.port, "POST", "/predict", {"input": "a"})
    finally:
        close_held(guarded, held)

    assert len(refused) == 16
    for answer in refused:
        head, _, body = answer.decode().partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 429 ") and "\r\nRetry-After: 1" in head, answer
        assert json.loads(body)["code"] == 429
    assert health == 200  # answered by Nginx itself, never limited
    assert bystander[0] == 200


def test_one_client_can_have_only_a_few_predictions_in_progress(guarded):
    held = hold_requests(ATTACKER, guarded.port, "/predict", 12)
    try:
        refused = first_answers(held, 12 - 8)
        others = {
            "the attacker's /process": request_from(ATTACKER, guarded.port, "POST", "/process",
                                                    {"data": "a"})[0],
            "another client's /predict": request_from(BYSTANDER, guarded.port, "POST",
                                                      "/predict", {"input": "a"})[0],
        }
    finally:
        close_held(guarded, held)

    assert [answer.split(b" ", 2)[1] for answer in refused] == [b"429"] * 4
    assert others == {"the attacker's /process": 200, "another client's /predict": 200}


def test_forwarded_predictions_do_not_share_one_rate_limit_bucket(guarded):
    # Each client sends fewer requests than its own burst (200), all forwarded: together
    # they are more than one client's burst, which the logger's forwards once shared.
    def client(address):
        return [
            request_from(address, guarded.port, "POST", "/process",
                         {"data": f"cat {n}", "forward_to_model": True})
            for n in range(190)
        ]

    with ThreadPoolExecutor(2) as pool:
        answers = [answer for batch in pool.map(client, [BYSTANDER, OTHER]) for answer in batch]

    assert {status for status, _, _ in answers} == {200}
    assert all("model_prediction" in body for _, _, body in answers)


def raw_exchange(port, request):
    """Send raw bytes; return the status line, the headers and the JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.decode().partition("\r\n\r\n")
    status_line, *lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status_line, headers, json.loads(body)


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /logger HTTP/1.1\r\nHost: evil.example\r\n\r\n", 404),
    (b"GET /predictor HTTP/1.1\r\nHost: evil.example\r\n\r\n", 404),
], ids=["transfer-encoding", "http-2.0", "logger-no-slash", "predictor-no-slash"])
def test_every_answer_of_nginx_itself_is_json(stack, request_bytes, status):
    status_line, headers, body = raw_exchange(stack.port, request_bytes)

    assert status_line.split()[1] == str(status)
    assert headers["Content-Type"] == "application/json"
    assert body["code"] == status and body["message"]
    assert "Location" not in headers


def test_the_access_log_records_the_method_the_client_sent(stack):
    status, _, _ = request_from(BYSTANDER, stack.port, "POST", "/health", {"x": 1},
                                headers={"X-Request-ID": "method-logged-1"})

    [entry] = stack.access_log("method-logged-1", 1)
    assert (status, entry["status"], entry["method"]) == (405, 405, "POST")


def test_one_clients_heavy_batches_leave_the_pool_to_everyone_else(guarded):
    # The attack once made 8 of 9 other clients' requests fail: 12 connections looping
    # the heaviest batch a request may hold, a fraction of a second of CPU each.
    heavy = {"inputs": ["a cat and a dog " * 625] * 20}  # 20 x 10,000 characters
    stop = threading.Event()
    attacker = []

    def attack():
        # Each on one keep-alive connection: the refused requests come back at once, and
        # a new connection for each would leave tens of thousands in TIME_WAIT.
        connection = ConnectionFrom(ATTACKER, guarded.port)
        try:
            while not stop.is_set():
                connection.request("POST", "/predict", json.dumps(heavy),
                                   {"Content-Type": "application/json",
                                    "X-Request-ID": "heavy-batch"})
                response = connection.getresponse()
                response.read()
                attacker.append((response.status, response.getheader("Retry-After")))
                if response.status == 429:
                    # Still far over its limits (12 threads, ~240 tries/s), but leaving
                    # the two cores, which this client shares with the stack, to it.
                    time.sleep(0.05)
        finally:
            connection.close()

    threads = [threading.Thread(target=attack) for _ in range(12)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(attacker) >= 12, what="the attack under way")
        bystander = [
            request_from(BYSTANDER, guarded.port, "POST", "/predict", {"input": f"my cat {n}"},
                         headers={"X-Request-ID": f"bystander-{n}"})[0]
            for n in range(40)
        ]
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert bystander == [200] * 40
    # The attacker is held to its share: served, or refused at once, never timed out.
    assert 429 in {status for status, _ in attacker}  # past its 8 predictions in progress
    assert {status for status, _ in attacker} <= {200, 429, 503}
    assert all(retry_after == "1" for status, retry_after in attacker if status != 200)
    # No batch went to a second replica: none was computed twice.
    logged = [entry for entry in guarded.access_log("heavy-batch", len(attacker))
              if entry["status"] != 429]
    assert logged and all(", " not in entry["upstream_addr"] for entry in logged)
