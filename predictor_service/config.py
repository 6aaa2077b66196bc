"""Predictor settings, read from PREDICTOR_* environment variables."""

import os
from pathlib import Path

from servicekit.config import ApiConfig

MODEL_NAME = "pet-text-classifier"
# Bump when the data or the pipeline changes in a way clients should notice.
MODEL_VERSION = "1.0.0"
# Where train.py writes the model, and what the service serves unless told otherwise.
DEFAULT_ARTIFACT = Path(__file__).parent / "artifacts" / f"{MODEL_NAME}-{MODEL_VERSION}.skops"


class Config(ApiConfig):
    MODEL_PATH = os.environ.get("PREDICTOR_MODEL_PATH", str(DEFAULT_ARTIFACT))
    # Names this instance in the X-Served-By header; defaults to hostname:port.
    INSTANCE_ID = os.environ.get("PREDICTOR_INSTANCE_ID", "")
    # Adaptive micro-batching of concurrent requests in each worker (batching.py).
    BATCHING = os.environ.get("PREDICTOR_BATCHING", "on") == "on"
    # The most texts one model call gathers from several requests; a request is never
    # split by count, so one with more (up to schemas.MAX_INPUTS_PER_REQUEST) is a call of its own.
    MICRO_BATCH_MAX_TEXTS = int(os.environ.get("PREDICTOR_MAX_BATCH_SIZE", "64"))
    # Under load, how long a batch waits for as many requests as the previous one held
    # (a lone request never waits: batching.py); 0: never wait.
    MICRO_BATCH_MAX_WAIT_MS = float(os.environ.get("PREDICTOR_MAX_BATCH_WAIT_MS", "2"))
    # The most characters in one model call, about 55 ms of CPU: a heavier request is
    # computed in parts, with lighter requests in between (batching.py).
    MICRO_BATCH_MAX_CHARS = int(os.environ.get("PREDICTOR_MAX_BATCH_CHARS", "50000"))
    # The most characters one request may send across its texts: 422 past it. The model
    # costs about 1.1 us of CPU per character at worst on a 2-core dev machine (20 texts
    # of 10,000 random letters or CJK characters: 0.21-0.23 s; English 0.72 us), so
    # 200,000 keeps one request under a quarter of a second of CPU.
    MAX_REQUEST_CHARS = int(os.environ.get("PREDICTOR_MAX_REQUEST_CHARS", "200000"))
    # The most characters a worker has in flight (queued for the model or in it); a
    # request past it is answered 503 with Retry-After at once (admission.py). 500,000
    # is 0.55 s of CPU at 1.1 us per character: a full worker drains well within the
    # gateway's 3 s read timeout, even sharing a core, and still takes 2 requests of
    # the largest size at once.
    MAX_QUEUED_CHARS = int(os.environ.get("PREDICTOR_MAX_QUEUED_CHARS", "500000"))
    # Tests turn this off to observe the not-yet-ready state.
    LOAD_MODEL_ON_START = True
    # A /predict that arrives while the model loads (a replica just started) waits this
    # long for it, under the gateway's 3 s read timeout, rather than answering 503: the
    # gateway passes a replica's 503 on (it is load shedding), so one starting replica
    # would otherwise fail requests during a rolling restart.
    LOAD_WAIT_SECONDS = float(os.environ.get("PREDICTOR_LOAD_WAIT_SECONDS", "2"))

    API_TITLE = "Predictor service"
    API_VERSION = "1.0.0"
