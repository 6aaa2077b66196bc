"""Durable record of every input, in one of two stores behind one interface (common.py):

- sqlite.py: an embedded SQLite file, the default; nothing to set up, one host, one replica.
- postgres.py: PostgreSQL (LOGGER_DATABASE_URL), for any number of logger replicas.

Both commit a record before /process answers, through the worker process's writer
thread (writer.py), which commits the records waiting together, in one transaction;
turn a database that cannot take it into StorageUnavailable (503); and page /logs
identically.
"""

from flask import current_app

from .common import StorageUnavailable, Store
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = ["PostgresStore", "SqliteStore", "StorageUnavailable", "Store", "get_store",
           "open_store"]


def open_store(config):
    """Return the store the settings name: PostgreSQL when DATABASE_URL is set, else SQLite."""
    if config["DATABASE_URL"]:
        return PostgresStore(
            config["DATABASE_URL"],
            pool_size=config["DB_POOL_SIZE"],
            timeout=config["DB_BUSY_TIMEOUT"],
            password_file=config["DATABASE_PASSWORD_FILE"],
        )
    return SqliteStore(
        config["DB_PATH"],
        synchronous=config["DB_SYNCHRONOUS"],
        busy_timeout=config["DB_BUSY_TIMEOUT"],
    )


def get_store():
    """Return the current app's store, which create_app opened."""
    return current_app.extensions["store"]
