"""The predictor's own metrics; servicekit.metrics counts its requests."""

from prometheus_client import Counter, Gauge, Histogram

from servicekit.metrics import LATENCY_BUCKETS

PREDICTIONS = Counter(
    "predictor_predictions_total", "Texts classified, by model, version and class.",
    ["model", "version", "class"],
)
MODEL_CALL = Histogram(
    "predictor_model_call_duration_seconds", "Time of one model call (one batch of texts).",
    buckets=LATENCY_BUCKETS,
)
# Up to MICRO_BATCH_MAX_TEXTS (64) by default; a request of more texts is a call of its own.
BATCH_SIZE = Histogram(
    "predictor_batch_size", "Texts per model call.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
QUEUE_DEPTH = Gauge(
    "predictor_batch_queue_depth", "Requests waiting in the micro-batchers for a model call.",
    multiprocess_mode="livesum",
)
SHED = Counter(
    "predictor_requests_shed_total",
    "Requests refused at once with 503 because the worker had no room (load shedding).",
)
MODEL_LOAD = Gauge(
    "predictor_model_load_duration_seconds",
    "Time the model took to load and answer its warm-up call, the slowest live worker's.",
    multiprocess_mode="livemax",
)
MODEL_READY = Gauge(
    "predictor_model_ready",
    "1 when every live worker serves a production version that has loaded and answered "
    "a warm-up call, else 0.",
    multiprocess_mode="livemin",
)
# A version serves under an alias in a worker once it is loaded and warm there (serving.py):
# python -m gateway rollout moves traffic once alias_workers == workers on every replica.
ALIAS_WORKERS = Gauge(
    "predictor_model_alias_workers",
    "Live workers that serve this version under this alias (production, candidate, previous).",
    ["alias", "version"], multiprocess_mode="livesum",
)
WORKERS = Gauge(
    "predictor_workers", "Live workers of this replica.", multiprocess_mode="livesum",
)
