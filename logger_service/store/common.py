"""What both stores share: the guarantees, the metrics and the shape of what they return.

A subclass talks to its database through six methods (_create_schema, _insert_records,
_insert_shadow, _latest, _newest_records, _probe_write) that raise its driver's errors,
named in `errors`; this class turns those into StorageUnavailable, so that nothing a
database did not commit is ever acknowledged.

Records go through the process's writer (writer.py): each caller's row is committed in
one transaction with whatever other rows are waiting (_insert_records), and record()
returns once that transaction is committed. A shadow is inserted by its own thread,
alone: it is best effort, and rare.
"""

import json
import logging
import time
from datetime import UTC, datetime

from servicekit.errors import ServiceError
from servicekit.metrics import child

from ..config import GROUP_COMMIT_MAX_ROWS
from ..metrics import COMMIT_ROWS, DB_WRITE, RECORD_FAILURES, RECORDS
from .writer import GroupWriter, WriterUnavailable

log = logging.getLogger(__name__)

# The columns of a record, in the order /logs shows them.
RECORD_COLUMNS = (
    "id", "request_id", "client_id", "trace_id", "created_at", "data", "forward_to_model",
    "outcome", "prediction", "latency_ms",
)
# What an insert writes: all but the id, which the database gives.
INSERTED_COLUMNS = RECORD_COLUMNS[1:]
# The bytes of a page around its records: {"records": [], "next_before_id": <id>}.
PAGE_ENVELOPE_BYTES = len(json.dumps({"records": [], "next_before_id": 2**63 - 1}))
# The comparison's reads, the same in both stores but for the driver's placeholder {p}.
LATEST_SERVED = ("SELECT request_id, prediction, latency_ms FROM records"
                 " WHERE outcome = 'predicted' ORDER BY id DESC LIMIT {p}")
LATEST_SHADOWS = ("SELECT request_id, outcome, prediction, latency_ms FROM shadows"
                  " ORDER BY id DESC LIMIT {p}")
# A record waits for the group being committed, then for its own: each turn may take the
# busy timeout (SQLite's write lock; PostgreSQL's connection, then its statement).
RECORD_WAIT_TURNS = 2


class StorageUnavailable(ServiceError):
    """The database cannot take a write or answer a read now: down, locked, full or
    read-only. reason is the database's own words, which /ready shows."""

    status = 503

    def __init__(self, action, reason=""):
        super().__init__(f"Could not {action}: storage is unavailable.")
        self.reason = reason


def utc_now():
    return datetime.now(UTC)


def insert_record_query(placeholder):
    """The INSERT of one record, each value a named parameter: placeholder is how the
    driver names one, with {} for its name (":{}" in sqlite3, "%({})s" in psycopg)."""
    return (f"INSERT INTO records ({', '.join(INSERTED_COLUMNS)}) VALUES"
            f" ({', '.join(placeholder.format(column) for column in INSERTED_COLUMNS)})")


def newest_records_query(limit, before_id, placeholder):
    """The query and parameters of a /logs page: newest first, ids below before_id."""
    query, params = f"SELECT {', '.join(RECORD_COLUMNS)} FROM records", []
    if before_id is not None:
        query += f" WHERE id < {placeholder}"
        params.append(before_id)
    return f"{query} ORDER BY id DESC LIMIT {placeholder}", [*params, limit]


def timestamp(moment):
    """A record's time as /logs shows it, whichever store kept it: ISO 8601 UTC, in ms."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class Store:
    errors = ()  # the exception classes of the subclass's driver

    def __init__(self, busy_timeout):
        self._writer = GroupWriter(
            self._insert_records, self.is_unavailable,
            timeout=RECORD_WAIT_TURNS * busy_timeout, max_rows=GROUP_COMMIT_MAX_ROWS,
            on_commit=COMMIT_ROWS.observe,
        )

    @staticmethod
    def is_unavailable(exc):
        """Whether a driver's error says the database cannot take writes at all (down,
        locked, full, read-only), rather than refusing one row."""
        raise NotImplementedError

    def create_schema(self):
        """Bring the database's schema up to date; safe while other replicas do the same."""
        try:
            self._create_schema()
        except self.errors as exc:
            raise StorageUnavailable("create the schema", str(exc)) from exc

    def record(self, request_id, data, forward_to_model, outcome, prediction, latency_ms,
               client_id=None, trace_id=None):
        """Insert one request's row and return its id once it is committed.

        The row is committed by the writer thread, together with the others waiting.
        Raise StorageUnavailable when it cannot be committed: nothing unstored is
        acknowledged.
        """
        started = time.perf_counter()
        try:
            record_id = self._writer.write({
                "request_id": request_id, "client_id": client_id, "trace_id": trace_id,
                "created_at": utc_now(), "data": data, "forward_to_model": forward_to_model,
                "outcome": outcome, "prediction": prediction, "latency_ms": latency_ms,
            })
        except (*self.errors, WriterUnavailable) as exc:
            RECORD_FAILURES.inc()
            log.exception("could not record request %s", request_id)
            raise StorageUnavailable("record the input", str(exc)) from exc
        DB_WRITE.observe(time.perf_counter() - started)
        child(RECORDS, outcome).inc()
        return record_id

    def record_shadow(self, request_id, outcome, prediction, latency_ms):
        """Insert the candidate's answer to a mirrored prediction; a shadow is best effort,
        so a failure is logged and counted, never raised."""
        try:
            self._insert_shadow({
                "request_id": request_id, "created_at": utc_now(), "outcome": outcome,
                "prediction": prediction, "latency_ms": latency_ms,
            })
        except self.errors:
            log.exception("could not record the shadow of request %s", request_id)

    def latest_predictions(self, limit):
        """The latest limit predictions served, as (request_id, prediction, latency_ms),
        and the latest limit shadows, as (request_id, outcome, prediction, latency_ms)."""
        try:
            return self._latest(limit)
        except self.errors as exc:
            log.exception("could not read the predictions")
            raise StorageUnavailable("read the predictions", str(exc)) from exc

    def page(self, limit, before_id=None):
        """Return up to limit rows, newest first, with ids below before_id when given;
        raise StorageUnavailable when they cannot be read."""
        records, _ = self.bounded_page(limit, before_id)
        return records

    def bounded_page(self, limit, before_id=None, max_bytes=None):
        """Return page()'s rows, stopping before the one that would take the page, as
        JSON in UTF-8, past max_bytes (one row at least), and whether it stopped so.

        Rows are read one at a time, so a page of large rows is never all in memory.
        """
        records, size = [], PAGE_ENVELOPE_BYTES
        try:
            with self._newest_records(limit, before_id) as rows:
                for record in rows:
                    if max_bytes is not None:
                        # Python's default separators (", ", ": ") are wider than the
                        # compact ones Flask answers with: the page is at most this size.
                        size += len(json.dumps(record, ensure_ascii=False).encode()) + 2
                        if records and size > max_bytes:
                            return records, True
                    records.append(record)
        except self.errors as exc:
            log.exception("could not read the records")
            raise StorageUnavailable("read the records", str(exc)) from exc
        return records, False

    def check_writable(self, min_free_bytes=0):
        """Raise StorageUnavailable unless a write can be committed now, with room for more."""
        try:
            self._probe_write(min_free_bytes)
        except self.errors as exc:
            raise StorageUnavailable("take writes", str(exc)) from exc

    def close(self):
        """Take no more records, commit those queued, then let go of the database."""
        self._writer.close()
