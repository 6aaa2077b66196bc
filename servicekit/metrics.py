"""Prometheus metrics of a service: its requests, counted in every gunicorn worker.

Under gunicorn, prometheus-client runs in multiprocess mode: each worker writes its
samples to files in PROMETHEUS_MULTIPROC_DIR, and the master serves their sum on a port
of its own (servicekit.gunicorn.serve_metrics), which the gateway routes nothing to. A
scrape then counts every worker, one that has died included, and a busy or hung worker
cannot delay it. Without gunicorn (the unit tests) the same metrics live in this
process's default registry.
"""

import functools
import os
import time

from flask import g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

# From a /health answer (about 0.3 ms) to the gateway's longest timeout (10 s).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
# The probes are asked every few seconds by orchestrators: left out, as MLServer and
# KServe leave theirs, so that they do not dilute the request rate and latency.
UNMEASURED_ROUTES = frozenset({"/health", "/ready"})
# A path that matched no route (a 404, or a 405 on a known path's wrong method): one
# label value for all, so that a client sending random paths cannot grow the series.
NO_ROUTE = "<none>"
# HTTP's methods (RFC 9110, and PATCH); any other a client makes up is one label value,
# for the same reason.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                     "PATCH"})
OTHER_METHOD = "<other>"

REQUESTS = Counter(
    "http_requests_total", "Requests answered, by route, method and status.",
    ["route", "method", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds", "Time from a request's arrival to its answer.",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being answered now.", ["route"],
    multiprocess_mode="livesum",
)


@functools.lru_cache(maxsize=4096)
def child(metric, *labels):
    """metric.labels(*labels), looked up once: labels() takes a lock and checks its
    values at every call. The label values of the request metrics are bounded (routes,
    METHODS, statuses), so the cache holds every one of them."""
    return metric.labels(*labels)


def install_request_metrics(app):
    """Count and time every request of app but the probes."""

    @app.before_request
    def start_timer():
        rule = request.url_rule
        route = rule.rule if rule else NO_ROUTE
        if route in UNMEASURED_ROUTES:
            return
        context = g._get_current_object()
        context.metrics_route, context.metrics_started = route, time.perf_counter()
        child(IN_FLIGHT, route).inc()

    @app.after_request
    def count(response):
        context = g._get_current_object()
        route = getattr(context, "metrics_route", None)
        if route is not None:
            method = request.method
            if method not in METHODS:
                method = OTHER_METHOD
            child(DURATION, route, method).observe(time.perf_counter() - context.metrics_started)
            child(REQUESTS, route, method, str(response.status_code)).inc()
        return response

    @app.teardown_request
    def end(exc):
        # Runs however the request ended, after_request or not.
        route = g.pop("metrics_route", None)
        if route is not None:
            child(IN_FLIGHT, route).dec()


class DiskSpaceCollector:
    """The free and total bytes of the file system that holds a path, read at each scrape."""

    def __init__(self, path, prefix):
        self.path = path
        self.prefix = prefix

    def collect(self):
        try:
            stats = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:  # the folder is not there yet: no samples rather than a failed scrape
            return
        free = GaugeMetricFamily(f"{self.prefix}_disk_free_bytes",
                                 "Bytes free for the service on the file system of its data.")
        free.add_metric([], stats.f_bavail * stats.f_frsize)
        size = GaugeMetricFamily(f"{self.prefix}_disk_size_bytes",
                                 "Size of the file system of the service's data.")
        size.add_metric([], stats.f_blocks * stats.f_frsize)
        yield free
        yield size


def serve(bind, collectors=()):
    """Serve the metrics of every worker (and collectors) on bind, "host:port", from a
    thread of this process; return the server."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in collectors:
        registry.register(collector)
    host, _, port = bind.rpartition(":")
    server, _ = start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
    return server


def forget_process(pid):
    """Drop the live gauges of a process that has exited (its counters still count)."""
    multiprocess.mark_process_dead(pid)
