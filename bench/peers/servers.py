"""The benchmark's peers: how to install, start, ask and check each one.

    .venv/bin/python -m bench.peers.servers check

Runs in the project venv. FastAPI runs there too (bench/requirements.txt installs it);
MLServer, BentoML and LitServe each run in their own venv, bench/peers/<name>/.venv,
pinned by bench/peers/<name>/requirements.txt, and import no project package: the
artifact's path (PEER_MODEL_PATH) and the project's TRUSTED_TYPES (PEER_TRUSTED_TYPES)
reach them through the environment.

For bench/run.py: ensure_venv(name), then start(name, port, log_path) gives a
RunningPeer (.url, .predict_url, .stop()); body(name, text) is what its predict_url
takes for one text, answer(name, response_json) the (class, confidence) in its answer,
check(name, url) asserts that they equal ours. `check` does all of it for every peer,
plus 64 concurrent requests that must all be answered as ours, in batches.
"""

import argparse
import concurrent.futures
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.ports import free_port
from predictor_service.config import DEFAULT_REPOSITORY
from predictor_service.model import TRUSTED_TYPES, TextClassifier
from predictor_service.repository import PRODUCTION, Repository

PEERS_DIR = Path(__file__).resolve().parent
ROOT = PEERS_DIR.parents[1]
# The project venv's version: each peer's venv loads the same artifact with the same code.
PYTHON = "python3.11"
STAMP = ".installed"
CHECK_TEXT = "test input"
SMOKE_REQUESTS = 64
START_TIMEOUT_SECONDS = 180  # MLServer starts 2 workers that each load the model
STOP_TIMEOUT_SECONDS = 20
BATCH_LINE = re.compile(r"^peer batch: (\d+) texts$", re.MULTILINE)


class PeerMismatch(AssertionError):
    """A peer answered something other than what predictor_service answers."""


class PeerDidNotStart(RuntimeError):
    """A peer exited, or did not answer its readiness route in time."""


class Peer:
    """One peer: its library, its routes, and the command that serves it on a port."""

    name = library = predict_path = ready_path = ""
    own_venv = True
    batching = True
    # SIGTERM to the whole process group, or to the main process only (which then
    # stops its workers itself).
    signal_group = False

    @property
    def folder(self):
        return PEERS_DIR / self.name

    @property
    def python(self):
        return self.folder / ".venv" / "bin" / "python" if self.own_venv else Path(sys.executable)

    def command(self, port):
        """Return the command that serves the peer on 127.0.0.1:port."""
        raise NotImplementedError

    def environment(self, port, scratch):
        """Variables of this peer's own, beyond PEER_MODEL_PATH and PEER_TRUSTED_TYPES."""
        return {}

    def body(self, text):
        """Return the JSON request (a dict) that asks about one text."""
        raise NotImplementedError

    def answer(self, response):
        """Return (class, confidence) from the JSON answer about one text."""
        raise NotImplementedError


class FastAPIPeer(Peer):
    # The lab's FastAPI predictor (no batching, by design: bench/peers/README.md), with
    # uvicorn's access log, a line per request as ours writes.
    name, library, predict_path, ready_path = "fastapi", "fastapi", "/predict", "/health"
    own_venv = batching = False

    def command(self, port):
        return [str(self.python), "-m", "uvicorn", "bench.peers.fastapi_predictor:app",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]

    def body(self, text):
        return {"input": text}

    def answer(self, response):
        return response["prediction"]["class"], response["prediction"]["confidence"]


class MLServerPeer(Peer):
    name = library = "mlserver"
    predict_path = "/v2/models/pet-text-classifier/infer"
    # The model's own readiness (400, not 503, until it has loaded): the server's,
    # /v2/health/ready, answers 200 when a model has failed to load, as it shuts down.
    ready_path = "/v2/models/pet-text-classifier/ready"

    def command(self, port):
        return [str(self.python.parent / "mlserver"), "start", "."]

    def environment(self, port, scratch):
        # settings.json holds the rest. MLServer also serves gRPC and its metrics, and
        # writes its metrics' files and an .envs folder into the current one otherwise.
        return {"MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(free_port()),
                "MLSERVER_METRICS_PORT": str(free_port()), "MLSERVER_METRICS_DIR": str(scratch),
                "MLSERVER_ENVIRONMENTS_DIR": str(scratch)}

    def body(self, text):
        return {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}

    def answer(self, response):
        outputs = {output["name"]: output["data"][0] for output in response["outputs"]}
        return outputs["class"], outputs["confidence"]


class BentoMLPeer(Peer):
    name = library = "bentoml"
    predict_path, ready_path = "/classify", "/readyz"

    def command(self, port):
        return [str(self.python.parent / "bentoml"), "serve", "service:PetTextClassifier",
                "--host", "127.0.0.1", "--port", str(port)]

    def environment(self, port, scratch):
        # Its home (bentos, models, metrics) in the run's scratch folder, and no usage
        # reports sent out.
        return {"BENTOML_HOME": str(scratch), "BENTOML_DO_NOT_TRACK": "True"}

    def body(self, text):
        return {"inputs": [text]}  # a batchable API takes a list

    def answer(self, response):
        return response[0]["class"], response[0]["confidence"]


class LitServePeer(Peer):
    name = library = "litserve"
    predict_path, ready_path = "/predict", "/health"
    # Its main process dies on SIGTERM and leaves its API servers and inference workers
    # running (still listening); SIGTERM to each of them stops them all.
    signal_group = True

    def command(self, port):
        return [str(self.python), "server.py", "--port", str(port)]

    def body(self, text):
        return {"input": text}

    def answer(self, response):
        return response["class"], response["confidence"]


PEERS = {peer.name: peer for peer in (FastAPIPeer(), MLServerPeer(), BentoMLPeer(), LitServePeer())}


def production_artifact():
    """Return the path of the production version of the shipped model."""
    return Repository(DEFAULT_REPOSITORY).artifact(PRODUCTION)


@functools.cache
def _our_model():
    return TextClassifier.load(production_artifact())


def our_answers(texts):
    """Return what predictor_service answers for each text: (class, confidence)."""
    return [(prediction.label, prediction.confidence) for prediction in _our_model().predict(texts)]


def ensure_venv(name):
    """Install the peer's venv from its requirements.txt, unless its stamp says it is current."""
    peer = PEERS[name]
    if not peer.own_venv:
        if importlib.util.find_spec("fastapi") is None:
            raise RuntimeError("the FastAPI peer needs bench/requirements.txt installed")
        return
    venv = peer.folder / ".venv"
    requirements = peer.folder / "requirements.txt"
    # The stamp holds the hash of what was installed: a changed pin (or checkout) reinstalls.
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text() == wanted:
        return
    python = shutil.which(PYTHON)
    if python is None:
        raise RuntimeError(f"{PYTHON} is missing: the peers' venvs use the project's Python")
    print(f"installing {venv.relative_to(ROOT)}", file=sys.stderr, flush=True)
    # --clear: the venv then holds exactly the pins, nothing left from older ones.
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(peer.python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-r", str(requirements)], check=True)
    stamp.write_text(wanted)


def version(name):
    """Return the version of the peer's server library, as its venv has it."""
    peer = PEERS[name]
    if not peer.own_venv:
        return importlib.metadata.version(peer.library)
    return subprocess.run(
        [str(peer.python), "-c",
         f"import importlib.metadata as m; print(m.version({peer.library!r}))"],
        capture_output=True, text=True, check=True).stdout.strip()


def path(name):
    """Return the route that takes one text."""
    return PEERS[name].predict_path


def body(name, text):
    """Return the JSON request (bytes) that asks the peer about one text."""
    return json.dumps(PEERS[name].body(text)).encode()


def answer(name, response_json):
    """Return the (class, confidence) of the peer's answer for one text."""
    return PEERS[name].answer(response_json)


def _processes():
    """{pid: (state, ppid, process group)} of every process, read from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        table[int(stat.parent.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def _family(leader):
    """The pids of the leader's process group and of all its descendants (BentoML's
    workers run in sessions of their own), zombies left out."""
    table = _processes()
    family = {pid for pid, (_, _, group) in table.items() if group == leader} | {leader}
    pending = list(family)
    while pending:
        parent = pending.pop()
        for pid, (_, ppid, _) in table.items():
            if ppid == parent and pid not in family:
                family.add(pid)
                pending.append(pid)
    return {pid for pid in family if pid in table and table[pid][0] != "Z"}


class RunningPeer:
    """A peer serving on 127.0.0.1 in a process group of its own, until stop()."""

    def __init__(self, name, port, log_path, model_path=None, log_batches=False):
        self.peer = PEERS[name]
        self.url = f"http://127.0.0.1:{port}"
        self.predict_url = self.url + self.peer.predict_path
        self.log_path = Path(log_path)
        self._scratch = Path(tempfile.mkdtemp(prefix=f"peer-{name}-"))
        environment = {
            **os.environ,
            "PEER_MODEL_PATH": str(model_path or production_artifact()),
            "PEER_TRUSTED_TYPES": json.dumps(TRUSTED_TYPES),
            **self.peer.environment(port, self._scratch),
        }
        if log_batches:
            environment["PEER_LOG_BATCHES"] = "1"
        if self.peer.own_venv:
            bin_folder = self.peer.python.parent
            environment["VIRTUAL_ENV"] = str(bin_folder.parent)
            environment["PATH"] = f"{bin_folder}{os.pathsep}{environment.get('PATH', '')}"
            environment.pop("PYTHONPATH", None)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.peer.command(port), cwd=self.peer.folder if self.peer.own_venv else ROOT,
            env=environment, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_ready(self, timeout=START_TIMEOUT_SECONDS):
        """Wait until the readiness route answers 200; stop and raise PeerDidNotStart if
        the peer exits or the timeout passes, with the end of its log."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self._fail(f"exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + self.peer.ready_path, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.HTTPError):
                pass  # not listening yet, or not ready (MLServer: 400 until loaded)
            if time.monotonic() > deadline:
                self._fail(f"was not ready after {timeout} s")
            time.sleep(0.25)

    def log_tail(self, lines=40):
        """Return the last lines of the peer's log."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, reason):
        self.stop()
        raise PeerDidNotStart(f"{self.peer.name} {reason}; its log ends:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM the peer, wait for all its processes, SIGKILL any still there after
        STOP_TIMEOUT_SECONDS; once stopped, do nothing."""
        if self._log.closed:
            return
        leader = self.process.pid
        family = _family(leader)
        try:
            if self.peer.signal_group:
                os.killpg(leader, signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self.process.poll()  # reaps the leader, our child, once it exits
            family = (family | _family(leader)) & set(_processes())
            if not _alive(family):
                break
            time.sleep(0.2)
        for pid in _alive(family):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        deadline = time.monotonic() + 5
        while _alive(family) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._log.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def _alive(pids):
    table = _processes()
    return {pid for pid in pids if pid in table and table[pid][0] != "Z"}


def start(name, port, log_path, model_path=None, log_batches=False):
    """Start the peer on 127.0.0.1:port (its output to log_path) and wait until it is ready."""
    return RunningPeer(name, port, log_path, model_path, log_batches).wait_until_ready()


def _ask(name, url, text):
    """POST one text to the peer: (status, its (class, confidence) or None)."""
    request = urllib.request.Request(url + path(name), data=body(name, text),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, answer(name, json.load(response))
    except urllib.error.HTTPError as error:
        return error.code, None


def check(name, url):
    """Assert that the peer at url answers CHECK_TEXT with our class and confidence."""
    expected = our_answers([CHECK_TEXT])[0]
    status, got = _ask(name, url, CHECK_TEXT)
    if (status, got) != (200, expected):
        raise PeerMismatch(f"for {CHECK_TEXT!r}: {status} {got}, ours is {expected}")
    return got


def smoke_load(name, url, count=SMOKE_REQUESTS):
    """Send count different texts at once, from as many threads; assert every answer is
    200 and ours."""
    texts = [f"my {animal} number {n} naps on the sofa"
             for n, animal in enumerate(["cat", "dog", "parrot", "goldfish"] * (count // 4))]
    expected = our_answers(texts)
    barrier = threading.Barrier(len(texts))

    def ask(text):
        barrier.wait()  # all requests leave together: concurrency for the batchers
        return _ask(name, url, text)

    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        results = list(pool.map(ask, texts))
    wrong = [(text, status, got, ours) for text, (status, got), ours
             in zip(texts, results, expected, strict=True) if (status, got) != (200, ours)]
    if wrong:
        raise PeerMismatch(f"{len(wrong)} of {len(texts)} concurrent answers differ: {wrong[:3]}")


def largest_batch(log_path):
    """Return the largest model call the peer logged (PEER_LOG_BATCHES), 0 if none."""
    sizes = BATCH_LINE.findall(Path(log_path).read_text(errors="replace"))
    return max(map(int, sizes), default=0)


def check_peer(name, folder):
    """Install, start, check, smoke-load and stop one peer: its line of the report."""
    ensure_venv(name)
    line = f"{name:<9} {version(name):<8}"
    with start(name, free_port(), folder / f"{name}.log", log_batches=True) as peer:
        label, confidence = check(name, peer.url)
        smoke_load(name, peer.url)
        batch = largest_batch(peer.log_path)
    if PEERS[name].batching and batch < 2:
        raise PeerMismatch(f"{SMOKE_REQUESTS} concurrent requests, yet no model call took two")
    batching = f"largest batch {batch}" if PEERS[name].batching else "no batching (by design)"
    return (f"{line} OK  {CHECK_TEXT!r}: {label} {confidence}; {SMOKE_REQUESTS} concurrent: "
            f"all 200 and ours; {batching}")


def main(argv=None):
    """Check every peer (or those named); print one line each; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description="The benchmark's peers.")
    parser.add_argument("command", choices=["check"])
    parser.add_argument("peers", nargs="*", metavar="peer",
                        help=f"some of {', '.join(PEERS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"no such peer: {', '.join(sorted(unknown))}")
    folder = Path(tempfile.mkdtemp(prefix="peers-check-"))
    failed = False
    for name in args.peers or PEERS:
        try:
            print(check_peer(name, folder), flush=True)
        except (AssertionError, RuntimeError, subprocess.CalledProcessError) as error:
            failed = True
            print(f"{name:<9} FAILED {error}", flush=True)
    if failed:
        print(f"logs: {folder}", file=sys.stderr)
        return 1
    shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
