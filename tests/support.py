"""Helpers for tests that run the services for real: gunicorn servers and whole stacks.

The stack itself is run by the project's own runner (gateway.runner); what is here is
only what tests read of it.
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from gateway.layout import ROOT, Layout
from gateway.ports import free_port, free_port_range, port_is_free
from gateway.runner import LocalStack, answers_ok, wait_for_output
from predictor_service.config import DEFAULT_REPOSITORY, MODEL_NAME, Config
from predictor_service.repository import Repository

__all__ = ["ROOT", "answers_ok", "free_port", "free_port_range", "port_is_free",
           "wait_for_output"]


class GunicornServer:
    """One service under gunicorn on a loopback port, its output captured to a file."""

    def __init__(self, service, log_dir, env=None, port=None, wrapper=(), started="/ready"):
        self.service = service
        # A command that runs gunicorn, e.g. in a mount namespace: it must exec it.
        self.wrapper = list(wrapper)
        # The path that answers 200 once it has started: /health for one not meant to be ready.
        self.started = started
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self.log_path = Path(log_dir) / f"{service}-{self.port}.log"
        prefix = service.upper()
        self.env = {
            **os.environ,
            f"{prefix}_BIND": f"127.0.0.1:{self.port}",
            f"{prefix}_METRICS_BIND": self.metrics_url.split("/")[2],
            f"{prefix}_WORKERS": "1",
            f"{prefix}_THREADS": "4",
            **(env or {}),
        }
        self.process = None

    def start(self, timeout=60):
        """Start gunicorn and wait until it has started; fail with its log if not."""
        log_file = open(self.log_path, "ab")
        config = f"{self.service}_service/gunicorn.conf.py"
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", config]
        self.process = subprocess.Popen(
            [*self.wrapper, *gunicorn],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to signal master and workers
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
                if requests.get(f"{self.url}{self.started}", timeout=1).status_code == 200:
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

    def kill(self):
        """SIGKILL the master and its workers at once, as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def metrics(self):
        """The samples its metrics port serves now (scrape())."""
        return scrape(self.metrics_url)

    def log_entries(self, timeout=10, **fields):
        """Return the log's JSON lines whose fields have these values, waiting for
        gunicorn to write one; fail on a line that is not JSON."""
        deadline = time.monotonic() + timeout
        while True:
            entries = [json.loads(line) for line in self.log().splitlines()]
            found = [entry for entry in entries
                     if all(entry.get(name) == value for name, value in fields.items())]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def serve(status, body, content_type="application/json", before_answer=None):
    """Start a stand-in predictor that answers every POST with a fixed reply, after
    calling before_answer() when given; body may instead be a function of the request's
    headers and body that returns the reply's."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request_body = self.rfile.read(int(self.headers["Content-Length"]))
            if before_answer:
                before_answer()
            payload = (body(self.headers, request_body) if callable(body) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def scrape(url):
    """The samples of a Prometheus metrics page, as {(name, ((label, value), ...)): value}."""
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


class Prometheus:
    """A running Prometheus, asked through its HTTP API."""

    def __init__(self, url):
        self.url = url

    def query(self, promql):
        """The value of an instant query that gives one sample at most, None for none."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql},
                                timeout=10)
        response.raise_for_status()
        result = response.json()["data"]["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def settles_at(self, promql, expected, timeout=60):
        """Wait until the query gives expected: Prometheus has scraped what was sent."""
        try:
            wait_until(lambda: self.query(promql) == expected, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"{promql} is {self.query(promql)}, not {expected}") from None

    def alerts(self, name):
        """The alerts of that name now, firing or pending, as {instance: state}."""
        response = requests.get(f"{self.url}/api/v1/alerts", timeout=10)
        response.raise_for_status()
        return {alert["labels"].get("instance"): alert["state"]
                for alert in response.json()["data"]["alerts"]
                if alert["labels"]["alertname"] == name}


def sample(samples, name, **labels):
    """The value of one sample of scrape()'s result, 0 when it is not there (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def shipped_repository_copy(root, candidate=None):
    """A copy of the shipped model repository in root, for a test to move its aliases:
    1.0.0 production, and candidate (1.1.0, say) staged if given."""
    shutil.copytree(DEFAULT_REPOSITORY / MODEL_NAME, Path(root) / MODEL_NAME,
                    ignore=shutil.ignore_patterns("aliases.json", ".*"))
    repository = Repository(root)
    repository.initialise("1.0.0")
    if candidate:
        repository.stage(candidate, Config.MIN_ACCURACY)
    return repository


def assert_error(response, status, message_part=None):
    """Assert the one JSON error shape of every service; return the body. response is a
    Flask test client's or a requests one."""
    text = response.text if hasattr(response, "text") else response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(text)
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    if message_part:
        assert message_part in body["message"]
    assert "Traceback" not in text
    return body


class StackUnderTest(LocalStack):
    """The whole stack, as `python -m gateway up` runs it, on free loopback ports."""

    def __init__(self, run_dir, env=None, **settings):
        super().__init__(Layout.on_free_ports(run_dir, **settings), env)

    def access_log(self, request_id_prefix, count):
        """The gateway's access-log entries of the count requests whose id has this prefix."""

        def entries():
            lines = self.log("nginx").splitlines()  # its error log too: keep the JSON
            logged = [json.loads(line) for line in lines if line.startswith("{")]
            return [entry for entry in logged if entry["request_id"].startswith(request_id_prefix)]

        wait_until(lambda: len(entries()) >= count, what=f"{count} {request_id_prefix}* log lines")
        return entries()

    def wait_until_serving(self, http, port=None, timeout=60):
        """Wait until the gateway answers /predict, from the replica on port if given.

        Nginx keeps a replica that failed out of rotation for fail_timeout (5 s), so a
        replica that answers /ready may still wait a moment for traffic.
        """
        deadline = time.monotonic() + timeout
        while port and not answers_ok(f"http://127.0.0.1:{port}/ready"):
            assert time.monotonic() < deadline, f"replica {port} is not ready again"
            time.sleep(0.2)
        while time.monotonic() < deadline:
            response = http.post(f"{self.url}/predict", json={"input": "back?"})
            if response.status_code == 200 and port in (None, served_by_port(response)):
                return
            time.sleep(0.05)
        raise AssertionError(f"the gateway does not serve /predict from {port or 'any replica'}")


def served_by_port(response):
    """The port of the predictor replica that answered, from its X-Served-By header."""
    return int(response.headers["X-Served-By"].rsplit(":", 1)[1])


# A ```bash block with a curl command, followed at once by a ```json block: its answer.
README_EXAMPLE = re.compile(r"```bash\n(curl [^`]*?)```\n```json\n(.*?)```", re.DOTALL)


def wait_until(condition, timeout=30, what="the condition"):
    """Poll condition() until it is true; fail, rather than hang, after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def in_forked_child(run):
    """Run run() in a child forked from this (threaded) process; return what it returned,
    as text, or "" if it failed."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a threaded process: here that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            os.write(write, str(run()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as answer:
        return answer.read().decode()


def readme_examples(base_url):
    """The README's curl examples that go to base_url, each with its documented answer."""
    return [
        (command, json.loads(answer))
        for command, answer in README_EXAMPLE.findall((ROOT / "README.md").read_text())
        if base_url in command
    ]


def matches(expected, actual):
    """Equal, except that any string stands for a request_id, which differs on every run."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            isinstance(actual[key], str) if key == "request_id" else matches(value, actual[key])
            for key, value in expected.items()
        )
    return expected == actual


def run_example(command, base_url, target_url):
    """Run a README curl command against target_url instead of base_url; return its JSON."""
    result = subprocess.run(["bash", "-c", command.replace(base_url, target_url)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dockerfile_instructions(path):
    """A Dockerfile's instructions, as (KEYWORD, arguments), continuation lines joined."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in joined.splitlines() if line.strip()]


def closed_before_answer(exc):
    """Whether a request failed because its reused keep-alive connection was closed
    before any answer came: Nginx's old workers close their idle connections as a reload
    ends them, and a request sent on one at that instant was never read."""
    # urllib3's "Connection aborted.": the answer's status line never came.
    return isinstance(exc, requests.ConnectionError) and "Connection aborted." in repr(exc)


def post_resending(session, url, resent, **kwargs):
    """session.post, sent once more on a new connection if the first was closed before
    any answer (RFC 9112 9.3.1: a client may resend an idempotent request then, as the
    logger's client does for its forwards); each resend is appended to resent."""
    try:
        return session.post(url, **kwargs)
    except requests.ConnectionError as exc:
        if not closed_before_answer(exc):
            raise
        resent.append(repr(exc))
        return session.post(url, **kwargs)


class SteadyClient:
    """Sends POST requests one after another from a thread, recording every outcome.

    Bounded in count and time; use as a context manager. With resend_closed, a request
    whose keep-alive connection was closed before any answer is sent again (see
    post_resending), and counted in resent. acknowledged: the X-Request-ID of each 200.
    """

    def __init__(self, url, body, max_requests=5000, max_seconds=90, headers=None,
                 resend_closed=False):
        self.url, self.body, self.headers = url, body, headers
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.resend_closed = resend_closed
        self.statuses, self.failures, self.resent, self.acknowledged = [], [], [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            while not self._stop.is_set() and len(self.statuses) < self.max_requests:
                if time.monotonic() > deadline:
                    break
                try:
                    if self.resend_closed:
                        response = post_resending(session, self.url, self.resent,
                                                  json=self.body, headers=self.headers,
                                                  timeout=15)
                    else:
                        response = session.post(self.url, json=self.body,
                                                headers=self.headers, timeout=15)
                    self.statuses.append(response.status_code)
                    if response.status_code == 200:
                        self.acknowledged.append(response.headers.get("X-Request-ID"))
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def wait_for(self, count, timeout=60):
        """Wait until count requests have been sent (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while len(self.statuses) + len(self.failures) < count and time.monotonic() < deadline:
            time.sleep(0.01)


# Linux's IP_BIND_ADDRESS_NO_PORT (socket.h; Python names it from 3.12 on).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def connect_from(address, port, timeout=None):
    """A TCP connection to the loopback port from a given source address.

    A plain bind((address, 0)) takes a local port for good, on every address, until its
    TIME_WAIT ends: a test that opens thousands of connections this way runs the machine
    out of ports for every later connect() ("Cannot assign requested address").
    IP_BIND_ADDRESS_NO_PORT leaves the choice of port to connect(), which shares ports
    between destinations and reuses TIME_WAIT ones on loopback.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.settimeout(timeout)
        sock.bind((address, 0))
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


class ConnectionFrom(HTTPConnection):
    """An HTTP connection to the loopback port from a given source address."""

    def __init__(self, address, port, timeout=30):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = connect_from(self.address, self.port, self.timeout)


def request_from(address, port, method, path, body=None, headers=None, timeout=30):
    """One request to the loopback port from a given source address (another client, as
    the gateway sees it); return (status, headers, the JSON body or None)."""
    connection = ConnectionFrom(address, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else {}
        connection.request(method, path, payload, sent)
        response = connection.getresponse()
        data = response.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return response.status, dict(response.getheaders()), parsed
    finally:
        connection.close()


def hold_requests(address, port, path, count, headers=None):
    """count requests from address whose heads are complete and whose bodies never come:
    each holds a request in progress until client_body_timeout (10 s)."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    held = []
    for _ in range(count):
        sock = connect_from(address, port, timeout=10)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"{extra}Content-Length: 100\r\n\r\n{{".encode())
        held.append(sock)
    return held


def close_held(stack, sockets):
    """Close held connections, and wait until the gateway has let go of their requests
    (its stub_status shows no request in progress but the one asking), so that they no
    longer count against their client's limits."""
    for sock in sockets:
        sock.close()

    def in_progress():
        status = requests.get(f"{stack.layout.internal_url}/nginx_status", timeout=5).text
        reading, writing = re.search(r"Reading: (\d+) Writing: (\d+)", status).groups()
        return int(reading) + int(writing)

    wait_until(lambda: in_progress() == 1, timeout=15,
               what="the gateway let go of the held requests")


def first_answers(sockets, count):
    """Wait until count of sockets have an answer; return those answers (raw bytes).

    Nginx answers at once the held requests past a limit, and the others only at
    client_body_timeout (10 s): the answers that come first are the refusals.
    """
    answers = {}

    def collect():
        waiting = [sock for sock in sockets if sock not in answers]
        for sock in select.select(waiting, [], [], 0.1)[0]:
            answers[sock] = sock.recv(65536)
        return len(answers) >= count

    wait_until(collect, timeout=8, what=f"{count} held requests answered")
    return list(answers.values())


def listening_addresses(port):
    """The local addresses that listen on a TCP port, from /proc/net/tcp."""
    addresses = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:  # LISTEN
                addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses
