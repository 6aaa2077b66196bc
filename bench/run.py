"""The benchmark suite: every scenario of the stack side by side, and the targets.

    .venv/bin/python -m bench.run [--seconds 5] [--runs 3]      (or: make bench)

Starts the stacks with the project's own runner (`python -m gateway up`, rate limit
off) and the FastAPI peer (bench/peers/) behind the same Nginx configuration, drives
each scenario with wrk on loopback in interleaved runs, and prints one table of
medians: requests/s, p50, p99, errors. Writes docs/performance.json, the table and the
targets into docs/performance.md, and a plot, docs/performance.png. Needs wrk.
"""

import argparse
import contextlib
import http.client
import json
import operator
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.peers import servers
from gateway import keys, render
from gateway.layout import ROOT, Layout
from gateway.ports import free_port, free_port_range
from gateway.runner import LocalStack

LUA = ROOT / "bench" / "post.lua"
DOCS = ROOT / "docs"
SINGLE_TEXT = "my cat sleeps on the warm laptop"
SINGLE = json.dumps({"input": SINGLE_TEXT})
BATCH_SIZE = 32
BATCH = json.dumps(
    {"inputs": [f"my cat number {n} sleeps on the laptop" for n in range(BATCH_SIZE)]}
)
PROCESS = json.dumps({"data": "my cat sleeps on the warm laptop", "forward_to_model": False})
UNDER_ATTACK = "/predict, a bystander under attack 2 (1 connection)"
UNKEYED = "/predict gateway, 3 replicas"
KEYED = "/predict gateway, 3 replicas, API key"
UNMETERED = "/predict gateway, 3 replicas, no gateway metrics"
CEILING = "ceiling: do-nothing Flask, 3 replicas behind Nginx"
# Ours with scikit-learn's own predict_proba instead of the compiled pipeline: how much of
# the lead over the peers, which call predict_proba, is the model's arithmetic.
PIPELINE = "/predict gateway, 3 replicas, PREDICTOR_INFERENCE=pipeline"
# The production model servers (bench/peers/), each serving the same artifact direct,
# as its documentation recommends for throughput, and the lab's FastAPI app.
PEERS = {"mlserver": "MLServer", "bentoml": "BentoML", "litserve": "LitServe",
         "fastapi": "FastAPI"}
FORWARD = json.dumps({"data": "my cat sleeps on the warm laptop", "forward_to_model": True})


@dataclass
class Result:
    rps: float
    p50: float
    p99: float
    errors: int
    requests: int = 0


def stack_cpu_seconds(stack, nginx_only=False):
    """CPU time (user + system) used so far by every process of a stack (the runner's
    descendants, Nginx and each gunicorn), or by its Nginx alone, read from /proc."""
    if nginx_only:
        pids = process_tree(int((stack.layout.nginx_dir / "nginx.pid").read_text()))
    else:
        pids = process_tree(stack.process.pid)[1:]  # not the runner itself
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url, body, seconds, connections, api_key=None):
    """Run wrk on url (a GET when body is None); return a Result (latencies in ms)."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
               "--latency", url]
    env = dict(os.environ)
    if body is not None:
        command[-1:-1] = ["-s", str(LUA)]
        env["WRK_BODY"] = body
    if api_key:
        env["WRK_API_KEY"] = api_key
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env,
                         timeout=seconds + 60).stdout

    def latency(percent):
        value, unit = re.search(rf"{percent}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(map(int, socket_errors.groups())) if socket_errors else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return Result(rps, latency(50), latency(99), errors, requests)


def wait_answering(url, process, log_path, timeout=60):
    """Wait until url answers 200, failing with the process's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["curl", "-fs", "-o", "/dev/null", url]).returncode != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{url} did not answer: {log_path.read_text()}")
        time.sleep(0.2)


@contextlib.contextmanager
def stopped_at_exit(processes):
    """Stop each process's group (SIGTERM) and wait for it, however the block ends."""
    try:
        yield processes
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@contextlib.contextmanager
def gateway_in_front(tmp, name, base_port, replicas):
    """An Nginx with the gateway's configuration (rate limit off) in front of replicas
    on base_port, base_port + 1, ...: its URL."""
    layout = Layout(predictors=replicas, port=free_port(), internal_port=free_port(),
                    logger_port=free_port(), predictor_base_port=base_port,
                    run_dir=tmp / f"{name}-nginx", rate_limit_enabled=False)
    render.write_all(layout, render.find_nginx())
    log_path = tmp / f"{name}-nginx.log"
    nginx = subprocess.Popen(
        [render.find_nginx(), "-p", str(layout.nginx_dir), "-c",
         str(layout.nginx_dir / "nginx.conf"), "-e", "stderr"],
        stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"), start_new_session=True,
    )
    with stopped_at_exit([nginx]):
        url = f"http://127.0.0.1:{layout.port}"
        wait_answering(f"{url}/health", nginx, log_path)  # Nginx answers it itself
        yield url


@contextlib.contextmanager
def peers_running(tmp):
    """Every peer of bench/peers/servers.py in its own venv on a port of its own, each
    checked to answer a fixed text as ours does: {name: (RunningPeer, port)}."""
    with contextlib.ExitStack() as started:
        running = {}
        for name in PEERS:
            servers.ensure_venv(name)
            port = free_port()
            peer = started.enter_context(servers.start(name, port, tmp / f"peer-{name}.log"))
            servers.check(name, peer.url)
            running[name] = peer, port
        yield running


def process_tree(root_pid):
    """The pids of a process and all its descendants, from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # gone meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def peer_of(scenario):
    """The peer a scenario measures ("peer <Label> ..."), or None for the stack's own."""
    by_label = {label: name for name, label in PEERS.items()}
    words = scenario.split()
    return by_label.get(words[1]) if words[0] == "peer" else None


def only_awake(peers, awake):
    """Freeze (SIGSTOP) every peer's processes but those of the peer named awake, which
    continue (SIGCONT); awake=ALL_PEERS wakes them all. An idle peer is not idle to the
    machine: LitServe's workers poll their queues, a quarter of a core here, which would
    otherwise be taken from whatever is measured."""
    for name, (peer, _) in peers.items():
        wake = awake is ALL_PEERS or name == awake
        for pid in process_tree(peer.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT if wake else signal.SIGSTOP)


ALL_PEERS = object()


@contextlib.contextmanager
def ceiling_behind_nginx(tmp, replicas=3):
    """The ceiling (bench/ceiling.py) as replicas under the predictor's own gunicorn
    settings, behind an Nginx with the gateway's configuration: its URL."""
    base_port = free_port_range(replicas)
    replicas_started = []
    with stopped_at_exit(replicas_started):
        for port in range(base_port, base_port + replicas):
            log_path = tmp / f"ceiling-{port}.log"
            env = {**os.environ, "PREDICTOR_BIND": f"127.0.0.1:{port}",
                   "PREDICTOR_METRICS_BIND": f"127.0.0.1:{free_port()}"}
            replicas_started.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "predictor_service/gunicorn.conf.py",
                 "bench.ceiling:app"], cwd=ROOT, env=env, stdout=open(log_path, "wb"),
                stderr=subprocess.STDOUT, start_new_session=True))
            wait_answering(f"http://127.0.0.1:{port}/ready", replicas_started[-1], log_path)
        with gateway_in_front(tmp, "ceiling", base_port, replicas) as gateway:
            yield gateway


def scenarios(stacks, peers, peer_gateway, api_key, ceiling):
    """(name, url, body, connections, api key) of every scenario."""
    one, three, single, unbatched, keyed, unmetered, pipeline = (
        stacks[k] for k in ("one", "three", "single", "unbatched", "keyed", "unmetered",
                            "pipeline"))
    replica = f"http://127.0.0.1:{one.predictor_ports[0]}"
    fastapi, _ = peers["fastapi"]
    return [(*scenario, None) for scenario in [
        ("gateway /health (ceiling)", f"{three.url}/health", None, 64),
        ("/predict direct, 1 replica", f"{replica}/predict", SINGLE, 64),
        ("/predict direct, 1 replica, 8 connections", f"{replica}/predict", SINGLE, 8),
        ("/predict gateway, same replica", f"{one.url}/predict", SINGLE, 64),
        (UNKEYED, f"{three.url}/predict", SINGLE, 64),
        (f"{UNKEYED}, 8 connections", f"{three.url}/predict", SINGLE, 8),
        (UNMETERED, f"{unmetered.url}/predict", SINGLE, 64),
        (PIPELINE, f"{pipeline.url}/predict", SINGLE, 64),
        (f"{PIPELINE}, 8 connections", f"{pipeline.url}/predict", SINGLE, 8),
        ("/predict gateway, 1 gunicorn x3", f"{single.url}/predict", SINGLE, 64),
        ("/predict gateway, no batching", f"{unbatched.url}/predict", SINGLE, 64),
        ("/predict gateway, 1 connection", f"{three.url}/predict", SINGLE, 1),
        ("/predict gateway, no batching, 1 conn", f"{unbatched.url}/predict", SINGLE, 1),
        ("/process, no forwarding", f"{three.url}/process", PROCESS, 64),
        ("/process, forwarding", f"{three.url}/process", FORWARD, 64),
        (f"/predict batch of {BATCH_SIZE} (predictions/s)", f"{three.url}/predict", BATCH, 64),
        *[(peer_scenario(name, connections), peer.predict_url,
           servers.body(name, SINGLE_TEXT).decode(), connections)
          for name, (peer, _) in peers.items() for connections in (64, 8)],
        (peer_scenario("fastapi", 1), fastapi.predict_url, SINGLE, 1),
        ("peer FastAPI behind Nginx", f"{peer_gateway}/predict", SINGLE, 64),
        (CEILING, f"{ceiling}/predict", SINGLE, 64),
    ]] + [
        ("/predict gateway, 3 replicas, API key", f"{keyed.url}/predict", SINGLE, 64, api_key),
    ]


def peer_scenario(name, connections):
    """The name of a peer's scenario: direct, at that many connections."""
    suffix = "" if connections == 64 else f", {connections} connection{'s' * (connections > 1)}"
    return f"peer {PEERS[name]} direct{suffix}"


def bystander_under_attack(stack, seconds):
    """Attack 2 of issue 11 (12 connections looping the heaviest batch a request may
    hold, from 127.0.0.2) on a stack with the default per-client limits, while a
    bystander on 127.0.0.3 sends light requests one after another: its Result."""
    heavy = json.dumps({"inputs": ["a cat and a dog " * 625] * 20})
    stop = threading.Event()

    def attack():
        connection = SourceConnection("127.0.0.2", stack.port)
        while not stop.is_set():
            try:
                connection.request("POST", "/predict", heavy,
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 429:
                    time.sleep(0.05)  # as in the test: leave the shared cores to the stack
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnects on the next request
        connection.close()

    attackers = [threading.Thread(target=attack) for _ in range(12)]
    for thread in attackers:
        thread.start()
    latencies, errors = [], 0
    try:
        time.sleep(1)
        bystander = SourceConnection("127.0.0.3", stack.port)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            bystander.request("POST", "/predict", SINGLE, {"Content-Type": "application/json"})
            response = bystander.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status != 200
        bystander.close()
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
    latencies.sort()
    return Result(len(latencies) / seconds, statistics.median(latencies),
                  latencies[int(len(latencies) * 0.99) - 1], errors)


class SourceConnection(http.client.HTTPConnection):
    """A keep-alive connection to a loopback port from another loopback address."""

    def __init__(self, address, port):
        super().__init__("127.0.0.1", port, timeout=30, source_address=(address, 0))


def targets(medians, cpu, nginx_cpu):
    """The issues' targets: (name, measured, goal, met)."""
    def rps(name):
        return medians[name].rps

    p99 = medians["/predict gateway, 3 replicas"].p99
    latency_cost = (medians["/predict gateway, 1 connection"].p50
                    - medians["/predict gateway, no batching, 1 conn"].p50)
    rows = [
        ("gateway overhead: through Nginx / direct, same replica",
         rps("/predict gateway, same replica") / rps("/predict direct, 1 replica"), ">= 0.95"),
        ("balancing: 3 replicas / 1 gunicorn with 3 workers",
         rps("/predict gateway, 3 replicas") / rps("/predict gateway, 1 gunicorn x3"), ">= 0.95"),
        ("two hops: /process forwarding / /predict through the gateway",
         rps("/process, forwarding") / rps("/predict gateway, 3 replicas"), ">= 0.5"),
        ("the peer: our /predict / FastAPI, both behind Nginx",
         rps("/predict gateway, 3 replicas") / rps("peer FastAPI behind Nginx"), ">= 1.3"),
        # How close /predict comes to what Flask under gunicorn behind Nginx can do at all.
        ("the ceiling: /predict through the gateway / do-nothing Flask, both 3 replicas",
         rps(UNKEYED) / rps(CEILING), ">= 0.75"),
        ("p99 of /predict through the gateway at 64 connections (ms)", p99, "< 50"),
        ("batching's cost to a lone request, p50 at 1 connection (ms)", latency_cost, "<= 1"),
        ("API keys: /predict with a key / without keys, 3 replicas",
         rps(KEYED) / rps(UNKEYED), ">= 0.95"),
        # The check runs in Nginx alone: its extra CPU, against what a /predict costs.
        ("API keys: Nginx's extra CPU per /predict / the stack's CPU per /predict",
         (nginx_cpu[KEYED] - nginx_cpu[UNKEYED]) / cpu[UNKEYED], "<= 0.05"),
        ("a bystander's p50 under attack 2 (ms)", medians[UNDER_ATTACK].p50, "< 500"),
        # A lone client waits no longer on us than on the lab's FastAPI app.
        ("a lone request: FastAPI's p50 / ours through the gateway, 1 connection",
         medians[peer_scenario("fastapi", 1)].p50 / medians["/predict gateway, 1 connection"].p50,
         ">= 1"),
        # Nginx's line per answer and the process that counts it (gateway/access_metrics.py).
        ("gateway metrics: /predict with them / without them, 3 replicas",
         rps(UNKEYED) / rps(UNMETERED), ">= 0.97"),
        ("gateway metrics: the stack's extra CPU per /predict / its CPU without them",
         (cpu[UNKEYED] - cpu[UNMETERED]) / cpu[UNMETERED], "<= 0.03"),
    ]
    # Issue 15: half again as fast as every peer, under load and at 8 connections.
    for name, label in PEERS.items():
        for connections, ours in ((64, UNKEYED), (8, f"{UNKEYED}, 8 connections")):
            rows.append((f"/predict through the gateway / {label} direct, {connections} conn.",
                         rps(ours) / rps(peer_scenario(name, connections)), ">= 1.5"))
    compare = {">=": operator.ge, "<": operator.lt, "<=": operator.le}

    def met(value, goal):
        sign, threshold = goal.split()
        return compare[sign](value, float(threshold))

    return [(name, value, goal, met(value, goal)) for name, value, goal in rows]


def table(medians, batch_names):
    lines = ["| scenario | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|"]
    for name, result in medians.items():
        rps = result.rps * BATCH_SIZE if name in batch_names else result.rps
        lines.append(
            f"| {name} | {rps:.0f} | {result.p50:.1f} | {result.p99:.1f} | {result.errors} |"
        )
    return "\n".join(lines)


def plot(medians, path, batch_names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(medians)
    throughput = [medians[n].rps * (BATCH_SIZE if n in batch_names else 1) for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6), sharey=True)
    left.barh(names, throughput, color="#4c72b0")
    left.set_xscale("log")  # the gateway's own ceiling is two orders above the rest
    left.set_xlabel("requests/s, predictions/s for the batch (median, log scale)")
    right.barh(names, [medians[n].p99 for n in names], color="#dd8452")
    right.set_xlabel("p99 latency, ms (median)")
    left.invert_yaxis()
    fig.suptitle("ML API gateway benchmark (wrk on loopback, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per run of a scenario")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs, medians kept")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    results = {}
    with contextlib.ExitStack() as running, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        def stack(name, env=None, **settings):
            return LocalStack(Layout.on_free_ports(tmp / name, rate_limit_enabled=False,
                                                   **settings), env)

        keys_dir = tmp / "keys"
        keys_dir.mkdir(mode=0o755)
        os.chmod(tmp, 0o755)  # Nginx's workers, as nobody when run as root, read the store
        api_key = keys.add_key(keys_dir / "api-keys", "bench")
        stacks = {
            "keyed": stack("keyed", predictors=3, api_keys=keys_dir / "api-keys"),
            "guarded": LocalStack(Layout.on_free_ports(tmp / "guarded", predictors=3)),
            "one": stack("one", predictors=1, predictor_workers=2),
            "three": stack("three", predictors=3),
            "single": stack("single", predictors=1, predictor_workers=3),
            "unbatched": stack("unbatched", {"PREDICTOR_BATCHING": "off"}, predictors=3),
            "unmetered": stack("unmetered", predictors=3, access_metrics=False),
            "pipeline": stack("pipeline", {"PREDICTOR_INFERENCE": "pipeline"}, predictors=3),
        }
        for stack in stacks.values():
            running.enter_context(stack)
        peers = running.enter_context(peers_running(tmp))
        peer_gateway = running.enter_context(
            gateway_in_front(tmp, "peer", peers["fastapi"][1], replicas=1))
        ceiling = running.enter_context(ceiling_behind_nginx(tmp))
        runs = scenarios(stacks, peers, peer_gateway, api_key, ceiling)
        # Woken again before the peers are stopped, which a frozen process would ignore.
        running.callback(only_awake, peers, ALL_PEERS)
        for name, url, body, connections, key in runs:  # warm-up
            only_awake(peers, peer_of(name))
            wrk(url, body, 1, connections, key)
        # CPU time per request of the whole stack, for what one feature costs: steadier
        # than requests/s on a VM whose cores are shared.
        measured_cpu = {UNKEYED: stacks["three"], KEYED: stacks["keyed"],
                        UNMETERED: stacks["unmetered"]}
        cpu_per_request, nginx_per_request = {}, {}
        for run in range(args.runs):
            for name, url, body, connections, key in runs:
                only_awake(peers, peer_of(name))
                measured = measured_cpu.get(name)
                if measured:
                    before = (stack_cpu_seconds(measured), stack_cpu_seconds(measured, True))
                result = wrk(url, body, args.seconds, connections, key)
                results.setdefault(name, []).append(result)
                if measured:
                    used = (stack_cpu_seconds(measured) - before[0],
                            stack_cpu_seconds(measured, True) - before[1])
                    cpu_per_request.setdefault(name, []).append(used[0] / result.requests)
                    nginx_per_request.setdefault(name, []).append(used[1] / result.requests)
                print(f"run {run + 1}/{args.runs}: {name}", file=sys.stderr, flush=True)
            only_awake(peers, None)
            results.setdefault(UNDER_ATTACK, []).append(
                bystander_under_attack(stacks["guarded"], args.seconds))
            print(f"run {run + 1}/{args.runs}: {UNDER_ATTACK}", file=sys.stderr, flush=True)

    medians = {
        name: Result(*(statistics.median(getattr(r, field) for r in rs)
                       for field in ("rps", "p50", "p99", "errors")))
        for name, rs in results.items()
    }
    cpu = {name: statistics.median(values) for name, values in cpu_per_request.items()}
    nginx_cpu = {name: statistics.median(values) for name, values in nginx_per_request.items()}
    batch_names = {name for name in medians if "batch of" in name}
    measured = table(medians, batch_names)
    goals = targets(medians, cpu, nginx_cpu)
    goal_lines = ["| target | measured | goal | met |", "|---|---|---|---|"] + [
        f"| {name} | {value:.2f} | {goal} | {'yes' if met else 'no'} |"
        for name, value, goal, met in goals
    ]
    print(measured, "\n", "\n".join(goal_lines), sep="\n")

    DOCS.mkdir(exist_ok=True)
    (DOCS / "performance.json").write_text(json.dumps({
        "seconds": args.seconds, "runs": args.runs,
        "scenarios": {name: vars(result) for name, result in medians.items()},
        "cpu_ms_per_request": {name: value * 1000 for name, value in cpu.items()},
        "nginx_cpu_ms_per_request": {name: value * 1000 for name, value in nginx_cpu.items()},
        "targets": [{"target": n, "measured": v, "goal": g, "met": m} for n, v, g, m in goals],
    }, indent=2) + "\n")
    plot(medians, DOCS / "performance.png", batch_names)
    write_report(measured, "\n".join(goal_lines), args)


def write_report(measured, goal_lines, args):
    """Put the tables between the markers of docs/performance.md, keeping the prose."""
    report = DOCS / "performance.md"
    text = report.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    generated = (f"{begin}\nMedians of {args.runs} interleaved runs of {args.seconds} s each "
                 f"(`make bench`).\n\n{measured}\n\n{goal_lines}\n{end}")
    report.write_text(text[:text.index(begin)] + generated + text[text.index(end) + len(end):])


if __name__ == "__main__":
    main()
