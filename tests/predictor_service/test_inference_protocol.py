"""The Open Inference Protocol (V2) routes: the protocol's shapes, and a real V2 client.

The JSON schemas below restate the objects of the protocol's REST specification
(kserve/open-inference-protocol, specification/protocol/inference_rest.md): the
required fields and their types, which every answer must have.
"""

import jsonschema
import numpy
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from predictor_service.config import MODEL_NAME
from tests.support import GunicornServer

TENSOR_METADATA = {
    "type": "object", "required": ["name", "datatype", "shape"],
    "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                   "shape": {"type": "array", "items": {"type": "integer"}}},
}
SCHEMAS = {
    "server_metadata": {
        "type": "object", "required": ["name", "version", "extensions"],
        "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                       "extensions": {"type": "array", "items": {"type": "string"}}},
    },
    "model_metadata": {
        "type": "object", "required": ["name", "platform", "inputs", "outputs"],
        "properties": {"name": {"type": "string"}, "platform": {"type": "string"},
                       "versions": {"type": "array", "items": {"type": "string"}},
                       "inputs": {"type": "array", "items": TENSOR_METADATA},
                       "outputs": {"type": "array", "items": TENSOR_METADATA}},
    },
    "inference_response": {
        "type": "object", "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"},
            "id": {"type": "string"}, "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name", "shape", "datatype", "data"],
                "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                               "shape": {"type": "array", "items": {"type": "integer"}},
                               "data": {"type": "array"}}}},
        },
    },
    "error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
              "additionalProperties": False},
}
INFER = f"/v2/models/{MODEL_NAME}/infer"
TEXTS = ["my cat purrs on the sofa", "the goldfish swims in its bowl"]


def tensor(texts, **overrides):
    return {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts,
            **overrides}


def valid(schema, response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    jsonschema.validate(body, SCHEMAS[schema])
    return body


def test_server_metadata_and_health(client):
    assert valid("server_metadata", client.get("/v2"))["name"] == "predictor"
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}


def test_model_metadata_names_the_text_input_and_both_outputs(client):
    body = valid("model_metadata", client.get(f"/v2/models/{MODEL_NAME}"))
    one = valid("model_metadata", client.get(f"/v2/models/{MODEL_NAME}/versions/1.0.0"))

    assert body["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"]) for o in body["outputs"]] == [
        ("label", "BYTES"), ("confidence", "FP32")]
    assert body["versions"] == ["1.0.0"] and one["versions"] == ["1.0.0"]
    assert client.get(f"/v2/models/{MODEL_NAME}/versions/1.0.0/ready").get_json() == {
        "name": MODEL_NAME, "ready": True}


def test_inference_answers_labels_and_confidences_as_the_predict_route_does(client):
    body = valid("inference_response", client.post(INFER, json={
        "id": "42", "inputs": [tensor(TEXTS)]}))
    predicted = client.post("/predict", json={"inputs": TEXTS}).get_json()["predictions"]

    assert body["id"] == "42"
    assert (body["model_name"], body["model_version"]) == (MODEL_NAME, "1.0.0")
    labels, confidences = body["outputs"]
    assert (labels["name"], labels["datatype"], labels["shape"]) == ("label", "BYTES", [2])
    assert (confidences["name"], confidences["datatype"]) == ("confidence", "FP32")
    assert labels["data"] == [p["class"] for p in predicted] == ["cat", "fish"]
    assert confidences["data"] == [p["confidence"] for p in predicted]


def test_inference_takes_a_batch_as_rows_and_returns_only_the_outputs_asked_for(client):
    body = valid("inference_response", client.post(INFER, json={
        "inputs": [tensor([[text] for text in TEXTS], shape=[2, 1])],
        "outputs": [{"name": "label"}]}))

    assert [output["name"] for output in body["outputs"]] == ["label"]
    assert body["outputs"][0]["data"] == ["cat", "fish"]


@pytest.mark.parametrize("body, message", [
    ({}, "inputs: Missing data for required field"),
    ({"inputs": []}, "Send one input tensor"),
    ({"inputs": [tensor(TEXTS), tensor(TEXTS)]}, "Send one input tensor"),
    ({"inputs": [tensor(TEXTS, shape=[3])]}, "holds 3 elements, and 'data' 2"),
    ({"inputs": [tensor(TEXTS, shape=[-2])]}, "Must be greater than or equal to 0"),
    ({"inputs": [tensor([1.5], datatype="FP32")]}, "must be 'text' of datatype BYTES"),
    ({"inputs": [tensor(TEXTS, name="input0")]}, "must be 'text'"),
    ({"inputs": [tensor([""])]}, "0: Length must be between 1 and 10000"),
    ({"inputs": [tensor([7])]}, "0: Not a valid string"),
    ({"inputs": [tensor(["x" * 10_001])]}, "Length must be between 1 and 10000"),
    ({"inputs": [tensor(["a cat"] * 257)]}, "'data' must hold 1 to 256 texts"),
    ({"inputs": [tensor(["x" * 10_000] * 21)]}, "Too much text for one request"),
    ({"inputs": [tensor(TEXTS)], "outputs": [{"name": "logits"}]}, "Unknown output(s) logits"),
    ({"inputs": [tensor(TEXTS)], "extra": 1}, "extra: Unknown field"),
])
def test_a_malformed_inference_request_is_400_in_the_protocols_error_shape(client, body, message):
    response = client.post(INFER, json=body)

    assert message in valid("error", response, 400)["error"]


def test_a_body_that_is_not_an_inference_request_object_is_400(client):
    for data in ["[1, 2]", "not json", "[" * 100_000]:
        response = client.post(INFER, data=data, content_type="application/json")
        assert "JSON inference request object" in valid("error", response, 400)["error"]


def test_an_unknown_model_or_version_is_404_in_the_protocols_error_shape(client):
    checks = [
        client.post("/v2/models/other/infer", json={"inputs": [tensor(TEXTS)]}),
        client.post(f"/v2/models/{MODEL_NAME}/versions/9.9.9/infer",
                    json={"inputs": [tensor(TEXTS)]}),
        client.get("/v2/models/other"),
        client.get(f"/v2/models/{MODEL_NAME}/versions/9.9.9/ready"),
    ]
    for response in checks:
        assert "Unknown model" in valid("error", response, 404)["error"]


def test_not_ready_is_503(unloaded_app):
    client = unloaded_app.test_client()

    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200
    response = client.post(INFER, json={"inputs": [tensor(TEXTS)]})
    assert "Model is not ready" in valid("error", response, 503)["error"]


# --- Triton's own V2 client against a real predictor under gunicorn.

@pytest.fixture(scope="module")
def triton_client(tmp_path_factory):
    with GunicornServer("predictor", tmp_path_factory.mktemp("v2")) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        yield client
        client.close()


def test_tritonclient_sees_a_live_and_ready_server_and_model(triton_client):
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL_NAME)
    assert triton_client.is_model_ready(MODEL_NAME, "1.0.0")
    assert not triton_client.is_model_ready(MODEL_NAME, "9.9.9")
    assert triton_client.get_server_metadata()["name"] == "predictor"
    metadata = triton_client.get_model_metadata(MODEL_NAME)
    assert metadata["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}


def test_tritonclient_infers_labels_and_confidences(triton_client):
    text = triton.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(numpy.array(TEXTS, dtype=object), binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False)
               for name in ("label", "confidence")]

    result = triton_client.infer(MODEL_NAME, [text], outputs=outputs, request_id="7",
                                 model_version="1.0.0")

    assert result.get_response()["id"] == "7"
    assert [label.decode() if isinstance(label, bytes) else label
            for label in result.as_numpy("label")] == ["cat", "fish"]
    confidences = result.as_numpy("confidence")
    assert confidences.dtype == numpy.float32 and (confidences > 0.5).all()


def test_tritonclient_reports_the_servers_error_message(triton_client):
    text = triton.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(numpy.array(["a cat"], dtype=object), binary_data=False)

    with pytest.raises(InferenceServerException, match="Unknown model version '9.9.9'"):
        triton_client.infer(MODEL_NAME, [text], model_version="9.9.9")
