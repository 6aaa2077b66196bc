"""The logger's HTTP client for the predictor pool (through the gateway by default)."""

import json
import logging
import threading
import time

import pybreaker
import urllib3
from flask import current_app

from servicekit import tracecontext
from servicekit.headers import (
    BATCH_REQUEST_IDS_HEADER,
    CLIENT_ID_HEADER,
    MODEL_VERSION_HEADER,
    REQUEST_ID_HEADER,
)
from servicekit.metrics import child

from .batching import Forward, ForwardBatcher
from .errors import ForwardError, PredictorBadResponse, PredictorUnavailable, UnknownModelVersion
from .metrics import CIRCUIT_STATE, CIRCUIT_TRANSITIONS, FORWARD_BATCH, FORWARDS

log = logging.getLogger(__name__)


def get_predictor_client():
    """Return the current app's PredictorClient, which create_app made."""
    return current_app.extensions["predictor"]


class OpenedAt(pybreaker.CircuitBreakerListener):
    """When the circuit last opened, on the monotonic clock."""

    at = 0.0

    def state_change(self, breaker, old, new):
        if new.name == pybreaker.STATE_OPEN:
            self.at = time.monotonic()


class CircuitMetrics(pybreaker.CircuitBreakerListener):
    """The breaker's state and its changes, as metrics: each worker counts once in the
    gauge of its state."""

    def __init__(self, state):
        CIRCUIT_STATE.labels(state).inc()

    def state_change(self, breaker, old, new):
        CIRCUIT_STATE.labels(old.name).dec()
        CIRCUIT_STATE.labels(new.name).inc()
        CIRCUIT_TRANSITIONS.labels(old.name, new.name).inc()


class PredictorClient:
    """One keep-alive connection pool per worker, explicit timeouts, a breaker.

    Retrying on another replica is the gateway's job (proxy_next_upstream), so a failure
    here means the whole pool could not answer. The one retry here is for a pooled
    connection that the gateway closed as it was reused (see _post). After
    breaker_fail_max failures in a row the circuit opens: calls fail at once, without
    waiting for timeouts, until breaker_reset_timeout seconds have passed and one trial
    call succeeds. The breaker lives in each worker process.
    """

    def __init__(self, url, connect_timeout, read_timeout, pool_size,
                 breaker_fail_max=5, breaker_reset_timeout=10.0,
                 *, in_flight, batch_max_texts, batch_max_chars):
        self.url = url
        # urllib3 itself rather than requests on top of it: half the CPU per call
        # (0.30 against 0.62 ms measured on loopback), the same pooling and timeouts,
        # and no proxy variables from the environment diverting calls to our own pool.
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.pool = urllib3.PoolManager(
            num_pools=1, maxsize=pool_size, retries=False, timeout=self.timeout
        )
        self._opened = OpenedAt()
        # A predictor that answers, even with a 4xx, is up: only unavailability counts.
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=breaker_fail_max,
            reset_timeout=breaker_reset_timeout,
            exclude=[PredictorBadResponse],
            throw_new_error_on_trip=False,
            name="predictor",
            listeners=[self._opened, CircuitMetrics(pybreaker.STATE_CLOSED)],
        )
        self._lock = threading.Lock()
        self._trial_out = False
        # What a forward may take in all, its wait for a turn (batching.py) included: it
        # ends before the gateway's own timeout for /process (config.py).
        self.budget = connect_timeout + read_timeout
        self.batcher = ForwardBatcher(self._call, in_flight, batch_max_texts, batch_max_chars)

    @property
    def circuit(self):
        """The breaker's state: closed, open or half-open."""
        return self.breaker.current_state

    def predict(self, text, request_id, client_id=None, trace=None, routing=None):
        """Return the predictor's JSON answer for one text; raise a ForwardError if none.

        client_id, the client the gateway named, goes with the forward (the internal
        listener passes it on), so the pool sees who asked; and so does the request's
        trace, (trace id, flags), as a traceparent of the forward's own. routing holds
        the request's headers that choose a model version (headers.ROUTING_HEADERS),
        passed on as they came. Under load the text may go in a batch with others of
        the same client and routing (batching.py), and the answer is the same.
        """
        started = time.perf_counter()
        try:
            answer = self.batcher.forward(Forward(text, request_id, time.monotonic() + self.budget,
                                                  client_id, trace, routing))
        except ForwardError as exc:
            child(FORWARDS, exc.outcome).observe(time.perf_counter() - started)
            raise
        child(FORWARDS, "predicted").observe(time.perf_counter() - started)
        return answer

    def _call(self, forwards):
        """One call to the pool for Forwards of one key, through the breaker."""
        FORWARD_BATCH.observe(len(forwards))
        trial = self._admit()
        try:
            answers = self._post(forwards)
        except ForwardError as exc:
            self._record(exc, trial)
            raise
        self._record(None, trial)
        return answers

    # pybreaker's own call() holds the breaker's lock for the whole guarded call, so a
    # worker's threads would forward one request at a time (pybreaker issue #3; under
    # load a logger worker spent 77 % of its time waiting for that lock). pybreaker
    # keeps the state machine; the lock below is held only to decide whether a call may
    # go out and to record how it went, and the call itself runs outside any lock.

    def _admit(self):
        """Let a call go out, or fail at once while the circuit is open.

        Once the cool-down has passed, one trial call goes out (return True) while the
        others keep failing fast; its outcome closes or reopens the circuit.
        """
        with self._lock:
            if self.breaker.current_state == pybreaker.STATE_CLOSED:
                return False
            cooled = time.monotonic() >= self._opened.at + self.breaker.reset_timeout
            if self._trial_out or not cooled:
                raise PredictorUnavailable(
                    f"circuit open after {self.breaker.fail_max} failures in a row,"
                    f" next try within {self.breaker.reset_timeout:g} s"
                )
            self._trial_out = True
            return True

    def _record(self, failure, trial):
        """Tell the breaker how a call went (its exception, or None for a success)."""

        def replay():
            if failure is not None:
                raise failure

        with self._lock:
            if trial:
                self._trial_out = False
            try:
                self.breaker.call(replay)
            except (ForwardError, pybreaker.CircuitBreakerError):
                pass  # the call's own outcome is what predict() reports

    def _post(self, forwards):
        """Send one text as "input", or several as "inputs"; return an answer for each.

        A batch goes under its first request's id and trace, and names every request's
        id in order (BATCH_REQUEST_IDS_HEADER) for the gateway's shadow mirror; a log
        line names them too, so that each request id leads to its batch's.
        """
        first = forwards[0]
        headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: first.request_id,
                   **first.routing}
        if len(forwards) == 1:
            body = json.dumps({"input": first.text}).encode()
        else:
            body = json.dumps({"inputs": [forward.text for forward in forwards]}).encode()
            headers[BATCH_REQUEST_IDS_HEADER] = " ".join(f.request_id for f in forwards)
            log.info("forwarded %d requests in one batch: %s", len(forwards),
                     headers[BATCH_REQUEST_IDS_HEADER])
        if first.client_id:
            headers[CLIENT_ID_HEADER] = first.client_id
        if first.trace:
            headers[tracecontext.TRACEPARENT_HEADER] = tracecontext.child(*first.trace)
        try:
            try:
                response = self.pool.request("POST", self.url, body=body, headers=headers,
                                             timeout=self._within(first.deadline))
            except urllib3.exceptions.ProtocolError:
                # Closed before any answer: most likely a keep-alive connection that the
                # gateway closed as it was reused (a reloading Nginx closes its idle
                # ones). A prediction has no side effect, so it is sent once more, on a
                # new connection, within what is left of the budget: both sends together
                # end before the gateway's own timeout for /process. A timeout is not
                # retried: the budget is spent.
                response = self.pool.request("POST", self.url, body=body, headers=headers,
                                             timeout=self._within(first.deadline))
        except urllib3.exceptions.NewConnectionError as exc:  # refused (a TimeoutError subclass)
            raise PredictorUnavailable("could not connect") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise PredictorUnavailable(
                f"no answer within the timeout ({exc.__class__.__name__})"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:  # reset, closed mid-answer, ...
            raise PredictorUnavailable("the connection failed") from exc
        if response.status >= 500:
            raise PredictorUnavailable(f"it answered {response.status}")
        if response.status == 404 and MODEL_VERSION_HEADER in first.routing:
            raise UnknownModelVersion(repr(first.routing[MODEL_VERSION_HEADER]))
        if response.status != 200:
            raise PredictorBadResponse(f"it answered {response.status}")
        try:
            answer = json.loads(response.data)
        except ValueError as exc:
            raise PredictorBadResponse("it answered with a body that is not JSON") from exc
        return [answer] if len(forwards) == 1 else singles(answer, len(forwards))

    def _within(self, deadline):
        """The timeouts of a send that must end by deadline (a batch's: its oldest's)."""
        return urllib3.Timeout(connect=self.timeout.connect_timeout,
                               read=self.timeout.read_timeout,
                               total=max(deadline - time.monotonic(), 0.001))


def singles(answer, count):
    """The single answers (prediction, message, model) within a batch's answer."""
    try:
        predictions, messages, model = answer["predictions"], answer["messages"], answer["model"]
        if len(predictions) == len(messages) == count:
            return [{"prediction": prediction, "message": message, "model": model}
                    for prediction, message in zip(predictions, messages, strict=True)]
    except (KeyError, TypeError):
        pass
    raise PredictorBadResponse(f"it did not answer a batch of {count} with {count} predictions")
