"""Model versions through the gateway: the canary (a stable share of clients to the
candidate, pins, fallback to production), the rollout command under load, and the Open
Inference Protocol.

One stack for the module, serving a copy of the shipped repository (1.0.0 production,
1.1.0 beside it); each test sets the split it needs with the rollout command's own steps,
and leaves none behind.
"""

import itertools
import shutil
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy
import pytest
import requests
import skops.io
import tritonclient.http as triton

from gateway import rollout
from gateway.layout import Layout
from predictor_service.config import MODEL_NAME, Config
from tests.support import (
    ROOT,
    StackUnderTest,
    SteadyClient,
    assert_error,
    connect_from,
    post_resending,
    shipped_repository_copy,
    wait_until,
)

TEXT = {"input": "my cat purrs on the sofa"}
CLIENTS = [f"client-{n}" for n in range(200)]


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return shipped_repository_copy(tmp_path_factory.mktemp("models"))


class CandidateStandIn(ThreadingHTTPServer):
    """Where the stack's logger asks the candidate for shadow answers: passed on to the
    gateway's real candidate, or held unanswered (a hung candidate), or closed at once
    (a candidate that is down)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CandidateStandInHandler)
        self.mode, self.target, self.seen, self.answered = "pass", None, [], []
        self.released = threading.Event()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/predict"


class CandidateStandInHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append(self.headers["X-Request-ID"])
        if self.server.mode == "down":
            self.close_connection = True
            return
        if self.server.mode == "hang":
            self.server.released.wait(60)
        headers = {name: self.headers[name] for name in
                   ("Content-Type", "X-Request-ID", "X-Model-Version")}
        answer = requests.post(self.server.target, data=body, headers=headers, timeout=10)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)
        self.server.answered.append(self.headers["X-Request-ID"])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def candidate_stand_in():
    server = CandidateStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, repository, candidate_stand_in):
    env = {"LOGGER_SHADOW_URL": candidate_stand_in.url, "LOGGER_SHADOW_READ_TIMEOUT": "5"}
    stack = StackUnderTest(tmp_path_factory.mktemp("canary"), env=env, predictors=2,
                           rate_limit_enabled=False, model_repository=repository.root)
    candidate_stand_in.target = f"{stack.layout.internal_url}/predict"
    with stack as running:
        yield running


def run_rollout(stack, *args):
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "rollout", "--run-dir", str(stack.run_dir), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def layout_of(stack):
    return Layout.saved(stack.run_dir)


def version_for(http, stack, client, path="/predict", **headers):
    if path == "/predict":
        response = http.post(f"{stack.url}/predict", json=TEXT,
                             headers={"X-Client-ID": client, **headers})
        assert response.status_code == 200, response.text
        return response.json()["model"]["version"]
    response = http.post(f"{stack.url}/process", json={"data": TEXT["input"],
                                                        "forward_to_model": True},
                         headers={"X-Client-ID": client, **headers})
    assert response.status_code == 200, response.text
    return response.json()["model_prediction"]["model"]["version"]


@pytest.fixture
def canary_30(stack, repository):
    """1.1.0 the candidate of 30 % of the clients, as `rollout canary` makes it."""
    out = run_rollout(stack, "canary", "30", "--version", "1.1.0")
    assert "every replica serves 1.1.0 as candidate" in out
    yield
    rollout.set_canary(layout_of(stack), 0)


def test_without_a_canary_production_answers_every_client(stack, http):
    assert {version_for(http, stack, client) for client in CLIENTS[:50]} == {"1.0.0"}


def test_the_canary_sends_a_stable_share_of_clients_to_the_candidate(stack, http, canary_30):
    first = {client: version_for(http, stack, client) for client in CLIENTS}
    again = {client: version_for(http, stack, client) for client in CLIENTS}

    assert first == again  # each client keeps its version
    candidates = [client for client, version in first.items() if version == "1.1.0"]
    assert set(first.values()) == {"1.0.0", "1.1.0"}
    # 30 % of 200 is 60, and the split hashes the key (MurmurHash2): its spread on 200
    # keys is about 6.5, so 35 to 85 is nearly 4 of those away either side.
    assert 35 <= len(candidates) <= 85
    # A /process forward splits as the client's /predict does: the logger passes the key.
    sample = CLIENTS[:40]
    assert {c: version_for(http, stack, c, "/process") for c in sample} == {
        c: first[c] for c in sample}


def test_without_a_client_id_the_canary_splits_on_the_address(stack, canary_30):
    def version_from(address):
        with connect_from(address, stack.port, timeout=10) as sock:
            body = b'{"input": "my cat purrs"}'
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer.split(b'"version":"')[1].split(b'"')[0].decode()

    addresses = [f"127.0.0.{n}" for n in range(2, 62)]
    first = {address: version_from(address) for address in addresses}

    assert first == {address: version_from(address) for address in addresses}
    assert set(first.values()) == {"1.0.0", "1.1.0"}


def test_a_client_pins_a_version_or_alias_with_a_header(stack, http, canary_30):
    for client in CLIENTS[:20]:
        assert version_for(http, stack, client, **{"X-Model-Version": "1.0.0"}) == "1.0.0"
        assert version_for(http, stack, client, **{"X-Model-Version": "1.1.0"}) == "1.1.0"
        assert version_for(http, stack, client, **{"X-Model-Version": "candidate"}) == "1.1.0"
        assert version_for(http, stack, client, "/process",
                           **{"X-Model-Version": "1.1.0"}) == "1.1.0"

    unknown = http.post(f"{stack.url}/predict", json=TEXT, headers={"X-Model-Version": "9.9.9"})
    assert_error(unknown, 404, "Unknown model version '9.9.9'")
    malformed = http.post(f"{stack.url}/predict", json=TEXT,
                          headers={"X-Model-Version": "1.0.0; drop table"})
    assert_error(malformed, 404, "Unknown model version 'invalid'")
    via_logger = http.post(f"{stack.url}/process", json={"data": "x", "forward_to_model": True},
                           headers={"X-Model-Version": "9.9.9"})
    assert_error(via_logger, 404, "No predictor serves the model version asked for")


def test_a_candidate_that_cannot_answer_is_replaced_by_production(stack, http, repository):
    # 1.2.0 passes the repository's checks (a skops file of trusted types, good metrics)
    # but is no model: no worker can load it, so none serves it as the candidate.
    broken = repository.folder / "1.2.0"
    shutil.copytree(repository.get("1.1.0").folder, broken)
    skops.io.dump({"not": "a pipeline"}, broken / "model.skops")
    (broken / "model.json").write_text(
        (broken / "model.json").read_text().replace('"version": "1.1.0"', '"version": "1.2.0"'))
    repository.stage("1.2.0", Config.MIN_ACCURACY)
    for port in stack.predictor_ports:  # one worker each: its /models is the replica's
        wait_until(lambda port=port: "1.2.0" in {
            v["version"] for v in http.get(f"http://127.0.0.1:{port}/models").json()})
    rollout.set_canary(layout_of(stack), 100)
    try:
        # New connections, which only the reloaded workers take: an old worker may still
        # answer one request on a keep-alive connection of the session's with the old split.
        with requests.Session() as fresh:
            versions = [version_for(fresh, stack, client,
                                    **{"X-Request-ID": f"fallback-{client}"})
                        for client in CLIENTS[:30]]
        entries = stack.access_log("fallback-", 30)
    finally:
        rollout.set_canary(layout_of(stack), 0)
        repository.stage(None, Config.MIN_ACCURACY)

    assert versions == ["1.0.0"] * 30
    # Each asked the candidate (404: not served there), then production.
    assert {(entry["status"], entry["upstream_status"], entry["model_version"])
            for entry in entries} == {(200, "404 : 200", "production")}


def test_a_replica_down_under_a_full_canary_fails_no_request(stack, http, canary_30):
    rollout.set_canary(layout_of(stack), 100)
    down = stack.predictor_ports[0]
    stack.supervisorctl("stop", f"predictor:predictor-{down}")
    try:
        versions = [version_for(http, stack, client) for client in CLIENTS[:60]]
    finally:
        stack.supervisorctl("start", f"predictor:predictor-{down}")
        stack.wait_ready()
        stack.wait_until_serving(http, down)

    # The candidate tried on the stopped replica: production answers from the other.
    assert set(versions) <= {"1.0.0", "1.1.0"} and "1.1.0" in versions


def sent(senders):
    return sum(len(sender.statuses) + len(sender.failures) for sender in senders)


def test_changing_the_split_is_a_reload_that_drops_no_request(stack, canary_30):
    # Each reload ends Nginx's old workers, which close their idle keep-alive connections:
    # a request sent on one at that instant was never read, and the client resends it.
    senders = [SteadyClient(f"{stack.url}/predict", TEXT, headers={"X-Client-ID": client},
                            resend_closed=True) for client in CLIENTS[:4]]
    with ExitStack() as running:
        for sender in senders:
            running.enter_context(sender)
            sender.wait_for(20)
        layout = layout_of(stack)
        for percent in (0, 50, 0, 50, 0, 30):
            layout = rollout.set_canary(layout, percent)
            goal = sent(senders) + 20
            wait_until(lambda goal=goal: sent(senders) >= goal)

    assert [sender.failures for sender in senders] == [[]] * 4
    assert {status for sender in senders for status in sender.statuses} == {200}
    resent = [exc for sender in senders for exc in sender.resent]
    print(f"{sent(senders)} requests, {len(resent)} resent after a closed connection: {resent}")


def test_the_open_inference_protocol_through_the_gateway_splits_as_predict(stack, http,
                                                                           canary_30):
    client = triton.InferenceServerClient(stack.url.removeprefix("http://"))
    text = triton.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(numpy.array([TEXT["input"]], dtype=object), binary_data=False)
    outputs = [triton.InferRequestedOutput("label", binary_data=False)]
    try:
        assert client.is_server_ready() and client.is_model_ready(MODEL_NAME)
        for name in CLIENTS[:40]:
            result = client.infer(MODEL_NAME, [text], outputs=outputs,
                                  headers={"X-Client-ID": name})
            assert result.get_response()["model_version"] == version_for(http, stack, name)
        pinned = client.infer(MODEL_NAME, [text], outputs=outputs, model_version="1.1.0")
        assert pinned.get_response()["model_version"] == "1.1.0"
    finally:
        client.close()


class VersionRecorder:
    """Threads sending /predict one after another, each for its own clients in turn,
    recording when each request was sent and answered, and which version answered; a
    request whose keep-alive connection a reload closed before any answer is resent."""

    def __init__(self, url, clients, threads=4, max_seconds=240):
        self.url, self.max_seconds = url, max_seconds
        self.answers, self.failures = [], []  # (sent, answered, client, version)
        self.resent = []  # see post_resending
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(clients[n::threads],))
                         for n in range(threads)]

    def _run(self, clients):
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            for client in itertools.cycle(clients):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    response = post_resending(session, self.url, self.resent, json=TEXT,
                                              timeout=15, headers={"X-Client-ID": client})
                except requests.RequestException as exc:
                    self.failures.append((client, repr(exc)))
                    continue
                if response.status_code != 200:
                    self.failures.append((client, response.status_code, response.text))
                    continue
                version = response.json()["model"]["version"]
                self.answers.append((sent, time.monotonic(), client, version))

    def wait_for_more(self, count):
        goal = len(self.answers) + len(self.failures) + count
        wait_until(lambda: len(self.answers) + len(self.failures) >= goal, timeout=60)

    def between(self, start, end):
        """{client: {versions}} of the requests sent after start and answered before end."""
        seen = {}
        for sent, answered, client, version in self.answers:
            if sent > start and answered < end:
                seen.setdefault(client, set()).add(version)
        return seen

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_a_canary_then_promotion_then_rollback_under_load_fail_no_request(stack, repository):
    moments = []  # (when a step was asked, when it returned)

    def step(*args):
        asked = time.monotonic()
        run_rollout(stack, *args)
        moments.append((asked, time.monotonic()))

    with VersionRecorder(f"{stack.url}/predict", CLIENTS[:40]) as load:
        load.wait_for_more(100)
        step("canary", "30", "--version", "1.1.0")
        load.wait_for_more(200)
        step("promote")
        load.wait_for_more(200)
        step("rollback")
        load.wait_for_more(200)

    assert load.failures == []
    print(f"{len(load.answers)} answers, {len(load.resent)} resent after a closed connection")
    (canary_asked, canary_done), (promote_asked, promote_done), (rollback_asked,
                                                                 rollback_done) = moments
    # Before the canary: production only.
    assert set.union(*load.between(0, canary_asked).values()) == {"1.0.0"}
    # During the canary: each client one version, some clients the candidate's.
    canary = load.between(canary_done, promote_asked)
    assert all(len(versions) == 1 for versions in canary.values()), canary
    assert {version for versions in canary.values() for version in versions} == {"1.0.0", "1.1.0"}
    # Promoted: the candidate for every client; rolled back: the old production again.
    assert set.union(*load.between(promote_done, rollback_asked).values()) == {"1.1.0"}
    assert set.union(*load.between(rollback_done, float("inf")).values()) == {"1.0.0"}
    # While the canary started, a client outside it never met the candidate.
    outside = {client for client, versions in canary.items() if versions == {"1.0.0"}}
    assert {version for sent, answered, client, version in load.answers
            if client in outside and sent < promote_asked} == {"1.0.0"}
    aliases = repository.aliases()
    assert (aliases["production"], aliases["candidate"]) == ("1.0.0", None)
    assert [change["action"] for change in aliases["changes"]][-3:] == [
        "stage", "promote", "rollback"]


@pytest.fixture
def shadow_all(stack, candidate_stand_in):
    """1.1.0 the candidate, every prediction production answers mirrored to it."""
    run_rollout(stack, "canary", "0", "--version", "1.1.0")
    assert "mirrors 100 %" in run_rollout(stack, "shadow", "100")
    yield candidate_stand_in
    candidate_stand_in.mode = "pass"
    candidate_stand_in.released.set()
    rollout.set_shadow(layout_of(stack), 0)


def experiment(http, stack):
    response = http.get(f"{stack.url}/experiments/current")
    assert response.status_code == 200, response.text
    return response.json()


def forward(http, stack, request_id, text="the goldfish swims in its bowl"):
    response = http.post(f"{stack.url}/process", json={"data": text, "forward_to_model": True},
                         headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    return response.json()["model_prediction"]["model"]["version"]


def test_shadow_traffic_records_both_answers_under_one_request_id(stack, http, shadow_all):
    before = experiment(http, stack)["versions"].get("1.1.0", {}).get("shadow", {})
    ids = [f"shadowed-{n}" for n in range(30)]

    assert [forward(http, stack, request_id) for request_id in ids] == ["1.0.0"] * 30

    wait_until(lambda: set(ids) <= set(shadow_all.answered), what="30 shadow answers")
    wait_until(lambda: experiment(http, stack)["versions"]["1.1.0"]["shadow"]["compared"]
               >= before.get("compared", 0) + 30, what="30 shadows compared")
    report = experiment(http, stack)
    assert report["versions"]["1.1.0"]["shadow"]["agreement"] == 1.0
    assert report["versions"]["1.0.0"]["served"]["requests"] >= 30
    # The gateway saw each id twice on its internal listener: production's answer to the
    # logger's forward, and the candidate's to the logger's shadow.
    entries = stack.access_log("shadowed-", 90)  # with the public /process of each
    assert {(entry["request_id"], entry["model_version"]) for entry in entries
            if entry["uri"] == "/predict"} == {
        (request_id, version) for request_id in ids for version in ("production", "candidate")}


def test_a_batch_of_forwards_is_shadowed_under_each_request_id_from_the_logger_only(
        stack, http, shadow_all):
    texts = ["the goldfish swims in its bowl", "my cat purrs on the sofa"]
    # A client naming ids on the public listener, then a batch as the logger sends one.
    named_by_a_client, forwarded = ["client-named-0", "client-named-1"], ["batch-0", "batch-1"]
    for url, request_ids in ((stack.url, named_by_a_client),
                             (stack.layout.internal_url, forwarded)):
        response = http.post(f"{url}/predict", json={"inputs": texts},
                             headers={"X-Request-ID": request_ids[0],
                                      "X-Batch-Request-IDs": " ".join(request_ids)})
        assert response.status_code == 200, response.text

    wait_until(lambda: set(forwarded) <= set(shadow_all.answered), what="both batch shadows")
    assert not set(named_by_a_client) & set(shadow_all.seen)


@pytest.mark.parametrize("mode", ["hang", "down"])
def test_a_hung_or_stopped_candidate_changes_no_answer_to_clients(stack, http, shadow_all, mode):
    shadow_all.mode = mode
    shadow_all.released.clear()
    ids = [f"{mode}-{n}" for n in range(10)]
    failures_before = sum(experiment(http, stack)["shadow_failures"].values())

    versions = [forward(http, stack, request_id) for request_id in ids]
    for request_id in ids:  # and straight to /predict, on the same keep-alive session
        response = http.post(f"{stack.url}/predict", json=TEXT,
                             headers={"X-Request-ID": f"{request_id}-direct"})
        assert response.status_code == 200 and response.json()["model"]["version"] == "1.0.0"

    assert versions == ["1.0.0"] * 10
    if mode == "hang":
        # Every client had its answer while the candidate held the shadows it was asked.
        wait_until(lambda: set(ids) & set(shadow_all.seen), what="a shadow held")
        assert not set(ids) & set(shadow_all.answered)
        shadow_all.released.set()
        wait_until(lambda: set(ids) <= set(shadow_all.answered), what="the shadows answered")
    else:
        wait_until(lambda: sum(experiment(http, stack)["shadow_failures"].values())
                   >= failures_before + 20, what="20 shadows recorded unavailable")
        assert set(ids) <= set(shadow_all.seen)


def test_the_gateways_own_errors_under_v2_have_the_protocols_shape(stack, http):
    too_large = http.post(f"{stack.url}/v2/models/{MODEL_NAME}/infer", data=b"x" * (2 << 20))
    wrong_method = http.delete(f"{stack.url}/v2/models/{MODEL_NAME}/infer")

    assert too_large.status_code == 413 and too_large.json() == {
        "error": "The request body is larger than 1 MiB."}
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error"}
    assert wrong_method.headers["Allow"] == "POST"
    # Elsewhere, the services' shape.
    assert set(http.post(f"{stack.url}/predict", data=b"x" * (2 << 20)).json()) == {
        "code", "status", "message"}
