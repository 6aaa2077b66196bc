"""A picture of the stack through its own Prometheus: docs/observability.png.

    .venv/bin/python -m bench.monitoring_plot      (make bench runs it too)

Starts the local stack with --monitoring (rate limit off), drives it for a few minutes
with wrk on loopback, in phases: steady /predict (and a few forwarded /process), a
share of invalid requests, heavy batches, one replica stopped and started again; then
plots, from Prometheus' own
query_range answers, the five queries of docs/observability.md.
"""

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from gateway.layout import ROOT, Layout
from gateway.runner import LocalStack

from .run import BATCH, FORWARD, SINGLE, wrk

PICTURE = ROOT / "docs" / "observability.png"
INVALID = '{"input": ""}'
# The five queries of docs/observability.md, by the panel that shows each, and the
# replicas Prometheus reaches.
QUERIES = {
    "requests/s at the gateway, by route and status":
        'sum by (route, status) (rate(gateway_responses_total{listener="public"}[30s]))',
    # "or vector(0)": no 5xx series at all is a ratio of 0, not no line.
    "error ratio (5xx of all answers)":
        '(sum(rate(gateway_responses_total{status=~"5.."}[30s])) or vector(0))'
        " / sum(rate(gateway_responses_total[30s]))",
    "p99 latency at the gateway, by route (s)":
        "histogram_quantile(0.99, sum by (route, le) "
        '(rate(gateway_request_duration_seconds_bucket{listener="public"}[30s])))',
    "mean texts per model call":
        "sum(rate(predictor_batch_size_sum[30s])) / sum(rate(predictor_batch_size_count[30s]))",
    "logger workers by circuit breaker state": "sum by (state) (logger_predictor_circuit_state)",
    "predictor replicas up": 'sum(up{job="predictor"})',
}


def drive(stack, seconds):
    """The phases of load; return [(label, start, end)] on the wall clock."""
    phases = []

    def phase(label, url_body_connections, length):
        started = time.time()
        threads = [threading.Thread(target=wrk, args=(url, body, length, connections))
                   for url, body, connections in url_body_connections]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        phases.append((label, started, time.time()))

    predict, process = f"{stack.url}/predict", f"{stack.url}/process"
    phase("steady /predict", [(predict, SINGLE, 16), (process, FORWARD, 2)], seconds)
    phase("and 422s", [(predict, SINGLE, 16), (predict, INVALID, 4)], seconds)
    phase("heavy batches", [(predict, SINGLE, 8), (predict, BATCH, 8)], seconds)
    port = stack.predictor_ports[0]
    stack.supervisorctl("stop", f"predictor:predictor-{port}")
    try:
        phase("one replica stopped", [(predict, SINGLE, 16)], seconds)
    finally:
        stack.supervisorctl("start", f"predictor:predictor-{port}")
    stack.wait_ready()
    phase("back to 3", [(predict, SINGLE, 16)], seconds)
    return phases


def query_range(prometheus, promql, start, end):
    response = requests.get(f"{prometheus}/api/v1/query_range", timeout=30, params={
        "query": promql, "start": start, "end": end, "step": "5s"})
    response.raise_for_status()
    return response.json()["data"]["result"]


def plot(prometheus, phases, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start, end = phases[0][1] - 10, phases[-1][2] + 10
    fig, axes = plt.subplots(len(QUERIES), 1, figsize=(11, 15), sharex=True)
    for axis, (title, promql) in zip(axes, QUERIES.items(), strict=True):
        for series in query_range(prometheus, promql, start, end):
            times = [float(t) - start for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            label = ", ".join(series["metric"].values()) or None
            axis.plot(times, values, label=label)
        axis.set_title(title, fontsize=10, loc="left")
        if axis.get_legend_handles_labels()[0] and any(axis.get_legend_handles_labels()[1]):
            axis.legend(fontsize=7, loc="upper right", ncol=3)
        for _, begin, finish in phases:
            axis.axvspan(begin - start, finish - start, alpha=0.06, color="grey")
        axis.grid(alpha=0.3)
    for label, begin, finish in phases:
        axes[-1].annotate(label, ((begin + finish) / 2 - start, 0.2),
                          xycoords=("data", "axes fraction"), ha="center", fontsize=8)
    axes[-1].set_xlabel("seconds")
    fig.suptitle("The stack through its own Prometheus (make bench, 2 cores, loopback)", y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="per phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout.on_free_ports(Path(tmp) / "monitored", predictors=3,
                                      rate_limit_enabled=False, monitoring=True)
        with LocalStack(layout) as stack:
            phases = drive(stack, args.seconds)
            time.sleep(12)  # two more scrapes and rule evaluations
            plot(layout.prometheus_url, phases, PICTURE)
    print(f"wrote {PICTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
