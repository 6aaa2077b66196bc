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
    # split, so one with more (up to schemas.MAX_INPUTS_PER_REQUEST) is a call of its own.
    MICRO_BATCH_MAX_TEXTS = int(os.environ.get("PREDICTOR_MAX_BATCH_SIZE", "64"))
    # Under load, how long a batch waits for as many requests as the previous one held
    # (a lone request never waits: batching.py); 0: never wait.
    MICRO_BATCH_MAX_WAIT_MS = float(os.environ.get("PREDICTOR_MAX_BATCH_WAIT_MS", "2"))
    # Tests turn this off to observe the not-yet-ready state.
    LOAD_MODEL_ON_START = True

    API_TITLE = "Predictor service"
    API_VERSION = "1.0.0"
