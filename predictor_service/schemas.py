"""Request and response schemas of the predictor API."""

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from servicekit.fields import utf8_text

MAX_TEXT_LENGTH = 10_000
MAX_INPUTS_PER_REQUEST = 256


def text_field(**kwargs):
    # No lone surrogate, as the logger: both services refuse the same text.
    return fields.String(
        validate=[validate.Length(min=1, max=MAX_TEXT_LENGTH), utf8_text], **kwargs
    )


class PredictRequestSchema(ma.Schema):
    input = text_field(
        metadata={"description": "Text to classify.", "example": "cat image data"}
    )
    inputs = fields.List(
        text_field(),
        validate=validate.Length(min=1, max=MAX_INPUTS_PER_REQUEST),
        metadata={
            "description": f"A batch of 1 to {MAX_INPUTS_PER_REQUEST} texts, instead of input; "
                           "at most PREDICTOR_MAX_REQUEST_CHARS characters in all."
        },
    )

    @ma.validates_schema
    def exactly_one_of_input_and_inputs(self, data, **kwargs):
        if "input" in data and "inputs" in data:
            raise ma.ValidationError("Send either 'input' or 'inputs', not both.")
        if "input" not in data and "inputs" not in data:
            raise ma.ValidationError("Missing data for required field.", "input")

    @ma.validates_schema(skip_on_field_errors=True)
    def total_characters_within_the_limit(self, data, **kwargs):
        # Each text's length is bounded, and their count: bound their sum too, which is
        # what a request costs (Config.MAX_REQUEST_CHARS says how much that is).
        limit = current_app.config["MAX_REQUEST_CHARS"]
        texts = [*data.get("inputs", ()), *([data["input"]] if "input" in data else ())]
        total = sum(len(text) for text in texts)
        field = "inputs" if "inputs" in data else "input"
        if total > limit:
            raise ma.ValidationError(
                f"Too much text for one request: {total} characters, at most {limit} "
                "in all: send fewer or shorter texts per request.", field)


class PredictionSchema(ma.Schema):
    label = fields.String(data_key="class", metadata={"example": "cat"})
    confidence = fields.Float(metadata={"description": "Probability of the class, 0 to 1."})
    input_length = fields.Integer(metadata={"description": "Characters in the input."})


class ModelIdentitySchema(ma.Schema):
    name = fields.String()
    version = fields.String()


class PredictResponseSchema(ma.Schema):
    prediction = fields.Nested(PredictionSchema, metadata={"description": "Single input only."})
    message = fields.String(metadata={"description": "Single input only."})
    predictions = fields.List(
        fields.Nested(PredictionSchema), metadata={"description": "Batch only, in input order."}
    )
    messages = fields.List(
        fields.String(), metadata={"description": "Batch only: each prediction's message, "
                                                  "in input order."}
    )
    model = fields.Nested(ModelIdentitySchema)


def predict_answer(predictions, identity, batch):
    """The answer to /predict, as PredictResponseSchema dumps it, built directly: the
    schema documents the answer, and marshmallow's dump of it cost a twentieth of a
    prediction's CPU (tests/predictor_service/test_predict.py checks that they agree)."""
    if batch:
        return {"predictions": [prediction_fields(prediction) for prediction in predictions],
                "messages": [prediction.message for prediction in predictions],
                "model": identity}
    [prediction] = predictions
    return {"prediction": prediction_fields(prediction), "message": prediction.message,
            "model": identity}


def prediction_fields(prediction):
    """One Prediction, as PredictionSchema dumps it."""
    return {"class": prediction.label, "confidence": prediction.confidence,
            "input_length": prediction.input_length}


class ModelMetadataSchema(ma.Schema):
    name = fields.String()
    version = fields.String()
    classes = fields.List(fields.String())
    metrics = fields.Dict()
    data = fields.Dict()
    training = fields.Dict()
    artifact = fields.String(metadata={"description": "Its file, under its version's folder."})


class ServedVersionSchema(ma.Schema):
    name = fields.String()
    version = fields.String()
    aliases = fields.List(fields.String(), metadata={"example": ["production"]})
    ready = fields.Boolean(metadata={"description": "Loaded and warmed up in this worker."})
    metrics = fields.Dict(metadata={"description": "Held-out metrics, once ready."})
    trained_at = fields.String()
    error = fields.String(metadata={"description": "Why it is not ready, if it failed to load."})


class ReadySchema(ma.Schema):
    status = fields.String(metadata={"example": "ready"})
    model = fields.Nested(ModelIdentitySchema)
