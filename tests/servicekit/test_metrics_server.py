"""Metrics under gunicorn: every worker counted by the master's metrics port, a dead
worker's counters kept and its live gauges dropped."""

import os
import signal
import socket
import threading
import time

import pytest
import requests

from gateway.supervisor import processes
from tests.support import GunicornServer, sample

PREDICTIONS = 30


def workers_of(server):
    return sorted(pid for pid, process in processes().items() if process.ppid == server.process.pid)


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.1)


def kill_workers(server, workers):
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    # The master starts new ones; each answers /ready once its model has loaded.
    wait_for(lambda: set(workers).isdisjoint(workers_of(server))
             and len(workers_of(server)) == len(workers))
    server.wait_ready(60)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("predictor")
    with GunicornServer("predictor", workdir, env={"PREDICTOR_WORKERS": "2"}) as server:
        yield server


def predicted(server):
    return sample(server.metrics(), "http_requests_total",
                  route="/predict", method="POST", status="200")


def test_the_master_counts_the_requests_of_every_worker_the_dead_ones_too(predictor):
    def post(n):
        with requests.Session() as session:  # a connection each: both workers take some
            assert session.post(f"{predictor.url}/predict", json={"input": f"cat {n}"},
                                timeout=10).status_code == 200

    threads = [threading.Thread(target=post, args=(n,)) for n in range(PREDICTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert predicted(predictor) == PREDICTIONS

    kill_workers(predictor, workers_of(predictor))
    assert predicted(predictor) == PREDICTIONS  # the killed workers' counts stay
    post(PREDICTIONS)
    samples = predictor.metrics()
    assert predicted(predictor) == PREDICTIONS + 1
    classified = sum(value for (name, _), value in samples.items()
                     if name == "predictor_predictions_total")
    assert classified == PREDICTIONS + 1
    # Ready once every live worker has loaded its model (the slowest, of the two new ones).
    wait_for(lambda: sample(predictor.metrics(), "predictor_model_ready") == 1)


def test_the_service_port_serves_no_metrics(predictor):
    assert requests.get(f"{predictor.url}/metrics", timeout=5).status_code == 404


def test_a_killed_worker_takes_its_requests_in_flight_with_it(tmp_path):
    hung = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
    env = {
        "LOGGER_DB_PATH": str(tmp_path / "logger.sqlite3"),
        "LOGGER_PREDICTOR_URL": f"http://127.0.0.1:{hung.getsockname()[1]}/predict",
        "LOGGER_PREDICTOR_READ_TIMEOUT": "60",
    }
    with hung, GunicornServer("logger", tmp_path, env=env) as logger:
        def in_flight():
            return sample(logger.metrics(), "http_requests_in_flight", route="/process")

        def hang():
            with pytest.raises(requests.ConnectionError):  # its worker is killed
                requests.post(f"{logger.url}/process",
                              json={"data": "x", "forward_to_model": True}, timeout=60)

        request = threading.Thread(target=hang)
        request.start()
        wait_for(lambda: in_flight() == 1)

        kill_workers(logger, workers_of(logger))
        request.join(60)

        assert in_flight() == 0
        samples = logger.metrics()
        assert sample(samples, "logger_database_disk_size_bytes") > 0
        assert 0 < sample(samples, "logger_database_disk_free_bytes") <= sample(
            samples, "logger_database_disk_size_bytes")
