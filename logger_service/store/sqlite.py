"""The embedded store: one SQLite file in WAL mode, the default (nothing to set up).

Each OS thread keeps its own connection (SQLite connections must not cross threads or
forks), under the gevent worker too, where a worker's greenlets share their thread's
(os_thread_local); WAL lets readers run beside the single writer. Records are committed by each
worker process's writer thread (writer.py), many in one transaction (BEGIN IMMEDIATE
... COMMIT), one fsync for all.

The writers of every process take turns on a lock file beside the database
(<path>-writer.lock), held around each write transaction, the probe's and the shadows'
too: SQLite's own busy handler sleeps in steps of up to 100 ms while another process
holds the write lock, whereas a writer waiting on the lock file tries again within a
fraction of a millisecond and starts as soon as the other is done. Either wait gives up
after busy_timeout, with "database is locked".
"""

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import sys
import threading
import time

from .common import (
    LATEST_SERVED,
    LATEST_SHADOWS,
    Store,
    insert_record_query,
    newest_records_query,
    timestamp,
    utc_now,
)

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
SYNCHRONOUS_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}
INSERT_RECORD = insert_record_query(":{}")
# The pauses between tries for the writers' lock file: from 50 us, doubling up to 0.5 ms.
# A commit takes a millisecond or so (an fsync), and the other process's writer takes
# the lock again as soon as it has its next group: a waiter must try often to get a turn.
LOCK_FIRST_PAUSE = 0.00005
LOCK_LONGEST_PAUSE = 0.0005


def os_thread_local():
    """A threading.local whose attributes are each OS thread's, under gevent too.

    gevent's monkey-patching (the logger's gevent worker) makes threading.local each
    greenlet's: a worker would open a connection and a lock file for every connection it
    serves, up to worker_connections of each. Its greenlets may share one connection,
    since a switch to another greenlet happens only at a wait, and no SQLite call here
    waits on anything gevent sees: a transaction runs from BEGIN to COMMIT (and the lock
    file from flock to unlock) without a switch. The one wait in between, _write_turn's
    pause for another process's lock, comes before the lock is held.
    """
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        return monkey.get_original("threading", "local")()
    return threading.local()


class SqliteStore(Store):
    errors = (sqlite3.Error,)

    def __init__(self, path, synchronous="FULL", busy_timeout=5.0):
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout = busy_timeout
        self.lock_path = f"{self.path}-writer.lock"
        self._local = os_thread_local()
        self._schema_created = False
        super().__init__(busy_timeout)

    @staticmethod
    def is_unavailable(exc):
        # Locked, full, read-only, missing, I/O error: all OperationalError. A refused row
        # (a constraint) is an IntegrityError, a value it cannot bind a ProgrammingError.
        return isinstance(exc, sqlite3.OperationalError)

    def connect(self):
        """Return this OS thread's connection, opening it on first use (or after a fork).

        Raise sqlite3.Error while the database cannot be created.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            if not self._schema_created:
                self._create_schema()
            # isolation_level=None: autocommit, so that a statement outside BEGIN ... COMMIT
            # (the probe's, a shadow's) is its own transaction.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._local.conn, self._local.pid = conn, os.getpid()
            self._local.lock_fd = None
        return conn

    @contextlib.contextmanager
    def _write_turn(self):
        """Hold the writers' lock file for one write transaction, waiting up to busy_timeout.

        Call connect() first: the lock is the thread's own open file (flock excludes
        other open files, in this process as in others), opened once per connection.
        Raise sqlite3.OperationalError ("database is locked") when the wait is too long.
        """
        if self._local.lock_fd is None:
            try:
                self._local.lock_fd = os.open(self.lock_path,
                                              os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise sqlite3.OperationalError(
                    f"unable to open the writers' lock file: {exc.strerror}") from exc
        lock_fd = self._local.lock_fd
        deadline = time.monotonic() + self.busy_timeout
        pause = LOCK_FIRST_PAUSE
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError(
                        f"database is locked: another writer held {self.lock_path}"
                        f" for {self.busy_timeout:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, LOCK_LONGEST_PAUSE)
            except OSError as exc:
                raise sqlite3.OperationalError(
                    f"cannot lock the writers' lock file: {exc.strerror}") from exc
        try:
            yield
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _create_schema(self):
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

    def _insert_records(self, rows):
        """Insert rows in one transaction and return their ids, in order, once committed."""
        conn = self.connect()
        with self._write_turn():
            # Under the write lock from the start: see _create_schema.
            conn.execute("BEGIN IMMEDIATE")
            try:
                # One statement per row, each its lastrowid (executemany gives no ids;
                # SQLite does not promise RETURNING's order for a multi-row INSERT).
                ids = [conn.execute(INSERT_RECORD, {
                    **row, "created_at": timestamp(row["created_at"]),
                    "forward_to_model": int(row["forward_to_model"]),
                    "prediction": dumps(row["prediction"]),
                }).lastrowid for row in rows]
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT may have rolled back already
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        return ids

    def _insert_shadow(self, row):
        conn = self.connect()
        with self._write_turn():
            conn.execute(
                "INSERT INTO shadows (request_id, created_at, outcome, prediction, latency_ms)"
                " VALUES (:request_id, :created_at, :outcome, :prediction, :latency_ms)",
                {**row, "created_at": timestamp(row["created_at"]),
                 "prediction": dumps(row["prediction"])},
            )

    def _latest(self, limit):
        conn = self.connect()
        served = conn.execute(LATEST_SERVED.format(p="?"), (limit,)).fetchall()
        shadows = conn.execute(LATEST_SHADOWS.format(p="?"), (limit,)).fetchall()
        return (
            [(row[0], json.loads(row[1]), row[2]) for row in served],
            [(row[0], row[1], loads(row[2]), row[3]) for row in shadows],
        )

    @contextlib.contextmanager
    def _newest_records(self, limit, before_id):
        cursor = self.connect().execute(*newest_records_query(limit, before_id, "?"))
        try:
            yield (self._row_to_dict(row) for row in cursor)
        finally:
            cursor.close()  # ends the read at once when the page stops early

    def _probe_write(self, min_free_bytes):
        """Raise sqlite3.Error unless a write can be committed now, with room for more."""
        stats = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        free = stats.f_bavail * stats.f_frsize
        if free < min_free_bytes:
            raise sqlite3.OperationalError(
                f"database or disk is full: {free} bytes free, below {min_free_bytes}"
            )
        conn = self.connect()
        with self._write_turn():
            conn.execute(
                "INSERT OR REPLACE INTO readiness_probe (id, checked_at) VALUES (1, ?)",
                (timestamp(utc_now()),),
            )

    @staticmethod
    def _row_to_dict(row):
        record = dict(row)
        record["forward_to_model"] = bool(record["forward_to_model"])
        record["prediction"] = loads(record["prediction"])
        return record


def dumps(prediction):
    return None if prediction is None else json.dumps(prediction)


def loads(column):
    return None if column is None else json.loads(column)
