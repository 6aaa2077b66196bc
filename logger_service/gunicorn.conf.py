"""Gunicorn settings for the logger, read from LOGGER_* environment variables.

    gunicorn -c logger_service/gunicorn.conf.py
"""

import json
import os

from gunicorn import glogging, util


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


class AccessLogger(glogging.Logger):
    """gunicorn's logger, with an access line built from only the fields it shows.

    gunicorn's own access() first gathers every request header, response header and
    environ variable and a formatted timestamp into a dict, for each request: with it a
    request to the predictor's /health cost 1.06 ms of CPU, 0.82 ms with no access log.
    This builds the same line directly, at a cost too small to tell from no log at all.
    """

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in resp.headers}
        try:
            self.access_log.info(
                '%s "%s %s %s" %s %sB %dms request_id=%s',
                environ.get("REMOTE_ADDR", "-"),
                environ["REQUEST_METHOD"], environ["RAW_URI"], environ["SERVER_PROTOCOL"],
                str(resp.status).split(None, 1)[0], resp.sent,
                request_time.total_seconds() * 1000,
                headers.get("x-request-id", "-"),
            )
        except Exception:
            self.exception("access log")


wsgi_app = "logger_service:create_app()"
bind = os.environ.get("LOGGER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("LOGGER_WORKERS", "2"))
# gthread honours keep-alive (the sync worker closes every connection), so the
# gateway's pooled upstream connections are reused; bench/worker_class.py measures
# sync against gthread behind Nginx (figures in docs/gateway.md).
worker_class = os.environ.get("LOGGER_WORKER_CLASS", "gthread")
threads = int(os.environ.get("LOGGER_THREADS", "16"))
# Longer than the gateway's upstream idle timeout, so that Nginx, not gunicorn,
# closes an idle connection and never reuses one that gunicorn is closing.
keepalive = int(os.environ.get("LOGGER_KEEPALIVE", "75"))
timeout = int(os.environ.get("LOGGER_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("LOGGER_GRACEFUL_TIMEOUT", "20"))

# The control socket is one fixed path per user: replicas on one host would fight over it.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
logger_class = AccessLogger
