"""What the services change in gunicorn, and install(), which puts it in place.

Each service's gunicorn.conf.py is settings only: it names install as its on_starting
hook, serve_metrics() as its when_ready hook, forget_worker and remove_metrics_folder as
its child_exit and on_exit hooks, worker_class_named() for its worker class and
AccessLogger (or ReplicaAccessLogger) as its logger_class.
"""

import json
import logging
import os
import pkgutil
import shutil
import socket
import sys
import tempfile

from gunicorn import glogging, util
from gunicorn.http import wsgi
from gunicorn.workers import gthread

from . import tracecontext
from .headers import REQUEST_ID_HEADER, SERVED_BY_HEADER
from .jsonlog import JsonFormatter, access_line

# Where prometheus-client's multiprocess mode keeps each worker's samples.
METRICS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def install(server):
    """Put OneWriteResponse and write_json_error in place of gunicorn's own, and give the
    workers an empty folder for their metrics.

    gunicorn has no setting for either, so they replace its module globals. As the
    on_starting hook this runs in the master before any worker is forked, so every
    worker (gthread or sync alike) starts with both in place.
    """
    wsgi.Response = OneWriteResponse
    util.write_error = write_json_error
    prepare_metrics_folder(server)


def prepare_metrics_folder(server):
    """Point PROMETHEUS_MULTIPROC_DIR at an empty folder: the one it names, emptied of an
    earlier run's samples, or else a new one of this server's own.

    prometheus-client picks multiprocess mode when it is first imported, so this runs
    before it is (servicekit.metrics is imported after, by serve_metrics and the app).
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics folder was "
                           "chosen: its samples would not reach the master")
    folder = os.environ.get(METRICS_FOLDER_VARIABLE)
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.unlink(os.path.join(folder, name))
    else:
        folder = tempfile.mkdtemp(prefix="gunicorn-metrics-")
        os.environ[METRICS_FOLDER_VARIABLE] = folder
        server.metrics_folder_made = folder  # removed by remove_metrics_folder


def serve_metrics(bind, collectors=None):
    """Return a when_ready hook that serves every worker's metrics on bind ("host:port")
    from the master, and the collectors named "module:attribute" (an iterable of them),
    which the master asks at each scrape."""

    def when_ready(server):
        # Imported only now, after install() chose the metrics folder.
        from . import metrics

        extra = pkgutil.resolve_name(collectors) if collectors else ()
        metrics.serve(bind, extra)
        server.log.info("Serving metrics at: http://%s/metrics", bind)

    return when_ready


def forget_worker(server, worker):
    """child_exit hook: drop the live gauges of a worker that has exited."""
    from . import metrics

    metrics.forget_process(worker.pid)


def remove_metrics_folder(server):
    """on_exit hook: remove the metrics folder that install() made, if it made one."""
    folder = getattr(server, "metrics_folder_made", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own errors (a request line or header too long, a malformed request)
    in the services' JSON error shape, instead of its HTML page."""
    body = json.dumps({"code": status_int, "status": reason, "message": mesg or reason})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body.encode())


class OneWriteResponse(wsgi.Response):
    """gunicorn's response, with its head sent in the same write as the first body bytes.

    gunicorn writes the head and the body with two sendall calls. A worker killed
    between them leaves the gateway holding a head it has already passed on to its
    client: it can no longer retry the request on another replica, and the client gets
    a truncated answer. With one write, a worker dies either before its answer or after.
    """

    pending_head = b""

    def send_headers(self):
        if self.headers_sent:
            return
        lines = self.default_headers() + [f"{name}: {value}\r\n" for name, value in self.headers]
        self.pending_head = f"{''.join(lines)}\r\n".encode("latin-1")
        self.headers_sent = True

    def _emit_body(self, data):
        if self.chunked:
            self.flush_head()
            super()._emit_body(data)
            return
        head, self.pending_head = self.pending_head, b""
        self.sock.sendall(head + data)

    def close(self):
        self.send_headers()
        self.flush_head()
        super().close()

    def flush_head(self):
        """Send the head alone: the answer has no body, or streams it in chunks."""
        head, self.pending_head = self.pending_head, b""
        if head:
            self.sock.sendall(head)


def worker_class_named(name):
    """The worker class for a <SERVICE>_WORKER_CLASS setting: gthread is ThreadWorker,
    gevent servicekit.gevent_worker.GeventWorker."""
    return {"gthread": "servicekit.gunicorn.ThreadWorker",
            "gevent": "servicekit.gevent_worker.GeventWorker"}.get(name, name)


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker, which refuses new connections as soon as it stops.

    A stopping gthread worker stops accepting, but keeps its listening sockets open until
    its last connection ends (graceful_timeout at most). Meanwhile the kernel still takes
    connections into the backlog, which no worker accepts and which are reset at exit:
    the gateway's request on one waits, then fails. This worker accepts what is already
    queued and closes its listening sockets, so that new connections are refused at once
    (the gateway tries the next replica) while the requests in flight finish.
    """

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled)
        if enabled or self.alive:
            return
        for listener in self.sockets:
            while True:  # accept() takes one queued connection, if there is one
                connections = self.nr_conns
                self.accept(listener)
                if self.nr_conns == connections:
                    break
            listener.close()


class AccessLogger(glogging.Logger):
    """gunicorn's logger, with both its logs as JSON lines on stdout (servicekit.jsonlog),
    and an access line built from only the fields it shows.

    gunicorn's own access() first gathers every request header, response header and
    environ variable and a formatted timestamp into a dict, for each request: with it a
    request to the predictor's /health cost 1.06 ms of CPU, 0.82 ms with no access log.
    This builds its line directly, at a cost too small to tell from no log at all.
    """

    # The response headers that the access line shows, as field: header (None when absent).
    line_headers = (("request_id", REQUEST_ID_HEADER),)

    def setup(self, cfg):
        """Send the error log to stdout, where the access log goes, instead of stderr, and
        write both as JSON naming the service (proc_name) and instance (host:port).

        gunicorn's errorlog "-" means stderr. Its handler gets sys.stdout itself rather
        than a file opened at /dev/stdout, which fails when stdout is a socket (journald)
        and, when it is a file opened without O_APPEND, writes over the access lines.
        """
        super().setup(cfg)
        port = str(cfg.address[0][1]) if cfg.address and isinstance(cfg.address[0], tuple) else ""
        self.identity = {"service": cfg.proc_name, "instance": f"{socket.gethostname()}:{port}"}
        formatter = JsonFormatter(**self.identity)
        for handler in self.error_log.handlers:
            if getattr(handler, "stream", None) is sys.stderr:
                handler.setStream(sys.stdout)
            handler.setFormatter(formatter)
        self.line_header_names = [(field, header.lower()) for field, header in self.line_headers]

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in resp.headers}
        try:
            method, path, status = environ["REQUEST_METHOD"], environ["RAW_URI"], resp.status_code
            trace = tracecontext.parse(environ.get("HTTP_TRACEPARENT"))
            self.access_log.info(access_line(self.identity, {
                "message": f"{method} {path} {status}",
                **{field: headers.get(header) for field, header in self.line_header_names},
                "trace_id": trace and trace[0],
                "remote": environ.get("REMOTE_ADDR"),
                "method": method, "path": path, "protocol": environ["SERVER_PROTOCOL"],
                "status": status, "bytes": resp.sent,
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
            }))
        except Exception:
            self.exception("access log")


class ReplicaAccessLogger(AccessLogger):
    """AccessLogger for a service that runs as several replicas behind the gateway: each
    line also names the replica that answered."""

    line_headers = (*AccessLogger.line_headers, ("served_by", SERVED_BY_HEADER))


def use_gunicorn_logging():
    """Route the application's log records to gunicorn's error log, when under gunicorn."""
    gunicorn_logger = logging.getLogger("gunicorn.error")
    if gunicorn_logger.handlers:
        root = logging.getLogger()
        root.handlers = gunicorn_logger.handlers
        root.setLevel(gunicorn_logger.level)
