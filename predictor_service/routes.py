"""Routes of the predictor: /predict, the models it serves, and the probes."""

from flask import current_app, request

from servicekit.api import Blueprint
from servicekit.headers import MODEL_VERSION_HEADER
from servicekit.probes import probes_blueprint

from .schemas import (
    ModelMetadataSchema,
    PredictRequestSchema,
    PredictResponseSchema,
    ReadySchema,
    ServedVersionSchema,
    predict_answer,
)
from .serving import get_models

blp = Blueprint("predictor", __name__, description="Text classification")
# /health and / as in every service; /ready, below, is the predictor's own.
probes = probes_blueprint("predictor")

# models.holder() raises ModelNotReady (503) until production has loaded, and
# UnknownVersion (404) for a version this worker does not serve.


# Schema instances, not classes, for the arguments: given a class, webargs builds a new
# Schema for every request (measured: 13 % of a prediction's CPU in the predictor).
@blp.post("/predict")
@blp.arguments(PredictRequestSchema())
@blp.response(200, PredictResponseSchema)
def predict(payload):
    """Classify one text ("input") or a batch of texts ("inputs") in one model call.

    Production answers, or the version (or alias) named by an X-Model-Version header."""
    models = get_models()
    models.wait(current_app.config["LOAD_WAIT_SECONDS"])
    holder = models.holder(request.headers.get(MODEL_VERSION_HEADER))
    identity, batch = holder.model.identity, "inputs" in payload
    predictions = holder.predict(payload["inputs"] if batch else [payload["input"]])
    # A Response is sent as it is: PredictResponseSchema documents what predict_answer builds.
    return current_app.json.response(predict_answer(predictions, identity, batch))


@blp.get("/model")
@blp.response(200, ModelMetadataSchema)
def model_metadata():
    """Describe the production model: classes, metrics, training data and date."""
    return describe(get_models())


@blp.get("/models")
@blp.response(200, ServedVersionSchema(many=True))
def served_versions():
    """List the versions this worker serves, with their aliases, state and metrics."""
    return get_models().describe()


@blp.get("/models/<version>")
@blp.response(200, ModelMetadataSchema)
def version_metadata(version):
    """Describe one version (or alias) this worker serves; 404 for any other."""
    return describe(get_models(), version)


def describe(models, version=None):
    metadata = models.holder(version).model.metadata
    return {**metadata, "artifact": models.source.artifact_name(metadata["version"])}


@probes.get("/ready")
@probes.response(200, ReadySchema)
def ready():
    """Readiness: 200 once production is loaded and has answered a warm-up call."""
    return {"status": "ready", "model": get_models().model.identity}
