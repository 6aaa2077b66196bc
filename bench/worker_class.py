"""Measure gunicorn's sync, gthread and gevent workers behind the gateway, to choose one.

    .venv/bin/python -m bench.worker_class [--seconds 10] [--connections 16]

For each worker class: the stack with one predictor replica of 2 workers, driven by
wrk on loopback through Nginx (with upstream keep-alive) and directly, in interleaved
runs. Prints the median req/s and p99 per case. Needs wrk (apt-get install wrk).
"""

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.run import SINGLE, wrk
from gateway.layout import Layout
from gateway.runner import LocalStack


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    cases = {
        "sync": {"PREDICTOR_WORKER_CLASS": "sync"},
        "gthread-1": {"PREDICTOR_WORKER_CLASS": "gthread", "PREDICTOR_THREADS": "1"},
        "gthread-4": {"PREDICTOR_WORKER_CLASS": "gthread", "PREDICTOR_THREADS": "4"},
        "gthread-8": {"PREDICTOR_WORKER_CLASS": "gthread", "PREDICTOR_THREADS": "8"},
        "gevent": {"PREDICTOR_WORKER_CLASS": "gevent"},
    }
    results = {}
    with contextlib.ExitStack() as running, tempfile.TemporaryDirectory() as tmp:
        targets = {}
        for name, env in cases.items():
            layout = Layout.on_free_ports(Path(tmp) / name, predictors=1, predictor_workers=2,
                                          rate_limit_enabled=False)
            stack = running.enter_context(LocalStack(layout, env))
            targets[name, "through Nginx"] = f"{stack.url}/predict"
            targets[name, "direct"] = f"http://127.0.0.1:{stack.predictor_ports[0]}/predict"
        for url in targets.values():
            wrk(url, SINGLE, 2, args.connections)  # warm-up
        # Interleaved repetitions, so that a slow spell of the machine hits every case.
        for _ in range(args.runs):
            for key, url in targets.items():
                results.setdefault(key, []).append(wrk(url, SINGLE, args.seconds, args.connections))

    print(f"medians of {args.runs} runs of {args.seconds}s, {args.connections} connections")
    print(f"{'worker':10} {'route':14} {'req/s':>8} {'p99 ms':>8} {'errors':>6}")
    for (name, route), runs in results.items():
        rps = statistics.median(run.rps for run in runs)
        p99 = statistics.median(run.p99 for run in runs)
        errors = statistics.median(run.errors for run in runs)
        print(f"{name:10} {route:14} {rps:8.0f} {p99:8.1f} {errors:6.0f}")


if __name__ == "__main__":
    main()
