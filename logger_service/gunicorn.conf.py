"""Gunicorn settings for the logger, read from LOGGER_* environment variables.

    gunicorn -c logger_service/gunicorn.conf.py
"""

import os

from servicekit.gunicorn import AccessLogger, install, worker_class_named

wsgi_app = "logger_service:create_app()"
bind = os.environ.get("LOGGER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("LOGGER_WORKERS", "2"))
# gthread honours keep-alive (the sync worker closes every connection), so the
# gateway's pooled upstream connections are reused; bench/worker_class.py measures
# sync against gthread behind Nginx (figures in docs/gateway.md).
# gthread is servicekit.gunicorn.ThreadWorker: it refuses new connections once stopping.
worker_class = worker_class_named(os.environ.get("LOGGER_WORKER_CLASS", "gthread"))
threads = int(os.environ.get("LOGGER_THREADS", "16"))
# Longer than the gateway's upstream idle timeout, so that Nginx, not gunicorn,
# closes an idle connection and never reuses one that gunicorn is closing.
keepalive = int(os.environ.get("LOGGER_KEEPALIVE", "75"))
timeout = int(os.environ.get("LOGGER_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("LOGGER_GRACEFUL_TIMEOUT", "20"))

# The control socket is one fixed path per user: replicas on one host would fight over it.
control_socket_disable = True

# In the master, before the workers fork: an answer's head goes out in the same write
# as its body, and gunicorn's own error pages are JSON (servicekit/gunicorn.py).
on_starting = install

# Responses go out through OneWriteResponse.write, never sendfile, which would
# send the head alone.
sendfile = False

# Both logs, and the services' own log lines (servicekit.gunicorn.use_gunicorn_logging),
# go to stdout: "-" is stdout for the access log, and AccessLogger.setup moves the error
# log there.
accesslog = "-"
errorlog = "-"
logger_class = AccessLogger
