"""servicekit.gevent_worker, under the logger (whose worker it is): a stop ends the waits
of idle keep-alive connections at once, while a request in flight is answered; and the
master imports none of the libraries that gevent must patch first."""

import json
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.support import GunicornServer

PREDICTION = {"prediction": {"class": "cat", "confidence": 0.9, "input_length": 5},
              "message": "Prediction from the stand-in"}


class HeldPredictor:
    """A stand-in predictor that answers its POSTs only once release() is called."""

    def __init__(self):
        self.received, self.released = threading.Event(), threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                held.received.set()
                held.released.wait(60)
                body = json.dumps(PREDICTION).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/predict"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self):
        self.released.set()

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


def read_answer(sock):
    """Read one HTTP answer with a Content-Length off a socket; return its status line."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(4096)
    return head.split(b"\r\n")[0]


def test_a_stop_closes_idle_connections_and_answers_the_request_in_flight(tmp_path):
    predictor = HeldPredictor()
    # Waits that, were they waited out, would outlast the test's own bounds many times.
    env = {"LOGGER_DB_PATH": str(tmp_path / "logger.sqlite3"),
           "LOGGER_PREDICTOR_URL": predictor.url,
           "LOGGER_KEEPALIVE": "600", "LOGGER_GRACEFUL_TIMEOUT": "600"}
    server = GunicornServer("logger", tmp_path, env=env)
    try:
        server.start()
        assert server.log_entries(
            logger="gunicorn.error", message="Using worker: servicekit.gevent_worker.GeventWorker")
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: logger\r\n\r\n")
        assert read_answer(idle) == b"HTTP/1.1 200 OK"  # and the connection stays open
        with idle, ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(
                requests.post, f"{server.url}/process",
                json={"data": "in flight at the stop", "forward_to_model": True}, timeout=60)
            assert predictor.received.wait(30), "the forward never reached the predictor"

            server.process.send_signal(signal.SIGTERM)
            assert idle.recv(1) == b""  # closed by the logger, not by the 60 s timeout
            predictor.release()
            answer = in_flight.result(timeout=60)
        assert answer.status_code == 200
        assert answer.json()["model_prediction"] == PREDICTION
        assert server.process.wait(timeout=60) == 0
    finally:
        predictor.close()
        server.stop()


def loaded_files(pid):
    """The files a process has mapped: its shared libraries, C extensions among them."""
    return {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if "/" in line}


def test_psycopg_is_loaded_by_the_workers_only(tmp_path):
    # psycopg picks how it waits as it is imported: in the master, before the worker
    # patches the standard library, it would pick a wait that blocks every greenlet.
    env = {"LOGGER_DB_PATH": str(tmp_path / "logger.sqlite3")}
    with GunicornServer("logger", tmp_path, env=env) as server:
        requests.get(f"{server.url}/health", headers={"X-Request-ID": "which-worker"}, timeout=10)
        [access] = server.log_entries(request_id="which-worker", logger="gunicorn.access")
        master, worker = loaded_files(server.process.pid), loaded_files(access["pid"])

    assert access["pid"] != server.process.pid
    assert any("psycopg" in path for path in worker)
    assert not any("psycopg" in path for path in master)
