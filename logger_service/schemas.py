"""Request and response schemas of the logger API."""

import marshmallow as ma
from marshmallow import fields, validate

MAX_TEXT_LENGTH = 10_000
MAX_PAGE_SIZE = 500


def utf8_text(value):
    """SQLite stores UTF-8: no lone surrogate (a "\\ud800" escape alone) in the text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ma.ValidationError("Must be valid Unicode text: no lone surrogate.") from None


class StrictBoolean(fields.Boolean):
    """A JSON true or false only: no "yes", 1 or "false" coerced to a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ProcessRequestSchema(ma.Schema):
    data = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=MAX_TEXT_LENGTH), utf8_text],
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
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    before_id = fields.Integer(
        validate=validate.Range(min=1, max=2**63 - 1),  # SQLite's INTEGER
        metadata={"description": "Only records older than this id: next_before_id of a page."},
    )


class LogRecordSchema(ma.Schema):
    id = fields.Integer()
    request_id = fields.String()
    created_at = fields.String(metadata={"description": "UTC, ISO 8601."})
    data = fields.String()
    forward_to_model = fields.Boolean()
    outcome = fields.String(
        metadata={"description": "logged, predicted, predictor_unavailable or predictor_error"}
    )
    prediction = fields.Dict(allow_none=True)
    latency_ms = fields.Float()


class LogsPageSchema(ma.Schema):
    records = fields.List(fields.Nested(LogRecordSchema))
    next_before_id = fields.Integer(
        allow_none=True, metadata={"description": "Pass as before_id for the next page."}
    )


class ReadySchema(ma.Schema):
    status = fields.String(metadata={"example": "ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String())
