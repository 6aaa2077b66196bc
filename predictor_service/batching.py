"""Adaptive micro-batching: concurrent requests of one worker share one model call.

A prediction costs mostly fixed overhead (about 1.6 ms for one text, 3 ms for 32), so
under load the worker's request threads hand their texts to one batching thread, which
runs the model once for everything that is waiting, as Triton's, MLServer's and
BentoML's adaptive batching do.

How long a batch waits for more adapts to the load. The model holds the GIL while it
runs, so the request threads can hardly parse new requests meanwhile: left alone,
batches stay at one or two requests. So when the previous batch held several requests
(the worker is under load), the next one waits up to max_wait for as many to join it;
when it held one (a lone client), the next one does not wait at all, and a lone
request pays nothing for batching.
"""

import logging
import os
import queue
import threading
import time
import weakref
from concurrent.futures import Future

log = logging.getLogger(__name__)


class MicroBatcher:
    """Coalesce predict(texts) calls from many threads into fewer predict_many calls."""

    def __init__(self, predict_many, max_texts=64, max_wait=0.002):
        self.predict_many = predict_many
        # The most texts in one batch, one predict_many call; a request with more is a
        # batch of its own (it is never split).
        self.max_texts = max_texts
        self.max_wait = max_wait
        self._start()
        # Threads do not survive a fork: a process forked from this one (each gunicorn
        # worker, with --preload) starts a batching thread and a queue of its own at
        # once, before it serves a request. Started lazily by the first request instead,
        # two concurrent first requests could each make a queue, and one request wait
        # on a queue that no thread reads.
        batcher = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: batcher() and batcher()._start())

    def _start(self):
        self._queue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="micro-batcher", daemon=True).start()

    def predict(self, texts, timeout=None):
        """Return predict_many(texts), computed together with other waiting requests."""
        future = Future()
        self._queue.put((texts, future))
        return future.result(timeout)

    def _run(self):
        carried = None  # a request that did not fit in the previous batch
        expected = 1  # requests in the previous batch: how many to wait for
        while True:
            batch = [carried or self._queue.get()]
            carried = None
            size = len(batch[0][0])
            deadline = time.monotonic() + self.max_wait
            while size < self.max_texts:
                # Wait while fewer requests have joined than last time, up to the
                # deadline; after that take only what is already waiting.
                remaining = deadline - time.monotonic() if len(batch) < expected else 0
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else (
                        self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if size + len(item[0]) > self.max_texts:
                    carried = item
                    break
                batch.append(item)
                size += len(item[0])
            expected = len(batch)
            self._process(batch)

    def _process(self, batch):
        texts = [text for item_texts, _ in batch for text in item_texts]
        try:
            results = self.predict_many(texts)
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # Isolate the failure: each request again on its own, so only the
            # request that breaks the model gets the error.
            log.warning("batch of %d requests failed (%s): retrying one by one", len(batch), exc)
            for item in batch:
                self._process([item])
            return
        offset = 0
        for item_texts, future in batch:
            future.set_result(results[offset:offset + len(item_texts)])
            offset += len(item_texts)
