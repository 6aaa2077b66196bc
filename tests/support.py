"""Helpers for tests that run the services for real: free ports and gunicorn servers."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    """One service under gunicorn on a loopback port, its output captured to a file."""

    def __init__(self, service, log_dir, env=None, port=None):
        self.service = service
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"{service}-{self.port}.log"
        prefix = service.upper()
        self.env = {
            **os.environ,
            f"{prefix}_BIND": f"127.0.0.1:{self.port}",
            f"{prefix}_WORKERS": "1",
            f"{prefix}_THREADS": "4",
            **(env or {}),
        }
        self.process = None

    def start(self, timeout=60):
        """Start gunicorn and wait until /ready answers 200; fail with its log if not."""
        log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", f"{self.service}_service/gunicorn.conf.py"],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.service} exited early:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or the worker is booting
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.service} not ready after {timeout}s:\n{self.log()}")

    def stop(self):
        """Stop gunicorn gracefully (SIGTERM), then by force if it lingers."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_lines_with(self, text, timeout=10):
        """Return the log lines that contain text, waiting for gunicorn to write them.

        gunicorn writes the access log line after it has sent the response.
        """
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log().splitlines() if text in line]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def assert_error(response, status, message_part=None):
    """Assert the one JSON error shape of every service; return the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    if message_part:
        assert message_part in body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body
