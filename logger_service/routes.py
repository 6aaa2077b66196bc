"""Routes of the logger: /process and /logs, and the probes."""

import logging
import sqlite3
import time

import marshmallow as ma
from flask import current_app, g
from flask_smorest import abort

from .api import Blueprint
from .client import PredictorBadResponse, PredictorUnavailable
from .schemas import (
    HealthSchema,
    LogsPageSchema,
    LogsQuerySchema,
    ProcessRequestSchema,
    ProcessResponseSchema,
    ReadySchema,
    ServiceInfoSchema,
)

log = logging.getLogger(__name__)

blp = Blueprint("logger", __name__, description="Record inputs, optionally classify them")
probes = Blueprint("probes", __name__, description="Liveness, readiness and discovery")


def ask_predictor(data):
    """Forward one input; return (outcome, prediction, failure), failure being (status, message)."""
    try:
        prediction = current_app.extensions["predictor"].predict(data, g.request_id)
    except PredictorUnavailable as exc:
        failure = (503, f"Predictor is unavailable: {exc}.")
        outcome = "predictor_unavailable"
    except PredictorBadResponse as exc:
        failure = (502, f"Predictor gave a bad response: {exc}.")
        outcome = "predictor_error"
    else:
        return "predicted", prediction, None
    log.warning("request %s: %s", g.request_id, failure[1])
    return outcome, None, failure


# Schema instances, not classes, for the arguments: given a class, webargs builds a new
# Schema for every request (measured: about 5 % of the CPU of a /process request).
@blp.post("/process")
@blp.arguments(ProcessRequestSchema())
@blp.response(200, ProcessResponseSchema)
def process(payload):
    """Record the input and, when asked, forward it to the predictor pool.

    The row is committed before the reply, whatever the predictor did, so an input
    that was acknowledged is never lost; a failed forward is recorded with its outcome.
    """
    started = time.perf_counter()
    outcome, prediction, failure = "logged", None, None
    if payload["forward_to_model"]:
        outcome, prediction, failure = ask_predictor(payload["data"])

    try:
        current_app.extensions["store"].record(
            request_id=g.request_id,
            data=payload["data"],
            forward_to_model=payload["forward_to_model"],
            outcome=outcome,
            prediction=prediction,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
    except sqlite3.Error:
        log.exception("could not record request %s", g.request_id)
        abort(503, message="Could not record the input: storage is unavailable.")

    if failure:
        status, message = failure
        abort(status, message=message)
    response = {"status": "Input logged successfully", "request_id": g.request_id}
    if prediction is not None:
        response["model_prediction"] = prediction
    return response


# webargs excludes unknown query parameters by default: refuse them, as unknown JSON
# fields are, so that a misspelt "limt=5" is a 422 rather than a silent default page.
@blp.get("/logs")
@blp.arguments(LogsQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, LogsPageSchema)
def logs(query):
    """Page through the records, newest first."""
    try:
        records = current_app.extensions["store"].page(query["limit"], query.get("before_id"))
    except sqlite3.Error:
        log.exception("could not read the records")
        abort(503, message="Could not read the records: storage is unavailable.")
    full_page = len(records) == query["limit"]
    return {"records": records, "next_before_id": records[-1]["id"] if full_page else None}


@probes.get("/health")
@probes.response(200, HealthSchema)
def health():
    """Liveness: the process answers."""
    return {"status": "ok"}


@probes.get("/ready")
@probes.response(200, ReadySchema)
def ready():
    """Readiness: 200 while the database accepts writes and its disk has room.

    The predictor circuit's state is shown, but an open circuit does not make the logger
    unready: it still records every input.
    """
    circuit = current_app.extensions["predictor"].circuit
    try:
        current_app.extensions["store"].check_writable(current_app.config["DB_MIN_FREE_BYTES"])
    except sqlite3.Error as exc:
        abort(503, message="Database is not writable.",
              errors={"database": str(exc), "predictor_circuit": circuit})
    return {"status": "ready", "checks": {"database": "ok", "predictor_circuit": circuit}}


@probes.get("/")
@probes.response(200, ServiceInfoSchema)
def index():
    """Name the service and list its routes."""
    routes = {rule.rule for rule in current_app.url_map.iter_rules()}
    return {
        "service": "logger",
        "version": current_app.config["API_VERSION"],
        "routes": sorted(routes - {"/static/<path:filename>"}),
    }
