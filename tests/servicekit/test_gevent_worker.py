"""servicekit.gevent_worker, under the logger (whose worker it is): a stop ends the waits
of idle keep-alive connections at once, while a request in flight is answered; and the
master imports none of the libraries that gevent must patch first."""

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

import requests

from tests.support import GunicornServer, serve

PREDICTION = {"prediction": {"class": "cat", "confidence": 0.9, "input_length": 5},
              "message": "Prediction from the stand-in"}


def test_a_stop_closes_idle_connections_and_answers_the_request_in_flight(tmp_path):
    received, released = threading.Event(), threading.Event()
    # A stand-in predictor that holds its answer until released.
    predictor = serve(200, json.dumps(PREDICTION),
                      before_answer=lambda: (received.set(), released.wait(60)))
    # Waits that, were they waited out, would outlast the test's own bounds many times.
    env = {"LOGGER_DB_PATH": str(tmp_path / "logger.sqlite3"),
           "LOGGER_PREDICTOR_URL": f"http://127.0.0.1:{predictor.server_port}/predict",
           "LOGGER_KEEPALIVE": "600", "LOGGER_GRACEFUL_TIMEOUT": "600"}
    server = GunicornServer("logger", tmp_path, env=env)
    idle = HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        server.start()
        assert server.log_entries(
            logger="gunicorn.error", message="Using worker: servicekit.gevent_worker.GeventWorker")
        idle.request("GET", "/health")
        health = idle.getresponse()
        health.read()
        assert (health.status, health.will_close) == (200, False)  # the connection stays open
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(
                requests.post, f"{server.url}/process",
                json={"data": "in flight at the stop", "forward_to_model": True}, timeout=60)
            assert received.wait(30), "the forward never reached the predictor"

            server.process.send_signal(signal.SIGTERM)
            assert idle.sock.recv(1) == b""  # closed by the logger, not by the 60 s timeout
            released.set()
            answer = in_flight.result(timeout=60)
        assert answer.status_code == 200
        assert answer.json()["model_prediction"] == PREDICTION
        assert server.process.wait(timeout=60) == 0
    finally:
        idle.close()
        released.set()
        predictor.shutdown()
        predictor.server_close()
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
