"""The Open Inference Protocol (V2, REST), as KServe, MLServer and Triton speak it.

    GET  /v2                                       server metadata
    GET  /v2/health/live, /v2/health/ready         liveness, readiness
    GET  /v2/models/{name}[/versions/{v}]          model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready    model readiness
    POST /v2/models/{name}[/versions/{v}]/infer    inference

The model takes one BYTES input tensor, `text` (one text per element), and answers two
output tensors of the same length: `label` (BYTES) and `confidence` (FP32). Without a
version in the path, the version asked for in X-Model-Version answers (the gateway's
canary sets it), else production. Every error is the protocol's {"error": message},
with the status the rest of the API would give it: 400 for a malformed request, 404
for an unknown model or version, 503 while not ready or when full.
"""

import json

import marshmallow as ma
from flask import Blueprint, current_app, jsonify, request
from marshmallow import fields, validate
from werkzeug.exceptions import HTTPException

from servicekit.errors import ServiceError
from servicekit.fields import utf8_text
from servicekit.headers import MODEL_VERSION_HEADER
from servicekit.hooks import takes_json_of_any_content_type

from .config import MODEL_NAME
from .schemas import MAX_INPUTS_PER_REQUEST, MAX_TEXT_LENGTH
from .serving import get_models

bp = Blueprint("inference_protocol", __name__, url_prefix="/v2")

INPUT = {"name": "text", "datatype": "BYTES", "shape": [-1]}
OUTPUTS = [{"name": "label", "datatype": "BYTES", "shape": [-1]},
           {"name": "confidence", "datatype": "FP32", "shape": [-1]}]


class ProtocolError(ServiceError):
    """A request the protocol cannot take: 400, or the status given."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class UnknownModel(ProtocolError):
    def __init__(self, name):
        super().__init__(f"Unknown model {name!r}: this server serves {MODEL_NAME!r}.", 404)


class RequestInputSchema(ma.Schema):
    name = fields.String(required=True)
    shape = fields.List(fields.Integer(validate=validate.Range(min=0)), required=True)
    datatype = fields.String(required=True)
    parameters = fields.Dict()
    data = fields.Raw(required=True)


class RequestOutputSchema(ma.Schema):
    name = fields.String(required=True)
    parameters = fields.Dict()


class InferenceRequestSchema(ma.Schema):
    id = fields.String()
    parameters = fields.Dict()
    inputs = fields.List(fields.Nested(RequestInputSchema), required=True,
                         validate=validate.Length(equal=1, error="Send one input tensor, 'text'."))
    outputs = fields.List(fields.Nested(RequestOutputSchema))


INFERENCE_REQUEST = InferenceRequestSchema()
TEXT = fields.String(validate=[validate.Length(min=1, max=MAX_TEXT_LENGTH), utf8_text])


@bp.errorhandler(ServiceError)
def service_error(error):
    """Every error of these routes in the protocol's shape, with its status and headers."""
    return jsonify(error=str(error)), error.status, dict(error.headers)


@bp.errorhandler(HTTPException)
def http_error(error):
    return jsonify(error=error.description), error.code


@bp.get("")
def server_metadata():
    return {"name": "predictor", "version": current_app.config["API_VERSION"], "extensions": []}


@bp.get("/health/live")
def live():
    return {"live": True}


@bp.get("/health/ready")
def ready():
    is_ready = get_models().ready
    return {"ready": is_ready}, 200 if is_ready else 503


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name, version=None):
    model_holder(name, version)
    versions = [version] if version else [entry["version"] for entry in get_models().describe()
                                          if entry["ready"]]
    return {"name": MODEL_NAME, "versions": versions, "platform": "scikit-learn",
            "inputs": [INPUT], "outputs": OUTPUTS}


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name, version=None):
    holder = model_holder(name, version, must_be_ready=False)
    return {"name": MODEL_NAME, "ready": holder.ready}, 200 if holder.ready else 503


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
@takes_json_of_any_content_type
def infer(name, version=None):
    payload = parse_inference_request()
    models = get_models()
    models.wait(current_app.config["LOAD_WAIT_SECONDS"])
    holder = model_holder(name, version)
    texts = texts_of(payload["inputs"][0])
    wanted = [output["name"] for output in payload.get("outputs", OUTPUTS)]
    unknown = sorted(set(wanted) - {output["name"] for output in OUTPUTS})
    if unknown:
        raise ProtocolError(f"Unknown output(s) {', '.join(unknown)}: the outputs are "
                            "label and confidence.")
    model = holder.model
    predictions = holder.predict(texts)
    data = {"label": [prediction.label for prediction in predictions],
            "confidence": [prediction.confidence for prediction in predictions]}
    response = {
        "model_name": MODEL_NAME,
        "model_version": model.identity["version"],
        "outputs": [{**output, "shape": [len(texts)], "data": data[output["name"]]}
                    for output in OUTPUTS if output["name"] in wanted],
    }
    if "id" in payload:
        response["id"] = payload["id"]
    return response


def model_holder(name, version=None, must_be_ready=True):
    """The holder of the version asked for (path, then X-Model-Version, then production)."""
    if name != MODEL_NAME:
        raise UnknownModel(name)
    holder = get_models().holder(version or request.headers.get(MODEL_VERSION_HEADER))
    if must_be_ready:
        holder.model  # noqa: B018 - raises ModelNotReady (503) until it has loaded
    return holder


def parse_inference_request():
    # Whatever the Content-Type (V2 clients do not all send one); JSON that Python cannot
    # hold (nested too deeply, an integer of over 4300 digits) is malformed too.
    try:
        body = json.loads(request.get_data())
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise ProtocolError("The body must be a JSON inference request object.")
    try:
        return INFERENCE_REQUEST.load(body)
    except ma.ValidationError as exc:
        raise ProtocolError(f"Malformed inference request: {describe(exc.messages)}") from None


def texts_of(tensor):
    """The texts of the input tensor: BYTES, its shape matching its data."""
    if tensor["name"] != INPUT["name"] or tensor["datatype"] != "BYTES":
        raise ProtocolError(f"The input must be {INPUT['name']!r} of datatype BYTES, not "
                            f"{tensor['name']!r} of {tensor['datatype']!r}.")
    data = tensor["data"]
    # Row-major data may come flat or nested as the shape: [n] or [n, 1].
    if isinstance(data, list) and all(isinstance(row, list) for row in data):
        data = [item for row in data for item in row]
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_INPUTS_PER_REQUEST:
        raise ProtocolError(f"'data' must hold 1 to {MAX_INPUTS_PER_REQUEST} texts.")
    elements = 1
    for dimension in tensor["shape"]:
        elements *= dimension
    if elements != len(data):
        raise ProtocolError(f"The shape {tensor['shape']} holds {elements} elements, and "
                            f"'data' {len(data)}.")
    errors = {}
    for index, text in enumerate(data):
        try:
            TEXT.deserialize(text)
        except ma.ValidationError as exc:
            errors[index] = exc.messages
    if errors:
        raise ProtocolError(f"Texts that cannot be classified: {describe(errors)}")
    total, limit = sum(len(text) for text in data), current_app.config["MAX_REQUEST_CHARS"]
    if total > limit:
        raise ProtocolError(f"Too much text for one request: {total} characters, at most "
                            f"{limit} in all.")
    return data


def describe(messages):
    """marshmallow's messages as one line: field: message; ..."""
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {describe(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(describe(message) for message in messages)
    return str(messages)
