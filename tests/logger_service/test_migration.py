"""The schema is brought up to date on start, safely when several workers or replicas
start on it at once: SQLite's by the columns it lacks, PostgreSQL's by versioned
migrations under an advisory lock."""

import functools
import logging
import sqlite3
import threading

import psycopg

from logger_service import create_app
from logger_service.store import PostgresStore, SqliteStore
from logger_service.store.postgres import migrations

# The records table as the first version made it, before client_id.
FIRST_SCHEMA = """
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL,
    forward_to_model INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    prediction TEXT,
    latency_ms REAL NOT NULL
);
INSERT INTO records (request_id, created_at, data, forward_to_model, outcome, latency_ms)
VALUES ('old-request', '2024-01-01T00:00:00.000+00:00', 'an old input', 0, 'logged', 1.5);
"""


def make_first_version_database(path):
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_SCHEMA)
    conn.close()


def columns(path):
    with sqlite3.connect(path) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(records)")]
    conn.close()
    return names


def test_an_old_database_gains_client_id_and_keeps_its_records(tmp_path):
    db_path = tmp_path / "old.sqlite3"
    make_first_version_database(db_path)

    client = create_app({"TESTING": True, "DB_PATH": str(db_path)}).test_client()
    client.post("/process", json={"data": "a new input"}, headers={"X-Client-Id": "alice"})
    records = client.get("/logs").get_json()["records"]

    assert [(r["data"], r["client_id"]) for r in records] == [
        ("a new input", "alice"), ("an old input", None),
    ]
    assert records[1]["request_id"] == "old-request"
    assert columns(db_path).count("client_id") == 1


def start_together(make_store, starters):
    """Start starters stores at once, as workers would; their failures."""
    barrier = threading.Barrier(starters)
    failures = []

    def start():
        store = make_store()  # each worker has its own store and connections
        barrier.wait()
        try:
            store.create_schema()
            store.record("new", "text", False, "logged", None, 1.0, client_id="c")
        except Exception as exc:  # every failure is reported
            failures.append(repr(exc))
        finally:
            store.close()

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_workers_starting_together_on_an_old_database_all_start(tmp_path):
    # Several rounds, each on a fresh old database: a race shows in some rounds only.
    for round_number in range(10):
        db_path = tmp_path / f"old-{round_number}.sqlite3"
        make_first_version_database(db_path)

        assert start_together(functools.partial(SqliteStore, db_path), starters=8) == []
        assert columns(db_path).count("client_id") == 1
        assert len(SqliteStore(db_path).page(limit=500)) == 1 + 8


def test_a_current_database_is_left_as_it_is(tmp_path):
    db_path = tmp_path / "new.sqlite3"
    SqliteStore(db_path).create_schema()
    before = columns(db_path)

    SqliteStore(db_path).create_schema()

    assert columns(db_path) == before
    assert "client_id" in before


def applied_migrations(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY version"
                            ).fetchall()


def test_replicas_starting_together_on_a_new_postgresql_database_migrate_it_once(
        postgres_server):
    # Several rounds, each on a fresh database: a race shows in some rounds only.
    for _ in range(5):
        url = postgres_server.database()
        try:
            assert start_together(functools.partial(PostgresStore, url, pool_size=1),
                                  starters=8) == []
            assert applied_migrations(url) == [(v, name) for v, name, _ in migrations()]
            store = PostgresStore(url)
            assert len(store.page(limit=500)) == 8
            store.close()
        finally:
            postgres_server.drop(url)


def test_a_postgresql_database_migrated_by_a_newer_logger_is_used_with_a_warning(
        postgres_server, caplog):
    url = postgres_server.database()
    PostgresStore(url).create_schema()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'later')")
    store = PostgresStore(url)
    try:
        with caplog.at_level(logging.WARNING, logger="logger_service.store.postgres"):
            store.create_schema()
        store.record("r", "text", False, "logged", None, 1.0)

        assert "newer than this logger's" in caplog.text
        assert [record["request_id"] for record in store.page(limit=10)] == ["r"]
        assert applied_migrations(url)[-1] == (9999, "later")  # nothing undone
    finally:
        store.close()
        postgres_server.drop(url)
