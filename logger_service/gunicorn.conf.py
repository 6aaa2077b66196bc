"""Gunicorn settings for the logger, read from LOGGER_* environment variables.

    gunicorn -c logger_service/gunicorn.conf.py
"""

import os

from servicekit.gunicorn import (
    AccessLogger,
    forget_worker,
    install,
    remove_metrics_folder,
    serve_metrics,
    worker_class_named,
)

wsgi_app = "logger_service:create_app()"
bind = os.environ.get("LOGGER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("LOGGER_WORKERS", "2"))
# gevent: each connection a greenlet, so a request is handed from one to another
# without waking an OS thread, and the logger's waits (its forward to the predictors,
# its record's group commit) cost a switch. Against gthread with 16 threads it serves
# /process 2.1-2.4 times as fast, forwarded ones 1.1-1.2 times (docs/performance.md,
# round four). gunicorn's gevent worker monkey-patches the standard library as it
# starts, so threading in the app is greenlets; the SQLite store keeps one connection
# per OS thread (store/sqlite.py). Like gthread it honours keep-alive, and it closes its
# listening sockets and its idle connections as it stops (servicekit/gevent_worker.py).
# gthread (servicekit.gunicorn.ThreadWorker) is still there: LOGGER_WORKER_CLASS=gthread,
# with LOGGER_THREADS threads per worker.
worker_class = worker_class_named(os.environ.get("LOGGER_WORKER_CLASS", "gevent"))
worker_connections = int(os.environ.get("LOGGER_WORKER_CONNECTIONS", "1000"))
threads = int(os.environ.get("LOGGER_THREADS", "16"))
# Longer than the gateway's upstream idle timeout, so that Nginx, not gunicorn,
# closes an idle connection and never reuses one that gunicorn is closing.
keepalive = int(os.environ.get("LOGGER_KEEPALIVE", "75"))
timeout = int(os.environ.get("LOGGER_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("LOGGER_GRACEFUL_TIMEOUT", "20"))

# The control socket is one fixed path per user: replicas on one host would fight over it.
control_socket_disable = True

# In the master, before the workers fork: an answer's head goes out in the same write
# as its body, gunicorn's own error pages are JSON, and the workers get an empty folder
# for their metrics (servicekit/gunicorn.py).
on_starting = install
# Prometheus metrics of every worker, served by the master on a port of their own, which
# the gateway does not route to (servicekit/metrics.py), and the free space of the
# database's disk.
when_ready = serve_metrics(os.environ.get("LOGGER_METRICS_BIND", "127.0.0.1:9100"),
                           collectors="logger_service.metrics:SCRAPED_BY_MASTER")
# A worker that exits leaves its counters, which still count, and takes its live gauges.
child_exit = forget_worker
on_exit = remove_metrics_folder

# Responses go out through OneWriteResponse.write, never sendfile, which would
# send the head alone.
sendfile = False

# Both logs, and the services' own log lines (servicekit.gunicorn.use_gunicorn_logging),
# go to stdout as JSON lines (servicekit/jsonlog.py) that name the service, proc_name
# (also the processes' title): "-" is stdout for the access log, and AccessLogger.setup
# moves the error log there.
proc_name = "logger"
accesslog = "-"
errorlog = "-"
logger_class = AccessLogger
