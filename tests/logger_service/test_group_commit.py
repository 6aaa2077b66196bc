"""Group commit (store/writer.py): concurrent records share transactions, each caller
gets its own row's id once it is committed, and a failure reaches only the callers whose
rows it kept out."""

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from prometheus_client import REGISTRY

from logger_service.store import SqliteStore, StorageUnavailable
from tests.support import ROOT, in_forked_child, wait_until


def commits(rows_at_most=None):
    """Commits so far (of at most rows_at_most rows each, when given), in this process."""
    if rows_at_most is None:
        return REGISTRY.get_sample_value("logger_db_commit_rows_count") or 0.0
    return REGISTRY.get_sample_value("logger_db_commit_rows_bucket",
                                     {"le": f"{float(rows_at_most)}"}) or 0.0


def record(store, request_id, data="some input"):
    return store.record(request_id=request_id, data=data, forward_to_model=False,
                        outcome="logged", prediction=None, latency_ms=1.0)


def stored(store):
    """The stored records' request ids, by id."""
    return {row["id"]: row["request_id"] for row in store.page(limit=500)}


class HeldFirstCommit:
    """Wraps the writer's transaction: the first one (a lone record's, on its caller's
    thread) waits until until() is true, so that rows queue up behind it; then, once it
    has committed, then() runs. Notes each transaction's number of rows."""

    def __init__(self, store, monkeypatch, until, then=None):
        self.insert_rows = store._writer.insert_rows
        self.until, self.then = until, then
        self.groups = []
        self.entered = threading.Event()
        monkeypatch.setattr(store._writer, "insert_rows", self)

    def __call__(self, rows):
        self.groups.append(len(rows))
        if len(self.groups) > 1:
            return self.insert_rows(rows)
        self.entered.set()
        wait_until(self.until, what="the rows held back")
        ids = self.insert_rows(rows)
        if self.then:
            self.then()
        return ids


def record_behind_a_held_commit(store, monkeypatch, datas, then=None):
    """Record datas from as many threads while a first row ("first") is committed, which
    waits until all of them are queued; they then make one group. Return each
    one's id or exception, and the rows of each transaction tried."""
    held = HeldFirstCommit(store, monkeypatch, lambda: store._writer.queued() == len(datas),
                           then)
    with ThreadPoolExecutor(max_workers=len(datas) + 1) as pool:
        first = pool.submit(record, store, "first")
        assert held.entered.wait(30)
        futures = [pool.submit(record, store, f"row-{n}", data)
                   for n, data in enumerate(datas)]
        first.result()
        return [future.exception() or future.result() for future in futures], held.groups


@contextlib.contextmanager
def writes_blocked(store):
    """Another writer holds the database's write lock: the SQLite writers' lock file, or
    PostgreSQL's lock on the records table."""
    if isinstance(store, SqliteStore):
        lock_fd = os.open(store.lock_path, os.O_RDONLY | os.O_CREAT)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock_fd)
        return
    with psycopg.connect(store.url) as conn, conn.transaction():
        conn.execute("LOCK TABLE records IN ACCESS EXCLUSIVE MODE")
        yield


def test_concurrent_records_share_commits_and_each_gets_its_own_id(store, monkeypatch):
    commits_before, small_before = commits(), commits(16)
    datas = [f"input {n}" for n in range(31)]

    answers, groups = record_behind_a_held_commit(store, monkeypatch, datas)

    assert groups == [1, 31]  # the 31 that queued during the first commit, in one
    assert all(isinstance(answer, int) for answer in answers), answers
    assert len(set(answers)) == 31
    rows = stored(store)
    assert sorted(rows.values()) == sorted(["first", *(f"row-{n}" for n in range(31))])
    assert all(rows[answer] == f"row-{n}" for n, answer in enumerate(answers))
    # The metric saw it: two commits, one of them of more than 16 rows.
    assert commits() - commits_before == 2
    assert commits(16) - small_before == 1


def test_many_threads_at_once_each_get_a_distinct_id_for_a_row_stored_once(store):
    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(lambda n: record(store, f"thread-{n}"), range(32)))

    assert len(set(ids)) == 32
    assert sorted(stored(store).items()) == sorted(
        (record_id, f"thread-{n}") for n, record_id in enumerate(ids))


def test_a_lone_record_is_committed_alone_without_waiting_for_company(store):
    ones_before, commits_before = commits(1), commits()

    ids = [record(store, f"alone-{n}") for n in range(3)]

    assert stored(store) == {ids[0]: "alone-0", ids[1]: "alone-1", ids[2]: "alone-2"}
    assert commits(1) - ones_before == 3  # three commits of one row each
    assert commits() - commits_before == 3


def test_a_lone_record_is_committed_on_its_callers_own_thread(store, monkeypatch):
    threads, insert_rows = [], store._writer.insert_rows

    def noting_the_thread(rows):
        threads.append(threading.current_thread())
        return insert_rows(rows)

    monkeypatch.setattr(store._writer, "insert_rows", noting_the_thread)
    record_id = record(store, "alone")

    assert threads == [threading.current_thread()]  # not handed to the writer thread
    assert stored(store) == {record_id: "alone"}


def test_close_waits_for_a_record_committed_on_its_callers_thread(store, monkeypatch):
    events, release = [], threading.Event()
    held = HeldFirstCommit(store, monkeypatch, release.is_set,
                           then=lambda: events.append("committed"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        alone = pool.submit(record, store, "alone")
        assert held.entered.wait(30)
        closed = pool.submit(lambda: (store._writer.close(), events.append("closed")))
        wait_until(lambda: store._writer.queued() == 1, what="the writer to take the stop")
        release.set()  # only now can the caller's own commit end
        closed.result(30)
        record_id = alone.result(30)

    assert events == ["committed", "closed"]
    assert stored(store) == {record_id: "alone"}


def test_a_group_the_database_cannot_take_fails_every_caller_at_once(make_app, monkeypatch):
    store = make_app(DB_BUSY_TIMEOUT=1.0).extensions["store"]
    blocked = contextlib.ExitStack()
    # Once the first row is committed, another writer takes the lock and keeps it.
    with blocked:
        answers, groups = record_behind_a_held_commit(
            store, monkeypatch, ["a", "b", "c", "d"],
            then=lambda: blocked.enter_context(writes_blocked(store)))

    assert all(isinstance(answer, StorageUnavailable) for answer in answers), answers
    assert groups == [1, 4]  # tried once as a group, not again row by row
    assert list(stored(store).values()) == ["first"]


def test_a_row_the_database_refuses_fails_only_its_own_caller(store, monkeypatch):
    # A record without data breaks the table's NOT NULL: a constraint, not an outage.
    answers, groups = record_behind_a_held_commit(store, monkeypatch, ["a", None, "c", "d"])

    assert isinstance(answers[1], StorageUnavailable)
    assert "NOT NULL" in answers[1].reason.upper().replace("-", " ")
    assert groups == [1, 4, 1, 1, 1, 1]  # the group failed, then each row alone
    rows = stored(store)
    assert sorted(rows.values()) == ["first", "row-0", "row-2", "row-3"]
    assert [rows[answers[n]] for n in (0, 2, 3)] == ["row-0", "row-2", "row-3"]


def test_a_bug_in_one_transaction_does_not_stop_the_writer(store, monkeypatch):
    def broken(rows):
        monkeypatch.undo()
        raise RuntimeError("a bug")

    monkeypatch.setattr(store._writer, "insert_rows", broken)

    with pytest.raises(RuntimeError):
        record(store, "hit by the bug")
    record_id = record(store, "after it")

    assert stored(store) == {record_id: "after it"}


def test_a_record_not_committed_in_time_is_refused_and_withdrawn(make_app, monkeypatch):
    store = make_app(DB_BUSY_TIMEOUT=0.2).extensions["store"]
    refused = threading.Event()
    held = HeldFirstCommit(store, monkeypatch, refused.is_set)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(record, store, "first")
        assert held.entered.wait(30)
        with pytest.raises(StorageUnavailable) as late:  # its wait is bounded
            record(store, "late")
        refused.set()
        # "first" was being committed: stored, its caller answered or refused in time.
        assert first.exception(30) is None or isinstance(first.exception(), StorageUnavailable)

    assert "no commit within" in late.value.reason
    record_id = record(store, "next")
    assert "late" not in stored(store).values()  # withdrawn before the writer took it
    assert stored(store)[record_id] == "next"


def test_a_forked_process_gets_a_writer_of_its_own(store):
    before = record(store, "parent, before")
    # The child's inherited writer has no thread until it starts one.
    child = int(in_forked_child(lambda: record(store, "child")) or 0)
    after = record(store, "parent, after")

    assert stored(store) == {before: "parent, before", child: "child",
                             after: "parent, after"}


def test_close_commits_what_is_queued_then_refuses(make_app, monkeypatch):
    store, reader = (make_app().extensions["store"] for _ in range(2))
    closing = threading.Event()
    # The four rows and close()'s stop, queued behind the first commit.
    held = HeldFirstCommit(store, monkeypatch,
                           lambda: closing.is_set() and store._writer.queued() == 5)
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(record, store, "first")
        assert held.entered.wait(30)
        queued = [pool.submit(record, store, f"queued-{n}") for n in range(4)]
        wait_until(lambda: store._writer.queued() == 4, what="four rows queued")
        closed = pool.submit(store.close)
        closing.set()
        closed.result(30)
        # None left hanging: each committed (as the writer had them before it stopped).
        ids = [future.result(30) for future in [first, *queued]]

    assert held.groups == [1, 4]
    assert sorted(stored(reader)) == sorted(ids)
    with pytest.raises(StorageUnavailable) as refused:
        record(store, "after close")
    assert refused.value.reason == "the store is closed"


RECORDING_PROCESS = """
import sys, threading, time
from pathlib import Path
from logger_service.store import SqliteStore

path, name, go = sys.argv[1:]
store = SqliteStore(path)
store.create_schema()
while not Path(go).exists():
    time.sleep(0.001)
ids = []
def run(n):
    for k in range(25):
        ids.append(store.record(f"{name}-{n}-{k}", "x", False, "logged", None, 1.0))
threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
store.close()
print(" ".join(map(str, ids)))
"""


@pytest.mark.sqlite_only  # the writers of two processes take turns on the lock file
def test_two_processes_recording_at_once_both_succeed(store, tmp_path):
    go = tmp_path / "go"
    processes = [subprocess.Popen(
        [sys.executable, "-c", RECORDING_PROCESS, store.path, name, str(go)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("one", "two")]
    go.touch()
    try:
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            process.kill()

    assert [process.returncode for process in processes] == [0, 0], results
    ids = [int(record_id) for out, _ in results for record_id in out.split()]
    assert len(ids) == len(set(ids)) == 400
    rows = stored(store)
    assert sorted(rows) == sorted(ids)
    assert {request_id.split("-")[0] for request_id in rows.values()} == {"one", "two"}
