"""Gunicorn settings for the logger, read from LOGGER_* environment variables.

    gunicorn -c logger_service/gunicorn.conf.py
"""

import json
import os

from gunicorn import util


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
access_log_format = (
    '%(h)s "%(r)s" %(s)s %(B)sB %(M)sms request_id=%({x-request-id}o)s'
)
