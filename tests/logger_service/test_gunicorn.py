"""The logger under gunicorn with several workers, as it runs in production."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import GunicornServer, free_port

REQUESTS = 400


@pytest.fixture(scope="module")
def logger_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("logger")
    env = {
        "LOGGER_DB_PATH": str(workdir / "logger.sqlite3"),
        "LOGGER_WORKERS": "4",
        "LOGGER_PREDICTOR_URL": f"http://127.0.0.1:{free_port()}/predict",  # nothing there
    }
    # Its stdout goes to the server's log, its stderr to a file of its own.
    stderr_apart = ("sh", "-c", 'exec "$@" 2>"$0"', str(workdir / "stderr.log"))
    with GunicornServer("logger", workdir, env=env, wrapper=stderr_apart) as server:
        yield server


def test_concurrent_workers_lose_and_corrupt_no_rows(logger_server):
    def post(n):
        with requests.Session() as session:
            response = session.post(
                f"{logger_server.url}/process",
                json={"data": f"concurrent input {n}"},
                headers={"X-Request-ID": f"burst-{n}"},
                timeout=30,
            )
            return response.status_code, response.json()["request_id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(REQUESTS)))

    assert [status for status, _ in results] == [200] * REQUESTS
    with sqlite3.connect(logger_server.env["LOGGER_DB_PATH"]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT request_id, data FROM records").fetchall()
    assert sorted(rows) == sorted((f"burst-{n}", f"concurrent input {n}") for n in range(REQUESTS))


def test_each_request_logs_one_line_with_its_request_id(logger_server):
    requests.post(
        f"{logger_server.url}/process", json={"data": "a"}, headers={"X-Request-ID": "one-line-1"},
        timeout=10,
    )
    requests.get(f"{logger_server.url}/nope", headers={"X-Request-ID": "one-line-2"}, timeout=10)

    [process] = logger_server.log_entries(request_id="one-line-1")
    [not_found] = logger_server.log_entries(request_id="one-line-2")
    assert (process["method"], process["path"], process["status"]) == ("POST", "/process", 200)
    assert process["remote"] == "127.0.0.1" and process["bytes"] > 0
    assert "served_by" not in process  # one logger: no replica to name
    assert (not_found["path"], not_found["status"]) == ("/nope", 404)


def test_gunicorn_and_the_app_log_to_stdout_and_nothing_to_stderr(logger_server):
    response = requests.post(
        f"{logger_server.url}/process", json={"data": "a", "forward_to_model": True},
        headers={"X-Request-ID": "to-stdout"}, timeout=10,
    )

    assert response.status_code == 503
    [access] = logger_server.log_entries(request_id="to-stdout", logger="gunicorn.access")
    assert (access["path"], access["status"]) == ("/process", 503)
    # The app's own line, with the request's id.
    [warning] = logger_server.log_entries(request_id="to-stdout", logger="logger_service.routes")
    assert warning["level"] == "warning"
    assert warning["message"].startswith("request to-stdout: Predictor is unavailable")
    assert logger_server.log_entries(logger="gunicorn.error", message="Starting gunicorn 27.0.1")
    assert (logger_server.log_path.parent / "stderr.log").read_text() == ""
