"""The gateway's own metrics, every answer Nginx gives counted from its access log; and
Nginx's error log, as JSON lines.

Nginx open source counts no answers by status (stub_status has connections and a total
of requests only), and the answers that only it knows of are the ones an operator most
needs: its 429s, 413s and "no live upstreams" 503s, and the requests it retried on
another replica. So Nginx sends one short line per answer (log_format gateway_metrics)
as a syslog datagram to a Unix socket, and this process counts them and serves the
counts to Prometheus. A datagram never makes Nginx wait: were this process to fall
behind, lines would be lost, never answers delayed (docs/observability.md has the
measured cost).

Nginx's error log (tag=nginx) comes to the same socket: each of its lines goes to this
process's output as a JSON object, with the fields of the services' (servicekit/jsonlog.py),
so that every line of a run's logs is JSON.

A Unix socket rather than UDP: a datagram to a UDP port where nothing listens yet fails
only later, as the error of the next one, so a line sent before this process started
would cost a line sent after; one to a socket file fails at once, only itself.

    python -m gateway.access_metrics --socket /tmp/gateway-metrics.sock --listen 127.0.0.1:9145
"""

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger("gateway.access_metrics")

# The services' buckets (servicekit.metrics): from a /health answer to the longest timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
# A syslog datagram from Nginx is at most 2 KB; a line of ours is well under 200 bytes.
DATAGRAM_BYTES = 4096
# Room for bursts of lines while counting falls behind (the kernel may cap it lower).
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
# Nginx's workers do not run as this process's user (nobody locally when root, nginx in
# the image): anyone who can reach the socket's folder may send to it.
SOCKET_MODE = 0o666


# What Nginx's error log puts after the syslog tag: its own time, level, pid#tid, message.
NGINX_ERROR = re.compile(r"\S+ \S+ \[(?P<level>\w+)\] (?P<pid>\d+)#\d+: (?P<message>.*)",
                         re.DOTALL)
# Nginx's levels, as the services' logs name them.
LEVELS = {"emerg": "critical", "alert": "critical", "crit": "critical", "warn": "warning"}


def log_line(service, level, pid, logger, message):
    """One log line as JSON, with the fields of the services' (servicekit/jsonlog.py, which
    this image does not hold)."""
    return json.dumps({
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level, "service": service, "instance": socket.gethostname(), "pid": pid,
        "logger": logger, "message": message,
    }, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """This process's own log records, as the services' JSON lines."""

    def format(self, record):
        return log_line("gateway", record.levelname.lower(), os.getpid(), record.name,
                        record.getMessage())


def nginx_error_line(message):
    """Write one line of Nginx's error log (the text after the syslog tag) as JSON."""
    match = NGINX_ERROR.fullmatch(message)
    level, pid, text = (match["level"], int(match["pid"]), match["message"]) if match else (
        "error", None, message)
    print(log_line("gateway", LEVELS.get(level, level), pid, "nginx.error", text), flush=True)


class AccessMetrics:
    """The counts of one gateway's answers, from its gateway_metrics log lines."""

    def __init__(self, registry):
        self.responses = Counter(
            "gateway_responses_total",
            "Answers of the gateway, Nginx's own included, by listener, route and status.",
            ["listener", "route", "status"], registry=registry,
        )
        self.retries = Counter(
            "gateway_upstream_retries_total",
            "Requests sent to one more upstream server after the first failed, by route.",
            ["listener", "route"], registry=registry,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from a request's first byte to its answer's last, at the gateway.",
            ["listener", "route"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.malformed = Counter(
            "gateway_access_metrics_malformed_lines_total",
            "Datagrams that were not a gateway_metrics line.", registry=registry,
        )

    def count(self, datagram):
        """Count one syslog datagram: "<190>Dec  3 06:36:01 gateway: <the line>"; write
        one of Nginx's error log ("... nginx: <the line>") as JSON."""
        try:
            tag, line = datagram.split(b": ", 1)
            if tag.endswith(b" nginx"):
                nginx_error_line(line.decode("utf-8", "replace").rstrip("\n"))
                return
            line = line.decode("ascii")
            listener, route, status, seconds, upstreams = line.rstrip("\n").split(" ", 4)
            duration = float(seconds)
        except (IndexError, UnicodeDecodeError, ValueError):
            self.malformed.inc()
            return
        self.responses.labels(listener, route, status).inc()
        self.duration.labels(listener, route).observe(duration)
        # "502, 200": two servers tried; "-": none. " : " separates upstream groups,
        # which the gateway does not chain.
        tries = upstreams.count(",")
        if tries:
            self.retries.labels(listener, route).inc(tries)


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


def listen(path):
    """A datagram socket bound at path, where Nginx's workers can send."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    Path(path).unlink(missing_ok=True)  # left by a run that was killed
    receiver.bind(str(path))
    os.chmod(path, SOCKET_MODE)
    return receiver


def serve(path, address):
    """Count the datagrams that arrive at the socket path, and serve the counts on
    address (host, port) at /metrics, until stopped."""
    registry = CollectorRegistry()
    metrics = AccessMetrics(registry)
    receiver = listen(path)
    start_http_server(address[1], addr=address[0], registry=registry)
    log.info("counting Nginx's answers from %s, serving http://%s:%d/metrics", path, *address)
    bound = os.stat(path).st_ino
    receive, count = receiver.recv, metrics.count
    try:
        while True:
            count(receive(DATAGRAM_BYTES))
    finally:
        # Stopped (supervisord sends SIGTERM): the socket file goes with this process,
        # unless another has bound one at the same path since.
        receiver.close()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == bound:
                os.unlink(path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gateway.access_metrics",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", type=Path, required=True,
                        help="the Unix socket where Nginx sends its lines")
    parser.add_argument("--listen", type=parse_address, default=("127.0.0.1", 9145),
                        help="host:port where /metrics is served")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    signal.signal(signal.SIGTERM, stop)
    try:
        serve(args.socket, args.listen)
    except KeyboardInterrupt:
        return 0


def stop(signum, frame):
    """SIGTERM: end serve() as Ctrl-C does, so that it removes its socket."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
