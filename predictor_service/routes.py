"""Routes of the predictor: /predict and /model, and the probes."""

from flask import current_app

from servicekit.api import Blueprint
from servicekit.probes import probes_blueprint

from .model import get_model_holder
from .schemas import (
    ModelMetadataSchema,
    PredictRequestSchema,
    PredictResponseSchema,
    ReadySchema,
)

blp = Blueprint("predictor", __name__, description="Text classification")
# /health and / as in every service; /ready, below, is the predictor's own.
probes = probes_blueprint("predictor")

# holder.model raises ModelNotReady, answered with 503, until the model has loaded.


# Schema instances, not classes, for the arguments: given a class, webargs builds a new
# Schema for every request (measured: 13 % of a prediction's CPU in the predictor).
@blp.post("/predict")
@blp.arguments(PredictRequestSchema())
@blp.response(200, PredictResponseSchema)
def predict(payload):
    """Classify one text ("input") or a batch of texts ("inputs") in one model call."""
    holder = get_model_holder()
    holder.wait(current_app.config["LOAD_WAIT_SECONDS"])
    model = holder.model
    if "inputs" in payload:
        return {"predictions": holder.predict(payload["inputs"]), "model": model.identity}
    [prediction] = holder.predict([payload["input"]])
    return {"prediction": prediction, "message": prediction.message, "model": model.identity}


@blp.get("/model")
@blp.response(200, ModelMetadataSchema)
def model_metadata():
    """Describe the loaded model: classes, metrics, training data and date."""
    holder = get_model_holder()
    return {**holder.model.metadata, "artifact": holder.artifact_path.name}


@probes.get("/ready")
@probes.response(200, ReadySchema)
def ready():
    """Readiness: 200 once the model is loaded and has answered a warm-up call."""
    return {"status": "ready", "model": get_model_holder().model.identity}
