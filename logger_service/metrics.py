"""The logger's own metrics; servicekit.metrics counts its requests."""

from prometheus_client import Counter, Gauge, Histogram

from servicekit.metrics import LATENCY_BUCKETS, DiskSpaceCollector

from .config import GROUP_COMMIT_MAX_ROWS, Config

RECORDS = Counter(
    "logger_records_total", "Inputs committed to the database, by outcome.", ["outcome"],
)
RECORD_FAILURES = Counter(
    "logger_record_failures_total", "Inputs that could not be committed (answered 503).",
)
DB_WRITE = Histogram(
    "logger_db_write_duration_seconds",
    "Time a request waited for its record to be committed.", buckets=LATENCY_BUCKETS,
)
COMMIT_ROWS = Histogram(
    "logger_db_commit_rows", "Records committed together in one transaction.",
    buckets=tuple(2**n for n in range(GROUP_COMMIT_MAX_ROWS.bit_length())),
)
FORWARDS = Histogram(
    "logger_forward_duration_seconds",
    "Time to get a prediction from the pool, by outcome (predicted, or why not).",
    ["outcome"], buckets=LATENCY_BUCKETS,
)
FORWARD_BATCH = Histogram(
    "logger_forward_batch_texts",
    "Texts sent to the pool together in one forward (batching.py): 1 while forwards go "
    "alone.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SHADOWS = Counter(
    "logger_shadows_total",
    "Mirrored predictions asked of the candidate, by outcome (predicted, no_candidate, "
    "unavailable, error; dropped when the queue was full).", ["outcome"],
)
CIRCUIT_STATE = Gauge(
    "logger_predictor_circuit_state",
    "Workers whose circuit breaker to the predictor pool is in each state.",
    ["state"], multiprocess_mode="livesum",
)
CIRCUIT_TRANSITIONS = Counter(
    "logger_predictor_circuit_transitions_total",
    "Changes of a worker's circuit breaker state.", ["from_state", "to_state"],
)

# Read by the gunicorn master at each scrape (servicekit.gunicorn.serve_metrics): the disk
# is the same for every worker, and a scrape sees it even when no request comes. Only
# SQLite's: PostgreSQL's disk is the database server's, watched where it runs.
SCRAPED_BY_MASTER = ([] if Config.DATABASE_URL else
                     [DiskSpaceCollector(Config.DB_PATH, prefix="logger_database")])
