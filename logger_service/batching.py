"""Forwards that wait behind others go to the predictor pool together, as one batch.

Forwards of one key (the client and the routing headers, which the gateway's canary
splits on: a batch is routed as each of its texts would be) go at once while fewer
than max_in_flight calls of that key are out: a lone request, a light load, or many
clients with a request each go as they always did, one text under its own request id.
Past that, a forward waits. As each call comes back, the request that made it hands
the oldest waiting forwards of its key to the first of them, which sends them as one
/predict of "inputs" and hands on in turn. So under load one call, one pass through
the gateway and one model call serve many requests, without a timer: a batch is what
queued while the pool was busy. The limit is per key, so one busy client's forwards
never wait for another's.

Leader and followers: no thread of the batcher's own, so the same code serves gevent's
greenlets and gthread's threads, and a request waits only for the call that carries
its text.
"""

import threading
import time

from .errors import PredictorUnavailable


class Forward:
    """One request's text to classify, what its forward passes on, and then its answer."""

    __slots__ = ("text", "request_id", "client_id", "trace", "routing", "deadline", "key",
                 "answer", "error", "batch", "turn")

    def __init__(self, text, request_id, deadline, client_id=None, trace=None, routing=None):
        self.text, self.request_id, self.trace = text, request_id, trace
        # When its answer is due (time.monotonic()), its wait for a turn included.
        self.deadline = deadline
        self.client_id, self.routing = client_id, routing or {}
        # Forwards of one key may share a call: the gateway sees one client, one pin.
        self.key = (client_id, tuple(sorted(self.routing.items())))
        # turn: made only for a forward that waits, set when it leads a batch or its
        # answer is in; batch: the forwards it sends, once it may send them.
        self.answer = self.error = self.batch = self.turn = None

    def result(self):
        if self.error is not None:
            raise self.error
        return self.answer


class ForwardBatcher:
    """Send forwards at once up to max_in_flight calls per key, those that wait in batches.

    send(forwards) makes one call for a list of Forwards of one key, to end by the first
    one's deadline (the oldest's, the earliest), and returns their answers in order, or
    raises a ForwardError for them all. A batch holds at most max_texts texts and
    max_chars characters (at least one text). A forward still waiting for its turn, or
    for its batch's answer, at its deadline fails with PredictorUnavailable.
    """

    def __init__(self, send, max_in_flight, max_texts, max_chars):
        self.send = send
        self.max_in_flight, self.max_texts, self.max_chars = max_in_flight, max_texts, max_chars
        self._lock = threading.Lock()
        self._in_flight = {}  # key -> its calls out, while it has any
        self._waiting = {}  # key -> its waiting Forwards, oldest first, while it has any

    @property
    def waiting(self):
        """How many forwards wait for a turn."""
        with self._lock:
            return sum(map(len, self._waiting.values()))

    def forward(self, forward):
        """Return the answer for one Forward, sent alone or in a batch."""
        key = forward.key
        with self._lock:
            if self._in_flight.get(key, 0) < self.max_in_flight:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                forward.batch = [forward]
            else:
                forward.turn = threading.Event()
                self._waiting.setdefault(key, []).append(forward)
        if forward.batch is None and not forward.turn.wait(self._left(forward)):
            if self._withdraw(forward):
                raise PredictorUnavailable("no forward could go out in time: too many waited")
            # Handed on just now: its batch's call ends by the same deadline, or earlier.
            # (Bounded all the same: a leader that never sends must not hold it for ever.)
            if not forward.turn.wait(self._left(forward) + 1):
                raise PredictorUnavailable("its batch was never sent")
        if forward.batch is not None:
            try:
                self._send(forward.batch)
            finally:
                self._hand_on(key)
        return forward.result()

    @staticmethod
    def _left(forward):
        return max(forward.deadline - time.monotonic(), 0)

    def _send(self, batch):
        """Send one batch; every forward in it gets the answer or the error."""
        try:
            for forward, answer in zip(batch, self.send(batch), strict=True):
                forward.answer = answer
        except BaseException as exc:  # raised by each, in its own request: none waits for ever
            for forward in batch:
                forward.error = exc
        finally:
            for follower in batch[1:]:
                follower.turn.set()

    def _hand_on(self, key):
        """Give this call's place to the oldest waiting forwards of its key, or free it."""
        with self._lock:
            batch = self._take(key)
            if not batch:
                self._in_flight[key] -= 1
                if not self._in_flight[key]:
                    del self._in_flight[key]
                return
        leader = batch[0]
        leader.batch = batch
        leader.turn.set()

    def _take(self, key):
        """Remove and return the oldest waiting forwards of key, within the limits."""
        waiting = self._waiting.get(key)
        if not waiting:
            return []
        count, chars = 0, 0
        while count < len(waiting) and count < self.max_texts and (
                count == 0 or chars + len(waiting[count].text) <= self.max_chars):
            chars += len(waiting[count].text)
            count += 1
        batch = waiting[:count]
        del waiting[:count]
        if not waiting:
            del self._waiting[key]
        return batch

    def _withdraw(self, forward):
        """Take a forward out of the queue; False when it was handed on meanwhile."""
        with self._lock:
            waiting = self._waiting.get(forward.key, [])
            if forward not in waiting:
                return False
            waiting.remove(forward)
            if not waiting:
                del self._waiting[forward.key]
            return True
