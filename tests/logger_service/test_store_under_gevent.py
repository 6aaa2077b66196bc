"""The SQLite store under gevent's monkey-patching, as the logger's gevent worker runs it:
a worker's greenlets share their OS thread's connection, and every record they hand over
is committed, each with an id of its own."""

import json
import subprocess
import sys

from tests.support import ROOT

GREENLETS = 300

# Monkey-patches as gunicorn's gevent worker does, before the store is imported, then
# records from GREENLETS greenlets at once, each of which ends once answered (as a
# connection's greenlet does). Prints the ids, the rows stored, and the files the
# process had open before and after.
UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()

import json, os, sys
import gevent
from logger_service.store import SqliteStore

def open_files():
    return len(os.listdir("/proc/self/fd"))

store = SqliteStore(sys.argv[1])
store.create_schema()
before = open_files()

def record(n):
    return store.record(request_id=f"greenlet-{n}", data=f"input {n}", forward_to_model=False,
                        outcome="logged", prediction=None, latency_ms=1.0)

greenlets = [gevent.spawn(record, n) for n in range(int(sys.argv[2]))]
gevent.joinall(greenlets, raise_error=True)
stored = {row["id"]: row["request_id"] for row in store.page(limit=500)}
print(json.dumps({"ids": [g.value for g in greenlets], "stored": stored,
                  "open_before": before, "open_after": open_files()}))
"""


def test_greenlets_share_a_connection_and_lose_no_record(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", UNDER_GEVENT, str(tmp_path / "logger.sqlite3"), str(GREENLETS)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    ids = result["ids"]
    assert len(set(ids)) == GREENLETS
    assert {int(record_id): request_id for record_id, request_id in result["stored"].items()} \
        == {record_id: f"greenlet-{n}" for n, record_id in enumerate(ids)}
    # A connection (and a lock file) per greenlet would be hundreds more open files.
    assert result["open_after"] - result["open_before"] < 10, result
