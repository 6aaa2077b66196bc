"""Routes of the logger: /process and /logs, and the probes."""

import logging
import time

import marshmallow as ma
from flask import current_app, g, request
from flask_smorest import abort

from servicekit.api import Blueprint
from servicekit.headers import BATCH_REQUEST_IDS_HEADER, ROUTING_HEADERS
from servicekit.hooks import SANE_REQUEST_ID
from servicekit.probes import probes_blueprint

from . import experiments
from .client import get_predictor_client
from .errors import ForwardError
from .schemas import (
    ExperimentQuerySchema,
    ExperimentReportSchema,
    LogsPageSchema,
    LogsQuerySchema,
    ProcessRequestSchema,
    ProcessResponseSchema,
    ReadySchema,
    ShadowRequestSchema,
    ShadowResponseSchema,
)
from .shadow import get_shadow_recorder
from .store import StorageUnavailable, get_store

log = logging.getLogger(__name__)

blp = Blueprint("logger", __name__, description="Record inputs, optionally classify them")
# /health and / as in every service; /ready, below, is the logger's own.
probes = probes_blueprint("logger")


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
        try:
            routing = {name: request.headers[name] for name in ROUTING_HEADERS
                       if name in request.headers}
            prediction = get_predictor_client().predict(payload["data"], g.request_id,
                                                       g.client_id, g.trace, routing)
        except ForwardError as error:
            log.warning("request %s: %s", g.request_id, error)
            outcome, failure = error.outcome, error
        else:
            outcome = "predicted"

    # Raises StorageUnavailable (503) when the row cannot be committed.
    get_store().record(
        request_id=g.request_id,
        client_id=g.client_id,
        trace_id=g.trace_id,
        data=payload["data"],
        forward_to_model=payload["forward_to_model"],
        outcome=outcome,
        prediction=prediction,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    if failure:
        raise failure  # answered with its own status, now that its row is committed
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
    """Page through the records, newest first, at most LOGS_MAX_PAGE_BYTES of them."""
    records, cut_short = get_store().bounded_page(
        query["limit"], query.get("before_id"), current_app.config["LOGS_MAX_PAGE_BYTES"]
    )
    more = cut_short or len(records) == query["limit"]
    return {"records": records, "next_before_id": records[-1]["id"] if more else None}


@blp.post("/shadow")
@blp.arguments(ShadowRequestSchema())
@blp.response(202, ShadowResponseSchema)
def shadow(payload):
    """Take a prediction the gateway mirrored; the candidate is asked in the background.

    For the gateway's mirror only, which ignores the answer (the gateway routes no
    client here). A batch is taken when it is one of the logger's own forwards, which
    names each text's request id; a client's batch has no records to compare with."""
    if "input" in payload:
        shadows = [(g.request_id, payload["input"])]
    else:
        request_ids = request.headers.get(BATCH_REQUEST_IDS_HEADER, "").split()
        texts = payload.get("inputs", [])
        if (not texts or len(request_ids) != len(texts)
                or not all(map(SANE_REQUEST_ID.fullmatch, request_ids))):
            return {"status": "skipped"}
        shadows = zip(request_ids, texts, strict=True)
    recorder = get_shadow_recorder()
    queued = [recorder.submit(request_id, text) for request_id, text in shadows]
    return {"status": "queued" if all(queued) else "dropped"}


@blp.get("/experiments/current")
@blp.arguments(ExperimentQuerySchema(), location="query")
@blp.response(200, ExperimentReportSchema)
def current_experiment(args):
    """Compare the model versions over the latest predictions and their shadows."""
    return experiments.report(get_store(), experiments.get_training_distributions(),
                              args["limit"], current_app.config["DRIFT_PSI_THRESHOLD"])


@probes.get("/ready")
@probes.response(200, ReadySchema)
def ready():
    """Readiness: 200 while the database accepts writes and its disk has room.

    The predictor circuit's state is shown, but an open circuit does not make the logger
    unready: it still records every input.
    """
    circuit = get_predictor_client().circuit
    try:
        get_store().check_writable(current_app.config["DB_MIN_FREE_BYTES"])
    except StorageUnavailable as exc:
        abort(503, message="Database is not writable.",
              errors={"database": exc.reason, "predictor_circuit": circuit})
    return {"status": "ready", "checks": {"database": "ok", "predictor_circuit": circuit}}
