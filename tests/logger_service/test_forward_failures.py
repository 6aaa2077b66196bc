"""Every way the predictor can fail the logger: each answered with JSON, each recorded."""

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from logger_service.client import get_predictor_client
from logger_service.store import get_store
from tests.support import assert_error, free_port, serve


@pytest.fixture
def stand_in(make_app):
    servers = []

    def start(status, body, content_type="application/json", before_answer=None, **config):
        server = serve(status, body, content_type, before_answer)
        servers.append(server)
        return make_app(PREDICTOR_URL=f"http://127.0.0.1:{server.server_port}/predict", **config)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def forward(app):
    response = app.test_client().post("/process", json={"data": "hello", "forward_to_model": True})
    with app.app_context():
        [record] = get_store().page(limit=10)
    assert record["data"] == "hello"
    return response, record


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_predictor_5xx_is_503(stand_in, status):
    response, record = forward(stand_in(status, f'{{"code": {status}}}'))

    assert_error(response, 503, f"Predictor is unavailable: it answered {status}")
    assert record["outcome"] == "predictor_unavailable"


def test_predictor_4xx_is_502(stand_in):
    response, record = forward(stand_in(422, '{"code": 422}'))

    assert_error(response, 502, "Predictor gave a bad response: it answered 422")
    assert record["outcome"] == "predictor_error"


def test_predictor_answer_that_is_not_json_is_502(stand_in):
    response, record = forward(stand_in(200, "<html>hi</html>", "text/html"))

    assert_error(response, 502, "not JSON")
    assert record["outcome"] == "predictor_error"


def test_predictor_that_never_answers_is_503_after_the_read_timeout(make_app):
    # Accepts connections (the kernel's backlog) but never reads or answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        app = make_app(
            PREDICTOR_URL=f"http://127.0.0.1:{silent.getsockname()[1]}/predict",
            PREDICTOR_READ_TIMEOUT=0.3,
        )
        response, record = forward(app)

    # The read timeout ended the wait, not a refused or reset connection.
    assert_error(response, 503, "no answer within the timeout (ReadTimeoutError)")
    assert record["outcome"] == "predictor_unavailable"


def test_predictor_with_nothing_listening_is_503(app):
    response, record = forward(app)

    assert_error(response, 503, "could not connect")
    assert record["outcome"] == "predictor_unavailable"


def test_breaker_opens_after_consecutive_failures_and_answers_at_once(make_app):
    # A predictor that accepts connections and never answers: each call costs the timeout.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        app = make_app(
            PREDICTOR_URL=f"http://127.0.0.1:{silent.getsockname()[1]}/predict",
            PREDICTOR_READ_TIMEOUT=0.3,
            PREDICTOR_BREAKER_FAIL_MAX=3,
            PREDICTOR_BREAKER_RESET_TIMEOUT=60,
        )
        client = app.test_client()
        body = {"data": "hello", "forward_to_model": True}
        responses = [client.post("/process", json=body) for _ in range(20)]
        # Only the calls before the circuit opened reached the predictor.
        silent.setblocking(False)
        reached = 0
        while True:
            try:
                silent.accept()[0].close()
                reached += 1
            except BlockingIOError:
                break

    assert reached == 3
    for response in responses[:3]:
        assert_error(response, 503, "no answer within the timeout")
    for response in responses[3:]:
        assert_error(response, 503, "circuit open after 3 failures in a row")
    assert client.get("/ready").get_json()["checks"]["predictor_circuit"] == "open"
    # Every input was still recorded, with its outcome.
    with app.app_context():
        records = get_store().page(limit=50)
    assert len(records) == 20
    assert {r["outcome"] for r in records} == {"predictor_unavailable"}


def test_breaker_tries_again_after_the_cool_down_and_closes_on_success(
    make_app, predictor_server, monkeypatch
):
    app = make_app(
        PREDICTOR_URL=f"http://127.0.0.1:{free_port()}/predict",
        PREDICTOR_BREAKER_FAIL_MAX=2,
        PREDICTOR_BREAKER_RESET_TIMEOUT=0.5,
    )
    client = app.test_client()
    body = {"data": "cat", "forward_to_model": True}
    for _ in range(3):
        client.post("/process", json=body)
    assert client.get("/ready").get_json()["checks"]["predictor_circuit"] == "open"

    # The predictor comes back; after the cool-down one trial call closes the circuit.
    with app.app_context():
        monkeypatch.setattr(get_predictor_client(), "url", f"{predictor_server.url}/predict")
    time.sleep(0.6)
    response = client.post("/process", json=body)

    assert response.status_code == 200
    assert response.get_json()["model_prediction"]["prediction"]["class"] == "cat"
    assert client.get("/ready").get_json()["checks"]["predictor_circuit"] == "closed"


def read_request(conn):
    """Read one HTTP request (head and Content-Length body) from conn; return its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += conn.recv(65536)
    return body


def test_a_reused_connection_closed_without_an_answer_is_sent_again(make_app):
    """What a reloading Nginx does to an idle keep-alive connection: the logger sends
    the prediction once more, on a new connection, and the caller never knows."""
    prediction = json.dumps({"prediction": {"class": "cat", "confidence": 0.9, "input_length": 5},
                             "message": "Predicted class: cat with 90.0% confidence"}).encode()
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (len(prediction), prediction))
    received = []

    def gateway(listener):
        first, _ = listener.accept()
        received.append(read_request(first))
        first.sendall(reply)
        received.append(read_request(first))
        first.close()  # the request that reused the connection: closed, unanswered
        second, _ = listener.accept()
        with second:
            received.append(read_request(second))
            second.sendall(reply)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=gateway, args=(listener,), daemon=True)
        server.start()
        app = make_app(PREDICTOR_URL=f"http://127.0.0.1:{listener.getsockname()[1]}/predict")
        client = app.test_client()
        first = client.post("/process", json={"data": "kitty", "forward_to_model": True})
        second = client.post("/process", json={"data": "puss", "forward_to_model": True})
        server.join(timeout=10)

    assert first.status_code == second.status_code == 200
    assert second.json["model_prediction"]["prediction"]["class"] == "cat"
    assert [json.loads(body)["input"] for body in received] == ["kitty", "puss", "puss"]
    with app.app_context():
        records = get_store().page(limit=10)
    assert [record["outcome"] for record in records] == ["predicted", "predicted"]


def test_forwards_from_one_worker_go_out_concurrently_through_the_breaker(stand_in):
    """The breaker guards calls without serializing them: four forwards must be at the
    stand-in predictor at once for any of them to be answered."""
    # Raises BrokenBarrierError, so no answer, if the calls came one by one.
    together = threading.Barrier(4, timeout=20)
    app = stand_in(200, json.dumps({"prediction": {"class": "dog"}}),
                   before_answer=together.wait, PREDICTOR_READ_TIMEOUT=30)

    def forward_one(n):
        body = {"data": f"dog {n}", "forward_to_model": True}
        return app.test_client().post("/process", json=body).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(forward_one, range(4)))

    assert statuses == [200] * 4
