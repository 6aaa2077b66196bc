import re
import uuid

import urllib3.connection

from logger_service.schemas import MAX_TEXT_LENGTH
from logger_service.store import get_store
from tests.support import assert_error


def test_process_records_the_input_and_answers_the_lab_contract(client, records):
    response = client.post("/process", json={"data": "sample input", "forward_to_model": False})

    assert response.status_code == 200
    body = response.get_json()
    assert body == {"status": "Input logged successfully", "request_id": body["request_id"]}
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert response.headers["X-Request-ID"] == body["request_id"]
    [record] = records()
    assert record["request_id"] == body["request_id"]
    assert record["data"] == "sample input"
    assert record["forward_to_model"] is False
    assert record["outcome"] == "logged"
    assert record["prediction"] is None
    assert record["latency_ms"] >= 0
    assert record["created_at"].endswith("+00:00")


def test_forward_to_model_defaults_to_false(client, records):
    response = client.post("/process", json={"data": "just log me"})

    assert "model_prediction" not in response.get_json()
    assert records()[0]["forward_to_model"] is False


def test_client_request_id_is_kept(client, records):
    response = client.post("/process", json={"data": "a"}, headers={"X-Request-ID": "client-7"})

    assert response.get_json()["request_id"] == "client-7"
    assert records()[0]["request_id"] == "client-7"


def test_forward_returns_the_predictors_answer(forwarding_app, predictor_server):
    client = forwarding_app.test_client()
    request_id = f"forward-check-{uuid.uuid4().hex}"  # the predictor's log is the session's
    response = client.post(
        "/process",
        json={"data": "cat image data", "forward_to_model": True},
        headers={"X-Request-ID": request_id},
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "Input logged successfully"
    assert body["request_id"] == request_id
    prediction = body["model_prediction"]
    assert prediction["prediction"]["class"] == "cat"
    assert prediction["prediction"]["input_length"] == 14
    assert prediction["message"].startswith("Predicted class: cat with ")
    assert prediction["model"]["name"] == "pet-text-classifier"
    # The predictor saw the same request id: its access log line names it.
    [line] = predictor_server.log_entries(request_id=request_id)
    assert (line["method"], line["path"], line["status"]) == ("POST", "/predict", 200)

    with forwarding_app.app_context():
        [record] = get_store().page(limit=10)
    assert record["outcome"] == "predicted"
    assert record["forward_to_model"] is True
    assert record["prediction"] == prediction


def test_forward_reuses_one_keep_alive_connection(forwarding_app, monkeypatch):
    connects = []
    original_connect = urllib3.connection.HTTPConnection.connect
    monkeypatch.setattr(
        urllib3.connection.HTTPConnection,
        "connect",
        lambda self: connects.append(self.port) or original_connect(self),
    )

    client = forwarding_app.test_client()
    for _ in range(5):
        response = client.post("/process", json={"data": "x", "forward_to_model": True})
        assert response.status_code == 200

    assert len(connects) == 1


def test_unavailable_predictor_is_503_and_the_input_is_still_recorded(client, records):
    response = client.post("/process", json={"data": "nobody home", "forward_to_model": True})

    assert_error(response, 503, "Predictor is unavailable")
    [record] = records()
    assert record["data"] == "nobody home"
    assert record["outcome"] == "predictor_unavailable"
    assert record["prediction"] is None
    assert record["request_id"] == response.headers["X-Request-ID"]


def test_the_longest_input_the_logger_takes_is_one_the_predictor_classifies(forwarding_app):
    # Each service has its own limit: the logger's must not pass the predictor's, or a
    # forwarded input it accepted would come back 502.
    longest = "cat " * (MAX_TEXT_LENGTH // 4) + "c" * (MAX_TEXT_LENGTH % 4)

    response = forwarding_app.test_client().post(
        "/process", json={"data": longest, "forward_to_model": True}
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["model_prediction"]["prediction"]["input_length"] == MAX_TEXT_LENGTH


def test_a_pinned_model_version_goes_on_to_the_predictor(forwarding_app):
    client = forwarding_app.test_client()

    pinned = client.post("/process", json={"data": "a cat", "forward_to_model": True},
                         headers={"X-Model-Version": "production"})
    unknown = client.post("/process", json={"data": "a dog", "forward_to_model": True},
                          headers={"X-Model-Version": "9.9.9"})

    assert pinned.get_json()["model_prediction"]["model"]["version"] == "1.0.0"
    assert_error(unknown, 404, "No predictor serves the model version asked for: '9.9.9'")
    with forwarding_app.app_context():
        records = get_store().page(limit=10)
    assert [record["outcome"] for record in records] == ["unknown_model_version", "predicted"]


def test_the_trace_goes_on_to_the_predictor_and_is_stored(forwarding_app, predictor_server):
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    request_id = f"traced-forward-{uuid.uuid4().hex}"
    response = forwarding_app.test_client().post(
        "/process", json={"data": "a traced cat", "forward_to_model": True},
        headers={"X-Request-ID": request_id, "traceparent":
                 f"00-{trace_id}-b7ad6b7169203331-01"},
    )

    assert response.status_code == 200
    [line] = predictor_server.log_entries(request_id=request_id)
    assert line["trace_id"] == trace_id
    with forwarding_app.app_context():
        [record] = get_store().page(limit=10)
    assert record["trace_id"] == trace_id
