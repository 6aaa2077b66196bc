"""Gunicorn settings for the predictor, read from PREDICTOR_* environment variables.

    gunicorn -c predictor_service/gunicorn.conf.py
"""

import os

from servicekit.gunicorn import (
    ReplicaAccessLogger,
    forget_worker,
    install,
    remove_metrics_folder,
    serve_metrics,
    worker_class_named,
)

wsgi_app = "predictor_service:create_app()"
bind = os.environ.get("PREDICTOR_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("PREDICTOR_WORKERS", "2"))
# gevent: each connection a greenlet, as in the logger. A request's text goes to the
# model call it shares with the others and its answer comes back by a switch, where on
# threads each hand-over wakes an OS thread, the costliest step of a request on this
# machine (docs/performance.md, round six). Like gthread it honours keep-alive (the sync
# worker closes every connection), so the gateway's pooled connections are reused, and
# it closes its listening sockets and idle connections as it stops
# (servicekit/gevent_worker.py). gthread (servicekit.gunicorn.ThreadWorker) is still
# there: PREDICTOR_WORKER_CLASS=gthread, with PREDICTOR_THREADS threads per worker.
worker_class = worker_class_named(os.environ.get("PREDICTOR_WORKER_CLASS", "gevent"))
worker_connections = int(os.environ.get("PREDICTOR_WORKER_CONNECTIONS", "1000"))
# On gthread, request threads bound how many requests can share one model call
# (batching.py): one worker under 64 connections served 299 requests/s with 4, 356 with
# 8, 342 with 16.
threads = int(os.environ.get("PREDICTOR_THREADS", "8"))
# Longer than the gateway's upstream idle timeout, so that Nginx, not gunicorn,
# closes an idle connection and never reuses one that gunicorn is closing.
keepalive = int(os.environ.get("PREDICTOR_KEEPALIVE", "75"))
timeout = int(os.environ.get("PREDICTOR_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("PREDICTOR_GRACEFUL_TIMEOUT", "20"))

# The control socket is one fixed path per user: replicas on one host would fight over it.
control_socket_disable = True

# In the master, before the workers fork: an answer's head goes out in the same write
# as its body, gunicorn's own error pages are JSON, and the workers get an empty folder
# for their metrics (servicekit/gunicorn.py).
on_starting = install
# Prometheus metrics of every worker, served by the master on a port of their own, which
# the gateway does not route to (servicekit/metrics.py).
when_ready = serve_metrics(os.environ.get("PREDICTOR_METRICS_BIND", "127.0.0.1:9101"))
# A worker that exits leaves its counters, which still count, and takes its live gauges.
child_exit = forget_worker
on_exit = remove_metrics_folder

# Responses go out through OneWriteResponse.write, never sendfile, which would
# send the head alone.
sendfile = False

# Both logs, and the services' own log lines (servicekit.gunicorn.use_gunicorn_logging),
# go to stdout as JSON lines (servicekit/jsonlog.py) that name the service, proc_name
# (also the processes' title): "-" is stdout for the access log, and ReplicaAccessLogger.setup
# moves the error log there. Each access line also names the replica that answered
# (served_by).
proc_name = "predictor"
accesslog = "-"
errorlog = "-"
logger_class = ReplicaAccessLogger
