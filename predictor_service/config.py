"""Predictor settings, read from PREDICTOR_* environment variables."""

import os

from .model import DEFAULT_ARTIFACT


class Config:
    MODEL_PATH = os.environ.get("PREDICTOR_MODEL_PATH", str(DEFAULT_ARTIFACT))
    # Names this instance in the X-Served-By header; defaults to hostname:port.
    INSTANCE_ID = os.environ.get("PREDICTOR_INSTANCE_ID", "")
    # Adaptive micro-batching of concurrent requests in each worker (batching.py).
    BATCHING = os.environ.get("PREDICTOR_BATCHING", "on") == "on"
    MAX_BATCH_SIZE = int(os.environ.get("PREDICTOR_MAX_BATCH_SIZE", "64"))
    # Under load, how long a batch waits for as many requests as the previous one held
    # (a lone request never waits: batching.py); 0: never wait.
    MAX_BATCH_WAIT_MS = float(os.environ.get("PREDICTOR_MAX_BATCH_WAIT_MS", "2"))
    # Tests turn this off to observe the not-yet-ready state.
    LOAD_MODEL_ON_START = True
    MAX_CONTENT_LENGTH = 1024 * 1024

    API_TITLE = "Predictor service"
    API_VERSION = "1.0.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
    OPENAPI_REDOC_PATH = "redoc"
    OPENAPI_REDOC_URL = "https://cdn.jsdelivr.net/npm/redoc/bundles/redoc.standalone.js"
