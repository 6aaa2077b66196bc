"""Durable record of every input: an embedded SQLite database in WAL mode.

Each worker thread keeps its own connection (SQLite connections must not cross
threads or forks); WAL lets readers run beside the single writer, and the busy
timeout makes concurrent workers queue for the write lock instead of failing.
A page of records is bounded in bytes as well as rows.
"""

import json
import logging
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime

from flask import current_app

from servicekit.errors import ServiceError

from .metrics import DB_WRITE, RECORD_FAILURES, RECORDS

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    client_id TEXT,
    trace_id TEXT,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL,
    forward_to_model INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    prediction TEXT,
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_request_id ON records (request_id);
-- The candidate's answers to mirrored predictions (shadow.py), beside the records'
-- under the same request id.
CREATE TABLE IF NOT EXISTS shadows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prediction TEXT,
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS shadows_request_id ON shadows (request_id);
CREATE TABLE IF NOT EXISTS readiness_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);
"""
# Columns added since the first schema, each with its type: create_schema adds those
# that a database made before them lacks.
ADDED_COLUMNS = {"client_id": "TEXT", "trace_id": "TEXT"}
COLUMNS = (
    "id, request_id, client_id, trace_id, created_at, data, forward_to_model, outcome,"
    " prediction, latency_ms"
)
# The bytes of a page around its records: {"records": [], "next_before_id": <id>}.
PAGE_ENVELOPE_BYTES = len(json.dumps({"records": [], "next_before_id": 2**63 - 1}))
SYNCHRONOUS_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}


class StorageUnavailable(ServiceError):
    """The database cannot take a write or answer a read now: locked, full or read-only."""

    status = 503

    def __init__(self, action):
        super().__init__(f"Could not {action}: storage is unavailable.")


def get_store():
    """Return the current app's LogStore, which create_app made."""
    return current_app.extensions["store"]


def utc_now():
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LogStore:
    def __init__(self, path, synchronous="FULL", busy_timeout=5.0):
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._schema_created = False

    def connect(self):
        """Return this thread's connection, opening it on first use (or after a fork).

        Raise sqlite3.Error while the database cannot be created.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            if not self._schema_created:
                self.create_schema()
            # isolation_level=None: autocommit, so each INSERT is its own transaction.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def create_schema(self):
        """Create the tables and switch the database to WAL; safe to run concurrently."""
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot create the database's folder: {exc}") from exc
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            self._switch_to_wal(conn)
            # Under the write lock from the start (BEGIN IMMEDIATE), waited for up to
            # busy_timeout. A deferred transaction reads first, then asks for the write
            # lock, and of two such transactions SQLite fails one at once with
            # "database is locked" (a deadlock) instead of letting it wait.
            conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
        finally:
            conn.close()
        self._add_missing_columns()
        self._schema_created = True

    def _switch_to_wal(self, conn):
        """Set WAL mode, waiting up to busy_timeout for the other workers' connections.

        Leaving a rollback journal (a database made by an older version) needs every
        other connection's lock gone, and SQLite answers "database is locked" at once,
        without its busy handler, while a worker starting beside this one reads.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _add_missing_columns(self):
        """Bring a database made by an older version up to SCHEMA's columns.

        Under the write lock (BEGIN IMMEDIATE), so that workers starting together
        take turns: the first adds a column, the others then find it there.
        """
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            present = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
            if present >= ADDED_COLUMNS.keys():
                return
            conn.execute("BEGIN IMMEDIATE")
            present = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
            for name, column_type in ADDED_COLUMNS.items():
                if name not in present:
                    conn.execute(f"ALTER TABLE records ADD COLUMN {name} {column_type}")
                    log.info("database %s: added column records.%s", self.path, name)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def record(self, request_id, data, forward_to_model, outcome, prediction, latency_ms,
               client_id=None, trace_id=None):
        """Insert one request's row and return its id once it is committed.

        Raise StorageUnavailable when it cannot be committed: nothing unstored is
        acknowledged.
        """
        started = time.perf_counter()
        try:
            cursor = self.connect().execute(
                "INSERT INTO records (request_id, client_id, trace_id, created_at, data,"
                " forward_to_model, outcome, prediction, latency_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    client_id,
                    trace_id,
                    utc_now(),
                    data,
                    int(forward_to_model),
                    outcome,
                    None if prediction is None else json.dumps(prediction),
                    latency_ms,
                ),
            )
        except sqlite3.Error as exc:
            RECORD_FAILURES.inc()
            log.exception("could not record request %s", request_id)
            raise StorageUnavailable("record the input") from exc
        DB_WRITE.observe(time.perf_counter() - started)
        RECORDS.labels(outcome).inc()
        return cursor.lastrowid

    def record_shadow(self, request_id, outcome, prediction, latency_ms):
        """Insert the candidate's answer to a mirrored prediction; a shadow is best effort,
        so a failure is logged and counted, never raised."""
        try:
            self.connect().execute(
                "INSERT INTO shadows (request_id, created_at, outcome, prediction, latency_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (request_id, utc_now(), outcome,
                 None if prediction is None else json.dumps(prediction), latency_ms),
            )
        except sqlite3.Error:
            log.exception("could not record the shadow of request %s", request_id)

    def latest_predictions(self, limit):
        """The latest limit predictions served, as (request_id, prediction, latency_ms),
        and the latest limit shadows, as (request_id, outcome, prediction, latency_ms)."""
        try:
            conn = self.connect()
            served = conn.execute(
                "SELECT request_id, prediction, latency_ms FROM records"
                " WHERE outcome = 'predicted' ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            shadows = conn.execute(
                "SELECT request_id, outcome, prediction, latency_ms FROM shadows"
                " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        except sqlite3.Error as exc:
            log.exception("could not read the predictions")
            raise StorageUnavailable("read the predictions") from exc
        return (
            [(row[0], json.loads(row[1]), row[2]) for row in served],
            [(row[0], row[1], row[2] and json.loads(row[2]), row[3]) for row in shadows],
        )

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
        query = f"SELECT {COLUMNS} FROM records"
        params = []
        if before_id is not None:
            query += " WHERE id < ?"
            params.append(before_id)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        records, size = [], PAGE_ENVELOPE_BYTES
        try:
            cursor = self.connect().execute(query, params)
            try:
                for row in cursor:
                    record = self._row_to_dict(row)
                    if max_bytes is not None:
                        # Python's default separators (", ", ": ") are wider than the
                        # compact ones Flask answers with: the page is at most this size.
                        size += len(json.dumps(record, ensure_ascii=False).encode()) + 2
                        if records and size > max_bytes:
                            return records, True
                    records.append(record)
            finally:
                cursor.close()  # ends the read at once when the page stops early
        except sqlite3.Error as exc:
            log.exception("could not read the records")
            raise StorageUnavailable("read the records") from exc
        return records, False

    def check_writable(self, min_free_bytes=0):
        """Raise sqlite3.Error unless a write can be committed now, with room for more."""
        stats = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        free = stats.f_bavail * stats.f_frsize
        if free < min_free_bytes:
            raise sqlite3.OperationalError(
                f"database or disk is full: {free} bytes free, below {min_free_bytes}"
            )
        self.connect().execute(
            "INSERT OR REPLACE INTO readiness_probe (id, checked_at) VALUES (1, ?)",
            (utc_now(),),
        )

    @staticmethod
    def _row_to_dict(row):
        record = dict(row)
        record["forward_to_model"] = bool(record["forward_to_model"])
        if record["prediction"] is not None:
            record["prediction"] = json.loads(record["prediction"])
        return record
