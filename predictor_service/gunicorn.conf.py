"""Gunicorn settings for the predictor, read from PREDICTOR_* environment variables.

    gunicorn -c predictor_service/gunicorn.conf.py
"""

import json
import os
import sys

from gunicorn import glogging, util
from gunicorn.http import wsgi


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own errors (a request line or header too long, a malformed request)
    in the services' JSON error shape, instead of its HTML page.

    gunicorn has no setting for these pages, so this replaces its writer, once, in the
    master before the workers are forked.
    """
    body = json.dumps({"code": status_int, "status": reason, "message": mesg or reason})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body.encode())


util.write_error = write_json_error


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


wsgi.Response = OneWriteResponse


class AccessLogger(glogging.Logger):
    """gunicorn's logger, with its error log on stdout and an access line built from only
    the fields it shows.

    gunicorn's own access() first gathers every request header, response header and
    environ variable and a formatted timestamp into a dict, for each request: with it a
    request to the predictor's /health cost 1.06 ms of CPU, 0.82 ms with no access log.
    This builds the same line directly, at a cost too small to tell from no log at all.
    """

    def setup(self, cfg):
        """Send the error log to stdout, where the access log goes, instead of stderr.

        gunicorn's errorlog "-" means stderr. Its handler gets sys.stdout itself rather
        than a file opened at /dev/stdout, which fails when stdout is a socket (journald)
        and, when it is a file opened without O_APPEND, writes over the access lines.
        """
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if getattr(handler, "stream", None) is sys.stderr:
                handler.setStream(sys.stdout)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in resp.headers}
        try:
            self.access_log.info(
                '%s "%s %s %s" %s %sB %dms request_id=%s served_by=%s',
                environ.get("REMOTE_ADDR", "-"),
                environ["REQUEST_METHOD"], environ["RAW_URI"], environ["SERVER_PROTOCOL"],
                str(resp.status).split(None, 1)[0], resp.sent,
                request_time.total_seconds() * 1000,
                headers.get("x-request-id", "-"),
                headers.get("x-served-by", "-"),
            )
        except Exception:
            self.exception("access log")


wsgi_app = "predictor_service:create_app()"
bind = os.environ.get("PREDICTOR_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("PREDICTOR_WORKERS", "2"))
# gthread honours keep-alive (the sync worker closes every connection), so the
# gateway's pooled upstream connections are reused; bench/worker_class.py measures
# sync against gthread behind Nginx (figures in docs/gateway.md).
worker_class = os.environ.get("PREDICTOR_WORKER_CLASS", "gthread")
# Request threads bound how many requests can share one model call (batching.py): one
# worker under 64 connections served 299 requests/s with 4, 356 with 8, 342 with 16.
threads = int(os.environ.get("PREDICTOR_THREADS", "8"))
# Longer than the gateway's upstream idle timeout, so that Nginx, not gunicorn,
# closes an idle connection and never reuses one that gunicorn is closing.
keepalive = int(os.environ.get("PREDICTOR_KEEPALIVE", "75"))
timeout = int(os.environ.get("PREDICTOR_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("PREDICTOR_GRACEFUL_TIMEOUT", "20"))

# The control socket is one fixed path per user: replicas on one host would fight over it.
control_socket_disable = True

# Responses go out through OneWriteResponse.write, never sendfile, which would
# send the head alone.
sendfile = False

# Both logs, and the services' own log lines (api.use_gunicorn_logging), go to stdout:
# "-" is stdout for the access log, and AccessLogger.setup moves the error log there.
accesslog = "-"
errorlog = "-"
logger_class = AccessLogger
