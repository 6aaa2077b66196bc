"""Gunicorn settings for the predictor, read from PREDICTOR_* environment variables.

    gunicorn -c predictor_service/gunicorn.conf.py
"""

import os

from servicekit.gunicorn import ReplicaAccessLogger, install, worker_class_named

wsgi_app = "predictor_service:create_app()"
bind = os.environ.get("PREDICTOR_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("PREDICTOR_WORKERS", "2"))
# gthread honours keep-alive (the sync worker closes every connection), so the
# gateway's pooled upstream connections are reused; bench/worker_class.py measures
# sync against gthread behind Nginx (figures in docs/gateway.md).
# gthread is servicekit.gunicorn.ThreadWorker: it refuses new connections once stopping.
worker_class = worker_class_named(os.environ.get("PREDICTOR_WORKER_CLASS", "gthread"))
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

# In the master, before the workers fork: an answer's head goes out in the same write
# as its body, and gunicorn's own error pages are JSON (servicekit/gunicorn.py).
on_starting = install

# Responses go out through OneWriteResponse.write, never sendfile, which would
# send the head alone.
sendfile = False

# Both logs, and the services' own log lines (servicekit.gunicorn.use_gunicorn_logging),
# go to stdout: "-" is stdout for the access log, and ReplicaAccessLogger.setup moves the
# error log there. Each access line also names the replica that answered (served_by=).
accesslog = "-"
errorlog = "-"
logger_class = ReplicaAccessLogger
