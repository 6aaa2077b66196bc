"""Request and response schemas of the logger API."""

import marshmallow as ma
from marshmallow import fields, validate

from servicekit.fields import QueryInteger, utf8_text

MAX_TEXT_LENGTH = 10_000
MAX_PAGE_SIZE = 500
MAX_EXPERIMENT_WINDOW = 10_000


class StrictBoolean(fields.Boolean):
    """A JSON true or false only: no "yes", 1 or "false" coerced to a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def storable_text(value):
    """Refuse the NUL character, which PostgreSQL's text cannot hold: both stores then take
    exactly the same inputs."""
    if "\x00" in value:
        raise ma.ValidationError("Must not contain the NUL character (U+0000).")


class ProcessRequestSchema(ma.Schema):
    data = fields.String(
        required=True,
        # Both stores keep UTF-8 text: no lone surrogate, no NUL.
        validate=[validate.Length(min=1, max=MAX_TEXT_LENGTH), utf8_text, storable_text],
        metadata={"description": "The input to record.", "example": "cat image data"},
    )
    forward_to_model = StrictBoolean(
        load_default=False,
        metadata={"description": "Also classify the input with the predictor pool."},
    )


class ProcessResponseSchema(ma.Schema):
    status = fields.String(metadata={"example": "Input logged successfully"})
    request_id = fields.String()
    model_prediction = fields.Dict(
        metadata={"description": "The predictor's answer, when forward_to_model was true."}
    )


class LogsQuerySchema(ma.Schema):
    limit = QueryInteger(
        load_default=50,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": "The most records in the page; fewer when they would make "
                                 "the page too large (LOGGER_LOGS_MAX_PAGE_BYTES)."},
    )
    before_id = QueryInteger(
        validate=validate.Range(min=1, max=2**63 - 1),  # SQLite's INTEGER
        metadata={"description": "Only records older than this id: next_before_id of a page."},
    )


class LogRecordSchema(ma.Schema):
    id = fields.Integer()
    request_id = fields.String()
    client_id = fields.String(
        allow_none=True,
        metadata={"description": "The client whose API key sent it, as the gateway named it."},
    )
    trace_id = fields.String(
        allow_none=True,
        metadata={"description": "The W3C trace id of the request (its traceparent header)."},
    )
    created_at = fields.String(metadata={"description": "UTC, ISO 8601."})
    data = fields.String()
    forward_to_model = fields.Boolean()
    outcome = fields.String(
        metadata={"description": "logged, predicted, predictor_unavailable, predictor_error or "
                                "unknown_model_version"}
    )
    prediction = fields.Dict(allow_none=True)
    latency_ms = fields.Float()


class LogsPageSchema(ma.Schema):
    records = fields.List(fields.Nested(LogRecordSchema))
    next_before_id = fields.Integer(
        allow_none=True,
        metadata={"description": "Pass as before_id for the next page; null on the last."},
    )


# What the predictor takes as a text: a shadow is asked of it.
PREDICTION_TEXT = [validate.Length(min=1, max=MAX_TEXT_LENGTH), utf8_text]


class ShadowRequestSchema(ma.Schema):
    """A prediction the gateway mirrored: the body of a /predict, as the client sent it."""

    input = fields.String(validate=PREDICTION_TEXT)
    # Shadowed when the logger forwarded it (routes.shadow), with each text's request id.
    inputs = fields.List(fields.String(validate=PREDICTION_TEXT))


class ShadowResponseSchema(ma.Schema):
    status = fields.String(metadata={"description": "queued, dropped (the queue is full) or "
                                                    "skipped (a batch the logger did not send)"})


class ExperimentQuerySchema(ma.Schema):
    limit = QueryInteger(
        load_default=1000, validate=validate.Range(min=1, max=MAX_EXPERIMENT_WINDOW),
        metadata={"description": "How many of the latest predictions (and of the latest "
                                 "shadows) the comparison reads."},
    )


class ExperimentReportSchema(ma.Schema):
    window = fields.Dict(metadata={"description": "How many predictions and shadows were read."})
    drift_threshold = fields.Float(metadata={"description": "LOGGER_DRIFT_PSI_THRESHOLD"})
    shadow_failures = fields.Dict(metadata={"description": "Shadows without an answer, by why."})
    versions = fields.Dict(metadata={"description": (
        "Per version: served (requests, classes, mean_confidence, latency_ms p50/p99) for "
        "the predictions it answered, shadow (the same, with compared and agreement) for "
        "its shadow answers, and drift (psi, drifted) of its recent classes against its "
        "training distribution.")})
    generated_at = fields.String()


class ReadySchema(ma.Schema):
    status = fields.String(metadata={"example": "ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String())
