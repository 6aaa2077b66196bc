import sqlite3

import pytest

from logger_service.store import get_store
from tests.support import assert_error


def test_health(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_the_database_is_writable(client):
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "predictor_circuit": "closed"},
    }


@pytest.mark.sqlite_only
def test_database_is_in_wal_mode_with_full_synchronous_writes(store):
    assert store.connect().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.connect().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.sqlite_only
def test_locked_database_makes_the_logger_unready_and_refuses_to_acknowledge(make_app):
    app = make_app(DB_BUSY_TIMEOUT=0.1)
    client = app.test_client()
    locker = sqlite3.connect(app.config["DB_PATH"], isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the lock for too long
    try:
        body = assert_error(client.get("/ready"), 503, "not writable")
        assert "locked" in body["errors"]["database"]
        assert_error(client.post("/process", json={"data": "a"}), 503, "Could not record")
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    assert client.get("/ready").status_code == 200
    with app.app_context():
        assert get_store().page(limit=10) == []  # the refused input was not stored
