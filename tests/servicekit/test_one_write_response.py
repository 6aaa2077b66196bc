"""Each service's real gunicorn, with its own gunicorn.conf.py, runs servicekit.gunicorn:
an answer's head goes out in the same write as its body, and gunicorn's own error pages
are JSON.

docs/reliability.md relies on the first: a replica killed mid-answer leaves the gateway
either nothing, which it retries on another replica, or the whole answer.
"""

import json
import socket
import sys

import pytest

from tests.support import GunicornServer

# Every write of the server is followed by a pause (slow_writes.py): the client's first
# recv() then holds what the server's first write held, and no more.
SLOW_WRITES = (sys.executable, "-m", "tests.servicekit.slow_writes")


@pytest.fixture(scope="module", params=[
    ("logger", "gthread"), ("predictor", "gthread"), ("logger", "sync"), ("predictor", "sync"),
], ids="-".join)
def server(request, tmp_path_factory):
    service, worker_class = request.param
    workdir = tmp_path_factory.mktemp(f"{service}-{worker_class}")
    env = {
        f"{service.upper()}_WORKER_CLASS": worker_class,
        "LOGGER_DB_PATH": str(workdir / "logger.sqlite3"),
    }
    # /health: the predictor answers it at once, while its model loads.
    with GunicornServer(service, workdir, env=env, wrapper=SLOW_WRITES,
                        started="/health") as running:
        yield running


def exchange(server, request, first_read_only=False):
    """Send request on a new connection; return the first read, or all until closed."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = sock.recv(65536)
        while not first_read_only and (more := sock.recv(65536)):
            received += more
    return received


def test_the_head_and_the_start_of_the_body_arrive_in_one_read(server):
    request = b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"

    first_read = exchange(server, request, first_read_only=True)

    head, end_of_head, body = first_read.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), first_read
    assert end_of_head, first_read
    assert body.startswith(b'{"status":'), first_read


def test_gunicorns_own_error_page_is_the_json_error_shape(server):
    # Longer than gunicorn's limit_request_line (4094): gunicorn answers, not the app.
    request = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: test\r\n\r\n"

    answer = exchange(server, request)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 "), answer
    assert b"Content-Type: application/json" in head.split(b"\r\n")
    error = json.loads(body)
    assert error["code"] == 414
    assert error["status"] == "URI Too Long"
    assert error["message"].startswith("Request Line is too large")
