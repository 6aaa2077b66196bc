"""Routes of the predictor: /predict and /model, and the probes."""

from flask import current_app
from flask_smorest import abort

from .api import Blueprint
from .model import ModelNotReady
from .schemas import (
    HealthSchema,
    ModelMetadataSchema,
    PredictRequestSchema,
    PredictResponseSchema,
    ReadySchema,
    ServiceInfoSchema,
)

blp = Blueprint("predictor", __name__, description="Text classification")
probes = Blueprint("probes", __name__, description="Liveness, readiness and discovery")


def loaded_model():
    """Return the worker's model, or answer 503 while it is not ready."""
    try:
        return current_app.extensions["model"].model
    except ModelNotReady as exc:
        abort(503, message=f"Model is not ready: {exc}")


# Schema instances, not classes, for the arguments: given a class, webargs builds a new
# Schema for every request (measured: 13 % of a prediction's CPU in the predictor).
@blp.post("/predict")
@blp.arguments(PredictRequestSchema())
@blp.response(200, PredictResponseSchema)
def predict(payload):
    """Classify one text ("input") or a batch of texts ("inputs") in one model call."""
    model = loaded_model()
    predict = current_app.extensions["model"].predict
    if "inputs" in payload:
        return {"predictions": predict(payload["inputs"]), "model": model.identity}
    [prediction] = predict([payload["input"]])
    return {"prediction": prediction, "message": prediction.message, "model": model.identity}


@blp.get("/model")
@blp.response(200, ModelMetadataSchema)
def model_metadata():
    """Describe the loaded model: classes, metrics, training data and date."""
    holder = current_app.extensions["model"]
    return {**loaded_model().metadata, "artifact": holder.artifact_path.name}


@probes.get("/health")
@probes.response(200, HealthSchema)
def health():
    """Liveness: the process answers."""
    return {"status": "ok"}


@probes.get("/ready")
@probes.response(200, ReadySchema)
def ready():
    """Readiness: 200 once the model is loaded and has answered a warm-up call."""
    return {"status": "ready", "model": loaded_model().identity}


@probes.get("/")
@probes.response(200, ServiceInfoSchema)
def index():
    """Name the service and list its routes."""
    routes = {rule.rule for rule in current_app.url_map.iter_rules()}
    return {
        "service": "predictor",
        "version": current_app.config["API_VERSION"],
        "routes": sorted(routes - {"/static/<path:filename>"}),
    }
