import json

import pytest

from predictor_service.model import Prediction
from predictor_service.schemas import PredictResponseSchema, predict_answer
from tests.support import assert_error


def test_predict_answers_the_lab_contract(client):
    response = client.post("/predict", json={"input": "test input"})

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"prediction", "message", "model"}
    prediction = body["prediction"]
    assert set(prediction) == {"class", "confidence", "input_length"}
    assert prediction["class"] in {"cat", "dog", "bird", "fish", "rabbit"}
    assert 0.2 <= prediction["confidence"] <= 1.0  # the best of 5 classes is never below 1/5
    assert prediction["input_length"] == len("test input")
    assert body["message"] == (
        f"Predicted class: {prediction['class']} with "
        f"{prediction['confidence'] * 100:.1f}% confidence"
    )
    assert body["model"] == {"name": "pet-text-classifier", "version": "1.0.0"}


@pytest.mark.parametrize("batch", [False, True])
def test_the_answer_is_what_its_schema_documents_in_the_same_order(batch):
    predictions = [Prediction("cat", 0.9482, 32), Prediction("dog", 1.0, 1)][:2 if batch else 1]
    identity = {"name": "pet-text-classifier", "version": "1.0.0"}
    documented = ({"predictions": predictions,
                   "messages": [prediction.message for prediction in predictions],
                   "model": identity} if batch else
                  {"prediction": predictions[0], "message": predictions[0].message,
                   "model": identity})

    # As JSON text, so that the order of the fields counts too (the lab's order).
    assert json.dumps(predict_answer(predictions, identity, batch)) == json.dumps(
        PredictResponseSchema().dump(documented))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cat image data", "cat"),
        ("my puppy fetches the ball and wags his tail", "dog"),
        ("a small canary singing in its cage", "bird"),
        ("goldfish swimming around the aquarium", "fish"),
        ("the bunny is munching hay and carrots in its hutch", "rabbit"),
    ],
)
def test_predict_classifies_clear_examples(client, text, expected):
    response = client.post("/predict", json={"input": text})

    assert response.get_json()["prediction"]["class"] == expected


def test_predict_is_deterministic(client):
    answers = [client.post("/predict", json={"input": "feathers on the perch"}).get_json()
               for _ in range(3)]

    assert answers[0] == answers[1] == answers[2]


def test_input_length_counts_characters_not_bytes(client):
    text = "chat noir été 🐈"
    response = client.post("/predict", json={"input": text})

    assert response.get_json()["prediction"]["input_length"] == len(text) == 15


def test_batch_answers_each_input_in_order(client):
    texts = ["cat image data", "goldfish in a tank", "x" * 10_000]
    batch = client.post("/predict", json={"inputs": texts}).get_json()

    assert set(batch) == {"predictions", "messages", "model"}
    singles = [client.post("/predict", json={"input": text}).get_json() for text in texts]
    assert batch["predictions"] == [single["prediction"] for single in singles]
    assert batch["messages"] == [single["message"] for single in singles]
    assert [p["input_length"] for p in batch["predictions"]] == [14, 18, 10_000]


def test_batch_accepts_the_maximum_size(client):
    response = client.post("/predict", json={"inputs": [f"dog number {i}" for i in range(256)]})

    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 256


def test_served_by_names_the_instance(client):
    response = client.post("/predict", json={"input": "hello"})

    assert response.headers["X-Served-By"] == "predictor-test"


def test_served_by_defaults_to_hostname_and_port(unloaded_app):
    import socket

    response = unloaded_app.test_client().get("/health")

    assert response.headers["X-Served-By"] == f"{socket.gethostname()}:80"


def test_request_id_is_echoed_or_generated(client):
    echoed = client.post("/predict", json={"input": "a"}, headers={"X-Request-ID": "abc-123"})
    generated = client.post("/predict", json={"input": "a"})
    replaced = client.post("/predict", json={"input": "a"}, headers={"X-Request-ID": "bad id\x01"})

    assert echoed.headers["X-Request-ID"] == "abc-123"
    assert len(generated.headers["X-Request-ID"]) == 32
    assert replaced.headers["X-Request-ID"] != "bad id\x01"


def test_predict_is_503_until_the_model_is_ready(unloaded_app):
    response = unloaded_app.test_client().post("/predict", json={"input": "a"})

    assert_error(response, 503, "Model is not ready")


def test_a_prediction_sent_while_the_model_loads_waits_for_it(unloaded_app, holder_of):
    # A replica that has just started: the gateway passes a 503 on, so it must not
    # answer one merely because its model is still loading.
    unloaded_app.config["LOAD_WAIT_SECONDS"] = 60
    holder_of(unloaded_app).start()

    response = unloaded_app.test_client().post("/predict", json={"input": "my cat"})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["prediction"]["class"] == "cat"
