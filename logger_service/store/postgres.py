"""The shared store: PostgreSQL, for any number of logger replicas (LOGGER_DATABASE_URL).

psycopg 3 and its connection pool. Each worker process opens its own pool on first use
(a pool's sockets and threads must not cross gunicorn's fork), of up to pool_size
connections, one per worker thread; each is in autocommit. Records are committed by the
process's writer thread (writer.py), on one connection at a time from the pool: the rows
waiting, in one transaction (executemany, pipelined, each INSERT returning its id),
committed before record() returns. A shadow's INSERT is a transaction of its own. The
pool checks a connection before lending it: after the database restarts, a stale
connection is replaced, not used to fail a request.

The schema is versioned: migrations/NNNN_name.sql, applied in order and each noted in
schema_migrations, in one transaction under an advisory lock, so that replicas starting
together take turns and the later ones find the work done.
"""

import contextlib
import logging
import math
import os
import re
import threading
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .common import (
    LATEST_SERVED,
    LATEST_SHADOWS,
    Store,
    insert_record_query,
    newest_records_query,
    timestamp,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
# The key of the advisory lock the migrations run under: "logger" in ASCII, a constant no
# other user of the database is likely to take.
MIGRATION_LOCK_KEY = int.from_bytes(b"logger", "big")
# How long a replica waits for another's migration before it gives up (and is not ready).
MIGRATION_LOCK_TIMEOUT = "60s"
# Rows a /logs page fetches at a time from its server-side cursor.
PAGE_FETCH_ROWS = 64
# PostgreSQL tells of a full disk only as a write's error (SQLSTATE class 53, insufficient
# resources), and a probe's one-row update may still fit where a record does not: after
# such an error, /ready stays false this long before the probe decides again.
OUT_OF_ROOM_HOLD_SECONDS = 10.0
# SQLSTATE classes of a database that cannot take writes at all, whatever the row:
# connection exceptions, insufficient resources, operator intervention (a shutdown, a
# statement timeout), system errors (I/O).
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
INSERT_RECORD = f"{insert_record_query('%({})s')} RETURNING id"


def migrations():
    """The schema's migrations, in order, as (version, name, SQL)."""
    found = []
    for path in sorted(MIGRATIONS_DIR.iterdir()):
        match = MIGRATION_FILE.fullmatch(path.name)
        if match:
            found.append((int(match[1]), match[2], path.read_text()))
    return found


def schema_version(conn):
    """The newest migration applied to the database, 0 before the first."""
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] or 0


class PostgresStore(Store):
    errors = (psycopg.Error,)  # psycopg_pool's PoolTimeout is a psycopg.OperationalError

    def __init__(self, url, pool_size=16, timeout=5.0, password_file=None):
        # A malformed URL is a mistake in the settings: refused now, not at the first request.
        psycopg.conninfo.conninfo_to_dict(url)
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self._connect_kwargs = {"connect_timeout": max(1, math.ceil(timeout))}
        if password_file:
            self._connect_kwargs["password"] = Path(password_file).read_text().strip()
        self._pool = None
        self._pool_pid = None
        self._pool_lock = threading.Lock()
        self._schema_created = False
        self._closed = False
        self._out_of_room = None  # (when, the database's words) of the last class-53 error
        super().__init__(timeout)

    @staticmethod
    def is_unavailable(exc):
        return (isinstance(exc, psycopg.OperationalError)
                or (getattr(exc, "sqlstate", None) or "")[:2] in UNAVAILABLE_CLASSES)

    def _create_schema(self):
        with psycopg.connect(self.url, **self._connect_kwargs) as conn:  # commits on exit
            conn.execute("SELECT set_config('lock_timeout', %s, true)",
                         (MIGRATION_LOCK_TIMEOUT,))
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = schema_version(conn)
            known = migrations()
            for version, name, sql in known:
                if version > current:
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                 (version, name))
                    log.info("database schema: applied migration %04d_%s", version, name)
            if current > known[-1][0]:
                # A newer logger migrated it; its migrations only ever add, so this one runs.
                log.warning("database schema version %d is newer than this logger's %d",
                            current, known[-1][0])
        self._schema_created = True

    def _connection(self):
        """Lend a connection from this process's pool, opening the pool on first use."""
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            with self._pool_lock:
                if self._closed:
                    raise psycopg.OperationalError("the store is closed")
                if self._pool is None or self._pool_pid != os.getpid():
                    if not self._schema_created:
                        self._create_schema()
                    self._pool = ConnectionPool(
                        self.url, min_size=1, max_size=self.pool_size, open=True,
                        kwargs={**self._connect_kwargs, "autocommit": True},
                        configure=self._configure, check=ConnectionPool.check_connection,
                        timeout=self.timeout, name="logger",
                    )
                    self._pool_pid = os.getpid()
                pool = self._pool
        return pool.connection()

    def _configure(self, conn):
        # A statement that hangs (a lock held elsewhere, a stalled disk) fails in time for
        # the logger to answer its own 503 before the gateway gives up on it.
        conn.execute("SELECT set_config('statement_timeout', %s, false)",
                     (f"{round(self.timeout * 1000)}ms",))

    def _insert_records(self, rows):
        """Insert rows in one transaction and return their ids, in order, once committed."""
        try:
            with (self._connection() as conn, conn.transaction(),
                  conn.cursor() as cursor):
                cursor.executemany(
                    INSERT_RECORD,
                    [{**row, "prediction": jsonb(row["prediction"])} for row in rows],
                    returning=True,
                )
                # One result per row, in the order of the rows.
                ids = [result.fetchone()[0] for result in cursor.results()]
            return ids  # the transaction's block has committed
        except psycopg.Error as exc:
            if (exc.sqlstate or "").startswith("53"):
                self._out_of_room = (time.monotonic(), str(exc))
            raise

    def _insert_shadow(self, row):
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO shadows (request_id, created_at, outcome, prediction, latency_ms)"
                " VALUES (%(request_id)s, %(created_at)s, %(outcome)s, %(prediction)s,"
                " %(latency_ms)s)",
                {**row, "prediction": jsonb(row["prediction"])},
            )

    def _latest(self, limit):
        with self._connection() as conn:
            served = conn.execute(LATEST_SERVED.format(p="%s"), (limit,)).fetchall()
            shadows = conn.execute(LATEST_SHADOWS.format(p="%s"), (limit,)).fetchall()
        return [tuple(row) for row in served], [tuple(row) for row in shadows]

    @contextlib.contextmanager
    def _newest_records(self, limit, before_id):
        query, params = newest_records_query(limit, before_id, "%s")
        # A server-side cursor, in a transaction of its own: the rows come PAGE_FETCH_ROWS
        # at a time, and a page that stops early closes it and reads no more.
        with (self._connection() as conn, conn.transaction(),
              conn.cursor(name="logs_page", row_factory=dict_row) as cursor):
            cursor.itersize = PAGE_FETCH_ROWS
            cursor.execute(query, params)
            yield ({**row, "created_at": timestamp(row["created_at"])} for row in cursor)

    def _probe_write(self, min_free_bytes):
        # min_free_bytes is for a local file: the database's disk is not the logger's, and
        # PostgreSQL itself refuses a write it has no room for.
        if self._out_of_room:
            refused_at, reason = self._out_of_room
            if time.monotonic() - refused_at < OUT_OF_ROOM_HOLD_SECONDS:
                raise psycopg.OperationalError(reason)
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, now())"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
            )

    def close(self):
        super().close()  # the writer first: what is queued is committed on the pool
        with self._pool_lock:
            self._closed = True
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None


def jsonb(prediction):
    return None if prediction is None else Jsonb(prediction)
