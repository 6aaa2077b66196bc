"""Logger settings, read from LOGGER_* environment variables."""

import os
from pathlib import Path

from servicekit.config import ApiConfig

# Flask's instance folder for this package: instance/ beside it.
DEFAULT_DB_PATH = Path(__file__).resolve().parent.parent / "instance" / "logger.sqlite3"
# The most records one transaction commits (store/writer.py): what queued up during the
# previous commit goes in the next, up to this many.
GROUP_COMMIT_MAX_ROWS = 256


class Config(ApiConfig):
    # PostgreSQL (postgresql://user@host:port/db), for more than one logger replica; when
    # empty, the embedded SQLite file at DB_PATH (store/__init__.py). The password may come
    # from a file (a Docker or Kubernetes secret) rather than the URL.
    DATABASE_URL = os.environ.get("LOGGER_DATABASE_URL", "")
    DATABASE_PASSWORD_FILE = os.environ.get("LOGGER_DATABASE_PASSWORD_FILE", "")
    # PostgreSQL connections each worker process may hold; its requests wait their turn
    # for one (gevent) or have one each (gthread, one per thread: gunicorn.conf.py).
    DB_POOL_SIZE = int(os.environ.get("LOGGER_DB_POOL_SIZE", os.environ.get("LOGGER_THREADS",
                                                                            "16")))
    DB_PATH = os.environ.get("LOGGER_DB_PATH", str(DEFAULT_DB_PATH))
    # FULL: a row is on disk before /process answers, even across a power cut.
    DB_SYNCHRONOUS = os.environ.get("LOGGER_DB_SYNCHRONOUS", "FULL")
    # /ready answers 503 when the SQLite database's disk has less free space than this.
    DB_MIN_FREE_BYTES = int(os.environ.get("LOGGER_DB_MIN_FREE_BYTES", str(16 * 1024 * 1024)))
    # How long a write waits for another worker's write lock (SQLite), or for a connection
    # and its statement (PostgreSQL), before giving up with 503.
    DB_BUSY_TIMEOUT = float(os.environ.get("LOGGER_DB_BUSY_TIMEOUT", "5.0"))
    # The gateway's /predict on its internal port, so that forwarded requests reach the
    # whole predictor pool without the public per-client limits.
    # Connect plus read timeout (6 s) bounds a forward, its wait for a turn in a batch
    # included, and stays under the gateway's timeout for /process (10 s): the logger
    # always answers, with its own 503, before the gateway gives up.
    PREDICTOR_URL = os.environ.get("LOGGER_PREDICTOR_URL", "http://127.0.0.1:8081/predict")
    PREDICTOR_CONNECT_TIMEOUT = float(os.environ.get("LOGGER_PREDICTOR_CONNECT_TIMEOUT", "1.0"))
    PREDICTOR_READ_TIMEOUT = float(os.environ.get("LOGGER_PREDICTOR_READ_TIMEOUT", "5.0"))
    # The circuit breaker: open after this many unavailable answers in a row, then
    # answer 503 at once for this many seconds before trying the predictor again.
    PREDICTOR_BREAKER_FAIL_MAX = int(os.environ.get("LOGGER_PREDICTOR_BREAKER_FAIL_MAX", "5"))
    PREDICTOR_BREAKER_RESET_TIMEOUT = float(
        os.environ.get("LOGGER_PREDICTOR_BREAKER_RESET_TIMEOUT", "10")
    )
    # A /logs page stops before the record that would take its JSON past this many
    # bytes (it always holds one): with records of up to 10,000 characters, 4 bytes
    # each in UTF-8, a page of 500 could otherwise be 20 MB or more; 2 MiB is 50 records of
    # the largest kind, and any number of ordinary ones up to the limit of 500.
    LOGS_MAX_PAGE_BYTES = int(os.environ.get("LOGGER_LOGS_MAX_PAGE_BYTES", str(2 * 1024 * 1024)))
    # Keep-alive connections to the gateway kept per worker, for as many forwards at once
    # (a gthread worker has at most LOGGER_THREADS): one more at once opens a connection
    # of its own, which urllib3 closes after it, with a warning. 64 covers the 32 or so a
    # gevent worker has under 64 client connections.
    PREDICTOR_POOL_SIZE = int(os.environ.get("LOGGER_PREDICTOR_POOL_SIZE", "64"))
    # Calls out at once per worker for one client and routing (canary key, pin); past
    # that, that client's forwards wait and go in batches (batching.py) of
    # at most this many texts and characters: no more than the predictor takes in one
    # request (PREDICTOR_MAX_REQUEST_CHARS; 256 texts), and the texts' request ids fit in
    # one header line of the gateway's (8 KiB: 32 ids of 128 characters at most).
    # LOGGER_FORWARD_BATCH_MAX_TEXTS=1: never a batch. 2, 3 and 4 in flight served
    # forwarded /process equally fast (docs/performance.md, round five); 4 leaves more
    # calls going when one replica is slow.
    FORWARDS_IN_FLIGHT = int(os.environ.get("LOGGER_FORWARDS_IN_FLIGHT", "4"))
    FORWARD_BATCH_MAX_TEXTS = int(os.environ.get("LOGGER_FORWARD_BATCH_MAX_TEXTS", "32"))
    FORWARD_BATCH_MAX_CHARS = int(os.environ.get("LOGGER_FORWARD_BATCH_MAX_CHARS", "200000"))

    # Shadow traffic (shadow.py): where the candidate is asked (by default the same
    # gateway as the forwards, with X-Model-Version: candidate), how long a shadow may
    # take, and how many may wait per worker before more are dropped.
    SHADOW_URL = os.environ.get("LOGGER_SHADOW_URL", PREDICTOR_URL)
    SHADOW_READ_TIMEOUT = float(os.environ.get("LOGGER_SHADOW_READ_TIMEOUT", "3.0"))
    SHADOW_MAX_QUEUED = int(os.environ.get("LOGGER_SHADOW_MAX_QUEUED", "256"))
    # The comparison (experiments.py): where each version's training distribution is
    # read (a predictor's /models, through the gateway's internal listener), and the
    # population stability index past which a version is flagged as drifting.
    MODELS_URL = os.environ.get("LOGGER_MODELS_URL", "http://127.0.0.1:8081/predictor/models")
    DRIFT_PSI_THRESHOLD = float(os.environ.get("LOGGER_DRIFT_PSI_THRESHOLD", "0.2"))

    API_TITLE = "Logger service"
    API_VERSION = "1.0.0"
