"""Capacity on paper: the CPU each part of the stack spends per request, and PostgreSQL's
inserts/s, from which docs/scaling.md sizes a deployment.

    .venv/bin/python -m bench.capacity [--seconds 10]

Runs the stack with the project's own runner (3 predictors, rate limit off), its log on
SQLite and then on a PostgreSQL of its own (Debian's, started as the tests start it),
drives each kind of request through the gateway with wrk, and reads from /proc the CPU
time each part used per request: Nginx, the gateway's metrics process, the logger, the
predictors, PostgreSQL. Then pgbench measures PostgreSQL's inserts of a record per second
at 1, 16 and 64 clients. Prints the figures, writes docs/capacity.json and the table
between the markers of docs/scaling.md. Needs wrk and pgbench.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import FORWARD, PROCESS, SINGLE, process_tree, wrk
from gateway.layout import Layout
from gateway.runner import LocalStack
from logger_service.store import PostgresStore
from tests.postgres import PostgresServer

DOCS = Path(__file__).resolve().parent.parent / "docs"
# The parts a process belongs to, by what its command line names (checked in this order).
PARTS = (("gateway metrics", "access_metrics"), ("nginx", "nginx"),
         ("predictor", "predictor"), ("logger", "logger"))
KINDS = {  # request kind: (body, path)
    "/predict": (SINGLE, "/predict"),
    "/process": (PROCESS, "/process"),
    "/process, forwarding": (FORWARD, "/process"),
}
# One record, as the logger inserts it, for pgbench.
INSERT = """INSERT INTO records (request_id, client_id, trace_id, created_at, data,
 forward_to_model, outcome, prediction, latency_ms) VALUES (md5(random()::text), 'bench',
 NULL, now(), 'my cat sleeps on the warm laptop', true, 'predicted',
 '{"class": "cat", "confidence": 0.91, "input_length": 32}', 1.5);
"""
# A part is sized to run at most this busy, for bursts and a replica lost.
UTILISATION = 0.6
TARGETS = (1_000, 10_000, 100_000)


def part_of(pid):
    """The part a process of the stack belongs to, by its command line ("other": the
    runner, supervisord)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return next((part for part, word in PARTS if word in cmdline), "other")


def cpu_by_part(roots):
    """CPU seconds (user + system) used so far, by part, of the trees of (pid, part): a
    tree with a part is all that part (PostgreSQL's backends name their database, whose
    name may say "logger"); one without is sorted by part_of."""
    used = {}
    for root, tree_part in roots:
        for pid in process_tree(root):
            part = tree_part or part_of(pid)
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            used[part] = used.get(part, 0) + ticks / os.sysconf("SC_CLK_TCK")
    return used


def measure(stack, roots, kind, seconds):
    """wrk on one kind of request through the gateway: req/s, and CPU ms per request by part."""
    body, path = KINDS[kind]
    wrk(f"{stack.url}{path}", body, 1, 64)  # warm-up
    before = cpu_by_part(roots)
    result = wrk(f"{stack.url}{path}", body, seconds, 64)
    after = cpu_by_part(roots)
    cpu = {part: round((after[part] - before.get(part, 0)) * 1000 / result.requests, 4)
           for part in after if part in dict(PARTS) or part == "postgres"}
    return {"rps": round(result.rps), "errors": result.errors, "cpu_ms_per_request": cpu}


def pgbench(server, url, seconds):
    """PostgreSQL's inserts/s of one record, at 1, 16 and 64 clients (pgbench, TCP)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(INSERT)
        script.flush()
        rates = {}
        for clients in (1, 16, 64):
            out = subprocess.run(
                [str(server.bin_dir / "pgbench"), "-n", "-c", str(clients), "-j", "2",
                 "-T", str(seconds), "-f", script.name, url],
                capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
            tps = next(line for line in out.splitlines() if line.startswith("tps ="))
            rates[clients] = round(float(tps.split()[2]))
        return rates


def sizing(figures):
    """Cores of each part (at UTILISATION) for each target rate of each request kind, on
    PostgreSQL; parts a kind barely uses (under 1 % of its CPU) are left out."""
    rows = []
    for kind in ("/predict", "/process, forwarding"):
        cpu = figures["postgresql"][kind]["cpu_ms_per_request"]
        total = sum(cpu.values())
        for target in TARGETS:
            cores = {part: math.ceil(target * ms / 1000 / UTILISATION)
                     for part, ms in sorted(cpu.items()) if ms > total / 100}
            rows.append((kind, target, cores))
    return rows


def table(figures):
    parts = ["nginx", "gateway metrics", "logger", "predictor", "postgres"]
    lines = ["| store | request | req/s | " + " | ".join(f"{p} CPU ms" for p in parts) + " |",
             "|---|---|---|" + "---|" * len(parts)]
    for store in ("sqlite", "postgresql"):
        for kind, measured in figures[store].items():
            cpu = measured["cpu_ms_per_request"]
            lines.append(f"| {store} | {kind} | {measured['rps']} | "
                         + " | ".join(f"{cpu[p]:.3f}" if p in cpu else "-" for p in parts)
                         + " |")
    inserts = figures["postgresql inserts/s"]
    lines += ["", "| PostgreSQL inserts/s (pgbench) | " + " | ".join(
        f"{clients} clients" for clients in inserts) + " |",
        "|---|" + "---|" * len(inserts),
        "| this machine | " + " | ".join(str(rate) for rate in inserts.values()) + " |"]
    lines += ["", f"| request | rate | cores at {UTILISATION:.0%} busy, by part |", "|---|---|---|"]
    for kind, target, cores in sizing(figures):
        lines.append(f"| {kind} | {target:,}/s | "
                     + ", ".join(f"{part} {n}" for part, n in cores.items()) + " |")
    return "\n".join(lines)


def write_report(text):
    """Put the table between the markers of docs/scaling.md, keeping the prose."""
    report = DOCS / "scaling.md"
    doc = report.read_text()
    begin, end = "<!-- capacity:begin -->", "<!-- capacity:end -->"
    report.write_text(doc[:doc.index(begin)] + f"{begin}\n{text}\n{end}"
                      + doc[doc.index(end) + len(end):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    figures = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as postgres:
        url = postgres.database()
        PostgresStore(url).create_schema()
        stores = {"sqlite": {}, "postgresql": {"LOGGER_DATABASE_URL": url}}
        for store, env in stores.items():
            layout = Layout.on_free_ports(Path(tmp) / store, predictors=3,
                                          rate_limit_enabled=False)
            with LocalStack(layout, env) as stack:
                roots = [(stack.process.pid, None), (postgres.process.pid, "postgres")]
                figures[store] = {kind: measure(stack, roots, kind, args.seconds)
                                  for kind in KINDS}
                print(f"{store}: {json.dumps(figures[store])}", file=sys.stderr, flush=True)
        figures["postgresql inserts/s"] = pgbench(postgres, url, args.seconds)

    text = table(figures)
    print(text)
    (DOCS / "capacity.json").write_text(json.dumps(
        {"seconds": args.seconds, "utilisation": UTILISATION, **figures}, indent=2) + "\n")
    write_report(text)


if __name__ == "__main__":
    main()
