"""Group commit: the records of many request threads committed together, one transaction
a turn.

A writer thread of each process takes every record that is queued (up to max_rows, and
without waiting for more: what queued up during one commit goes in the next) and commits
them in one transaction, one fsync for all. Each caller waits on a future for its own
row's id, so nothing is acknowledged before it is committed. A record that finds no
commit running and none waiting is committed on its caller's own thread, at once and
without the two thread wake-ups of a hand-off; those that come meanwhile queue for the
writer, which commits them together next.

If a group's transaction fails, none of it is committed. When the database itself is
unavailable (down, locked, full, read-only) every row of the group fails at once, rather
than each failing again in turn; otherwise (a row the database refuses, or a bug) each
row is tried again in a transaction of its own, so that only the poisoned row fails.
"""

import logging
import os
import queue
import threading
import weakref
from concurrent.futures import Future

log = logging.getLogger(__name__)

STOP = None  # queued by close(): the writer ends once what came before it is committed


class WriterUnavailable(Exception):
    """The writer cannot commit a record: it is closed, or took longer than its bound."""


class GroupWriter:
    """Commit the rows that many threads hand over, as many at a time as are waiting."""

    def __init__(self, insert_rows, is_unavailable, timeout, max_rows, on_commit):
        self.insert_rows = insert_rows  # rows -> their ids, in order, in one transaction
        self.is_unavailable = is_unavailable  # exception -> whether the database is down
        self.timeout = timeout  # the longest a caller waits for its row's commit
        self.max_rows = max_rows
        self.on_commit = on_commit  # called with the number of rows of each commit
        self._closed = False
        self._start()
        # As batching.py's batcher: a process forked from this one (a gunicorn worker)
        # gets a queue and a writer thread of its own at once; the parent's rows are the
        # parent's callers', whose threads the child does not have.
        writer = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: writer() and writer()._start())

    def _start(self):
        self._queue = queue.SimpleQueue()  # of (row, future), and STOP last
        self._accepting = threading.Lock()
        # Held around each transaction, the writer's or a caller's own: one at a time.
        self._committing = threading.Lock()
        self._taken = 0  # rows the writer took from the queue, waiting for their turn
        self._writing = 0  # callers in write(): more than one is a load worth grouping
        self._thread = None
        if not self._closed:
            self._thread = threading.Thread(target=self._run, name="group-writer",
                                            daemon=True)
            self._thread.start()

    def queued(self):
        """The rows handed to the writer and not yet in a transaction."""
        return self._queue.qsize() + self._taken

    def write(self, row):
        """Return row's id once a transaction with it is committed.

        Raise the store's error when it could not be committed, WriterUnavailable when
        the writer is closed or no answer came within timeout.
        """
        with self._accepting:
            if self._closed:
                raise WriterUnavailable("the store is closed")
            self._writing += 1
            # Under load (another caller here) rows go to the writer, to share its
            # transactions; and never past rows the writer took, which would wait.
            alone = (self._writing == 1 and self._queue.empty() and not self._taken
                     and self._committing.acquire(blocking=False))
            if not alone:
                future = Future()
                self._queue.put((row, future))
        try:
            return self._commit_alone(row) if alone else self._wait_for(future)
        finally:
            with self._accepting:
                self._writing -= 1

    def _commit_alone(self, row):
        """Commit one row on the caller's thread, which holds the commit turn."""
        try:
            [record_id] = self.insert_rows([row])
        finally:
            self._committing.release()
        self.on_commit(1)
        return record_id

    def _wait_for(self, future):
        try:
            return future.result(self.timeout)
        except TimeoutError:
            # A row still queued is withdrawn and never written. One being committed may
            # yet be stored: its caller is refused all the same (a 503 for a stored row,
            # never a 200 for a lost one).
            future.cancel()
            raise WriterUnavailable(f"no commit within {self.timeout:g} s") from None

    def close(self):
        """Take no more rows; return once those queued are committed (or timeout passed)."""
        with self._accepting:
            if self._closed:
                return
            self._closed = True
            self._queue.put(STOP)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout)

    def _run(self):
        while True:
            group = [self._queue.get()]
            self._taken = 1
            # After a caller's own commit, if one is running (STOP too: close() returns
            # once that commit has ended).
            with self._committing:
                self._taken = 0
                while len(group) < self.max_rows:
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = group[-1] is STOP
                # A caller that stopped waiting has withdrawn its row (write's timeout).
                group = [(row, future) for row, future in group[:-1 if stopping else None]
                         if future.set_running_or_notify_cancel()]
                try:
                    self._commit(group)
                except Exception as exc:  # a bug: fail this group, never the thread
                    log.exception("the writer failed on a group of %d records", len(group))
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
            if stopping:
                return

    def _commit(self, group):
        """Commit a group's rows in one transaction and resolve each caller's future."""
        if not group:
            return
        try:
            ids = self.insert_rows([row for row, _ in group])
        except Exception as exc:
            if len(group) > 1 and not self.is_unavailable(exc):
                log.warning("a group of %d records failed (%s): committing each alone",
                            len(group), exc)
                for item in group:
                    self._commit([item])
                return
            for _, future in group:
                future.set_exception(exc)
            return
        self.on_commit(len(group))  # before the answers, which a caller may act on at once
        for (_, future), record_id in zip(group, ids, strict=True):
            future.set_result(record_id)
