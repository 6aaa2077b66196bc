"""A database made before a column was added is brought up to date on start, safely
when several workers start on it at once."""

import sqlite3
import threading

from logger_service import create_app
from logger_service.store import LogStore

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


def start_together(db_path, starters):
    """Start starters stores on db_path at once, as workers would; their failures."""
    barrier = threading.Barrier(starters)
    failures = []

    def start():
        store = LogStore(db_path)  # each worker has its own store and connections
        barrier.wait()
        try:
            store.create_schema()
            store.record("new", "text", False, "logged", None, 1.0, client_id="c")
        except Exception as exc:  # every failure is reported
            failures.append(repr(exc))

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

        assert start_together(db_path, starters=8) == []
        assert columns(db_path).count("client_id") == 1
        assert len(LogStore(db_path).page(limit=500)) == 1 + 8


def test_a_current_database_is_left_as_it_is(tmp_path):
    db_path = tmp_path / "new.sqlite3"
    LogStore(db_path).create_schema()
    before = columns(db_path)

    LogStore(db_path).create_schema()

    assert columns(db_path) == before
    assert "client_id" in before
