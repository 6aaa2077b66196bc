"""Shadow traffic: the candidate's answer to a prediction that production answered,
recorded beside production's under the same request id.

The gateway mirrors a share of production's predictions (Nginx's `mirror`,
docs/models.md) to POST /shadow here. The logger answers at once (202): Nginx holds a
client's connection until its mirror subrequests have ended, so the candidate's latency
must never be inside one. A thread of the worker then asks the candidate for its answer
(X-Model-Version: candidate, through the same gateway as the forwards) and records it
(store.record_shadow). The queue is bounded: past it a shadow is dropped and counted.
A shadow is best effort: the client's answer never waits for it, and losing one loses
no input (the input itself was recorded by /process, or never came through it).
"""

import json
import logging
import os
import queue
import threading
import time
import weakref

import urllib3
from flask import current_app

from servicekit.headers import MODEL_VERSION_HEADER, REQUEST_ID_HEADER

from .metrics import SHADOWS

log = logging.getLogger(__name__)


def get_shadow_recorder():
    """Return the current app's ShadowRecorder, which create_app made."""
    return current_app.extensions["shadow"]


class ShadowRecorder:
    """Ask the candidate for its answer to queued texts, off the request path."""

    def __init__(self, url, store, connect_timeout=1.0, read_timeout=3.0, max_queued=256,
                 threads=2):
        self.url, self.store = url, store
        self.max_queued, self.threads = max_queued, threads
        self.pool = urllib3.PoolManager(
            num_pools=1, maxsize=threads, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )
        self._start()
        # As batching.py's batcher: a forked worker gets threads and a queue of its own.
        recorder = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: recorder() and recorder()._start())

    def _start(self):
        self._queue = queue.Queue(self.max_queued)
        for number in range(self.threads):
            threading.Thread(target=self._run, name=f"shadow-{number}", daemon=True).start()

    def submit(self, request_id, text):
        """Queue a text for the candidate; return False (and count it) when full."""
        try:
            self._queue.put_nowait((request_id, text))
        except queue.Full:
            SHADOWS.labels("dropped").inc()
            log.warning("request %s: shadow dropped, %d queued", request_id, self.max_queued)
            return False
        return True

    def _run(self):
        while True:
            request_id, text = self._queue.get()
            try:
                self.shadow(request_id, text)
            except Exception:  # a shadow must never take its thread down
                log.exception("request %s: shadow failed", request_id)

    def shadow(self, request_id, text):
        """Ask the candidate, then record its answer (or why there is none)."""
        started = time.perf_counter()
        prediction = None
        try:
            response = self.pool.request(
                "POST", self.url, body=json.dumps({"input": text}).encode(),
                headers={"Content-Type": "application/json", REQUEST_ID_HEADER: request_id,
                         MODEL_VERSION_HEADER: "candidate"},
            )
        except urllib3.exceptions.HTTPError as exc:
            outcome = "unavailable"
            log.info("request %s: no shadow answer (%s)", request_id, type(exc).__name__)
        else:
            if response.status == 200:
                outcome, prediction = "predicted", json.loads(response.data)
            else:
                # 404: no replica serves a candidate; 5xx: it failed or is full.
                outcome = "no_candidate" if response.status == 404 else "error"
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self.store.record_shadow(request_id, outcome, prediction, latency_ms)
        SHADOWS.labels(outcome).inc()
