"""Adaptive micro-batching: concurrent requests of one worker share one model call.

A prediction costs mostly fixed overhead (compiled.py: about 0.17 ms of CPU for one
text, 0.5 ms for 8; scikit-learn's pipeline: 1.6 ms for one, 3 ms for 32), so under
load the worker's request threads hand their texts to one batching thread, which runs
the model once for everything that is waiting, as Triton's, MLServer's and BentoML's
adaptive batching do.

How long a batch waits for more adapts to the load. The model holds the GIL while it
runs, so the request threads can hardly parse new requests meanwhile: left alone,
batches stay at one or two requests. So when the previous batch held several requests
(the worker is under load), the next one waits up to max_wait for as many to join it;
when it held one (a lone client), the next one does not wait at all. And a request
that comes while the worker is not under load, the model idle and nothing waiting, is
computed on its own thread: no hand-off to the batching thread and back, which cost two
thread wake-ups per request (12 % of a worker's time under load, measured with py-spy).

The lightest waiting requests go first (fewest characters, then first come), and a
model call takes at most max_chars characters: a heavier request is computed in parts,
each back in line after the last. One client's heavy batches, however many are queued,
then delay another client's one-line request by about one part (50,000 characters,
some 55 ms of CPU), not by the whole queue. A heavy request waits only while lighter
ones keep arriving, and those take one short call together.

Under gunicorn's gevent worker (the predictor's default) the request "threads" and the
batching thread are greenlets of one OS thread, which take turns: a request computed at
once on its own greenlet would never let another request of the worker join it. So a
request that finds the model free leads a batch of what the worker has read of its
connections by the time its loop has nothing else to run (up to max_wait), on its own
greenlet; the batching greenlet gathers the same way. No thread is ever woken to hand a
text over or an answer back.
"""

import itertools
import logging
import os
import queue
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field

from .metrics import QUEUE_DEPTH

try:
    import gevent
    from gevent import monkey
except ImportError:  # the predictor runs on threads only
    gevent = monkey = None

log = logging.getLogger(__name__)


def on_greenlets():
    """Whether threads are greenlets here: gevent has patched threading, as gunicorn's gevent
    worker does as it starts, before it loads the app."""
    return monkey is not None and monkey.is_module_patched("threading")


@dataclass(order=True)
class Waiting:
    """A request's texts not computed yet, in the order the batcher takes them."""

    cost: int  # characters left
    arrival: int
    texts: list = field(compare=False)
    future: Future = field(compare=False)
    done: list = field(compare=False, default_factory=list)  # results of its parts so far


class MicroBatcher:
    """Coalesce predict(texts) calls from many threads into fewer predict_many calls."""

    def __init__(self, predict_many, max_texts=64, max_wait=0.002, max_chars=50_000):
        self.predict_many = predict_many
        # The most texts in one batch, one predict_many call; a request with more is a
        # batch of its own (it is never split by count).
        self.max_texts = max_texts
        self.max_wait = max_wait
        # The most characters in one call (at least one text): a request with more is
        # computed in parts, so that lighter requests can go in between.
        self.max_chars = max_chars
        self._start()
        # Threads do not survive a fork: a process forked from this one (each gunicorn
        # worker, with --preload) starts a batching thread and a queue of its own at
        # once, before it serves a request. Started lazily by the first request instead,
        # two concurrent first requests could each make a queue, and one request wait
        # on a queue that no thread reads.
        batcher = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: batcher() and batcher()._start())

    def _start(self):
        self._queue = queue.PriorityQueue()  # of Waiting, lightest first
        self._handed = set()  # the futures of requests handed to the batching thread
        # Held by whichever thread runs the model: the batching thread, or a request's
        # own (predict's shortcut).
        self._model_lock = threading.Lock()
        self._expected = 1  # requests in the last batch: how many the next one waits for
        self._arrivals = itertools.count()
        self._greenlets = on_greenlets()
        threading.Thread(target=self._run, name="micro-batcher", daemon=True).start()

    def predict(self, texts, timeout=None):
        """Return predict_many(texts), computed together with other waiting requests, or
        on this thread when the worker is idle: on threads at once, on greenlets with
        the requests the worker reads meanwhile."""
        cost = sum(len(text) for text in texts)
        light = cost <= self.max_chars and len(texts) <= self.max_texts
        if (light and (self._greenlets or self._expected == 1) and self._queue.empty()
                and self._model_lock.acquire(blocking=False)):
            try:
                if not self._greenlets:
                    return self.predict_many(list(texts))
                return self._lead(Waiting(cost, next(self._arrivals), list(texts), Future()))
            finally:
                self._model_lock.release()
        future = Future()
        self._handed.add(future)
        try:
            self._put(Waiting(cost, next(self._arrivals), list(texts), future))
            return future.result(timeout)
        finally:
            self._handed.discard(future)

    @property
    def handed(self):
        """How many requests are with the batching thread, waiting or being computed."""
        return len(self._handed)

    def _put(self, item):
        self._queue.put(item)
        QUEUE_DEPTH.inc()

    def _get(self, timeout=None):
        """Take the lightest waiting request; raise queue.Empty after timeout (0: now)."""
        item = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        QUEUE_DEPTH.dec()
        return item

    def _run(self):
        while True:
            # Counted as waiting (QUEUE_DEPTH) until the model is free: a request's own
            # thread may be running it. Then whatever queued meanwhile joins, the lightest
            # waiting request still first.
            first = self._queue.get()
            if self._greenlets:
                # Back in line while the worker reads what has come: a request that leads
                # a batch on its own greenlet meanwhile takes it along.
                self._queue.put(first)
                self._gather()
                with self._model_lock:
                    if not self._queue.empty():
                        self._run_batch(self._get())
                continue
            with self._model_lock:
                QUEUE_DEPTH.dec()
                if not self._queue.empty():
                    self._put(first)
                    first = self._get()
                self._run_batch(first)

    def _lead(self, own):
        """On greenlets, the model free and nothing waiting: compute own, a request of
        this greenlet's, with the requests the worker reads meanwhile; return its results."""
        self._gather()
        self._run_batch(own)
        return own.future.result()

    def _gather(self):
        """On greenlets: let the worker read every request that has come before a batch
        is taken, that is until its loop is idle (nothing left to run but waits), for at
        most max_wait, so that a loop that is never idle does not hold the batch back."""
        with gevent.Timeout(self.max_wait, False):  # False: silent
            gevent.idle()

    def _run_batch(self, first):
        """Compute first with the requests waiting behind it, up to the limits."""
        if first.cost > self.max_chars:
            self._process_part(first)
            return
        batch, size, chars = [first], len(first.texts), first.cost
        deadline = time.monotonic() + self.max_wait
        while size < self.max_texts:
            # Wait while fewer requests have joined than last time, up to the deadline;
            # after that take only what is already waiting.
            # On greenlets, what the worker has read is waiting already (_gather).
            waits = not self._greenlets and len(batch) < self._expected
            remaining = deadline - time.monotonic() if waits else 0
            try:
                item = self._get(timeout=max(remaining, 0))
            except queue.Empty:
                break
            if size + len(item.texts) > self.max_texts or chars + item.cost > self.max_chars:
                self._put(item)  # back in line, for a later batch
                break
            batch.append(item)
            size += len(item.texts)
            chars += item.cost
        self._expected = len(batch)
        self._process(batch)

    def _process_part(self, item):
        """Compute the first max_chars characters of a heavy request (at least one text),
        and put the rest back in line."""
        count, chars = 0, 0
        while count < len(item.texts) and (count == 0 or chars + len(item.texts[count])
                                           <= self.max_chars):
            chars += len(item.texts[count])
            count += 1
        part = Waiting(chars, item.arrival, item.texts[:count], Future())
        self._process([part])
        if part.future.exception() is not None:
            item.future.set_exception(part.future.exception())
            return
        item.done += part.future.result()
        item.texts, item.cost = item.texts[count:], item.cost - chars
        if item.texts:
            self._put(item)
        else:
            item.future.set_result(item.done)

    def _process(self, batch):
        texts = [text for item in batch for text in item.texts]
        try:
            results = self.predict_many(texts)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # Isolate the failure: each request again on its own, so only the
            # request that breaks the model gets the error.
            log.warning("batch of %d requests failed (%s): retrying one by one", len(batch), exc)
            for item in batch:
                self._process([item])
            return
        offset = 0
        for item in batch:
            item.future.set_result(item.done + results[offset:offset + len(item.texts)])
            offset += len(item.texts)
