"""Load shedding: each worker takes on only as much work as it can finish in time.

A request's texts are admitted before they are queued for the model (batching.py) or
run at once (batching off), and counted until their predictions are back. When the
characters in flight would pass the bound, the request is refused at once with 503
and Retry-After, rather than waiting behind work that would take past the gateway's
read timeout: the gateway can send it to a replica with room, and the client can
try again.
"""

import logging
import threading
from contextlib import contextmanager

from servicekit.errors import ServiceError

from .metrics import SHED

log = logging.getLogger(__name__)

# Seconds a shed client is told to wait: about the time a full queue takes to drain.
RETRY_AFTER_SECONDS = 1


class Overloaded(ServiceError):
    """This worker has as much work in flight as it may: try again shortly."""

    status = 503
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}

    def __init__(self, cost, limit):
        super().__init__(
            f"Predictor is overloaded: no room for {cost} more characters in this worker "
            f"(at most {limit} in flight); try again in {RETRY_AFTER_SECONDS} s."
        )


class Admission:
    """Count the characters of the requests in flight in this worker, up to max_chars.

    The request thread never blocks here: it is admitted or refused at once. A request
    bigger than max_chars on its own is admitted when nothing else is in flight, so
    that no valid request is refused forever. A light request (at most 1 % of the bound)
    is always admitted: one client's heavy batches fill the bound, and must not make
    every other client's one-line request a 503. Light ones add at most the worker's
    threads times 1 % of the bound.
    """

    def __init__(self, max_chars):
        self.max_chars = max_chars
        self.light_chars = max_chars // 100
        self.in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def admit(self, texts):
        """Hold texts' characters while the block runs; raise Overloaded if no room."""
        cost = sum(len(text) for text in texts)
        with self._lock:
            in_flight = self.in_flight
            if in_flight and in_flight + cost > self.max_chars and cost > self.light_chars:
                admitted = False
            else:
                admitted = True
                self.in_flight += cost
        if not admitted:
            SHED.inc()
            log.warning("shed a request of %d characters: %d of %d in flight",
                        cost, in_flight, self.max_chars)
            raise Overloaded(cost, self.max_chars)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= cost
