"""Every route of the gateway, through a real Nginx to real gunicorn services."""

import json
import re

import pytest

from tests.support import served_by_port


def error_body(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == status and body["status"] and body["message"]
    return body


def test_predict_reaches_the_pool(stack, http):
    response = http.post(f"{stack.url}/predict", json={"input": "cat image data"})

    assert response.status_code == 200
    assert response.json()["prediction"]["class"] == "cat"
    assert served_by_port(response) in stack.predictor_ports


def test_process_reaches_the_logger_which_forwards_through_the_gateway(stack, http):
    response = http.post(f"{stack.url}/process", json={"data": "goldfish in a tank",
                                                     "forward_to_model": True})

    assert response.status_code == 200
    assert response.json()["model_prediction"]["prediction"]["class"] == "fish"


def test_logs_reach_the_logger(stack, http):
    request_id = http.post(f"{stack.url}/process", json={"data": "log me"}).json()["request_id"]

    records = http.get(f"{stack.url}/logs?limit=5").json()["records"]

    assert records[0]["request_id"] == request_id


def test_health_is_answered_by_the_gateway_itself(stack, http):
    response = http.get(f"{stack.url}/health")

    assert response.json() == {"status": "ok", "service": "gateway"}
    assert "X-Served-By" not in response.headers


@pytest.mark.parametrize("service, title", [("logger", "Logger service"),
                                            ("predictor", "Predictor service")])
def test_each_services_own_pages_are_reachable_under_its_prefix(stack, http, service, title):
    assert http.get(f"{stack.url}/{service}/ready").json()["status"] == "ready"
    assert http.get(f"{stack.url}/{service}/openapi.json").json()["info"]["title"] == title
    docs = http.get(f"{stack.url}/{service}/docs").text
    # Swagger UI behind the prefix must load the document from under the prefix too.
    assert f'"/{service}/openapi.json"' in docs


def test_unknown_path_is_404_json_from_nginx(stack, http):
    response = http.get(f"{stack.url}/admin")

    assert error_body(response, 404)["message"] == "No route for this path at the gateway."
    assert "nginx" not in response.text.lower()


@pytest.mark.parametrize(
    "method, path, allow",
    [("GET", "/predict", "POST"), ("PUT", "/process", "POST"),
     ("POST", "/logs", "GET, HEAD"), ("DELETE", "/health", "GET, HEAD")],
)
def test_wrong_method_is_405_json_from_nginx(stack, http, method, path, allow):
    response = http.request(method, f"{stack.url}{path}")

    error_body(response, 405)
    assert response.headers["Allow"] == allow


def test_body_over_one_mebibyte_is_413_json_from_nginx(stack, http):
    body = json.dumps({"input": "x" * (2 * 1024 * 1024)})

    response = http.post(f"{stack.url}/predict", data=body,
                         headers={"Content-Type": "application/json"})

    assert "1 MiB" in error_body(response, 413)["message"]


def test_validation_errors_pass_through_from_the_services(stack, http):
    response = http.post(f"{stack.url}/process", json={"forward_to_model": True})

    assert error_body(response, 422)["errors"] == {
        "json": {"data": ["Missing data for required field."]}
    }


def test_request_id_travels_from_client_to_logger_to_predictor_and_back(stack, http):
    response = http.post(
        f"{stack.url}/process",
        json={"data": "a rabbit in its hutch", "forward_to_model": True},
        headers={"X-Request-ID": "trace-me-42"},
    )

    assert response.headers["X-Request-ID"] == "trace-me-42"
    assert response.json()["request_id"] == "trace-me-42"
    assert http.get(f"{stack.url}/logs?limit=1").json()["records"][0]["request_id"] == "trace-me-42"
    # Both hops through Nginx, and the replica that answered, logged the same id.
    gateway_lines = [json.loads(line) for line in stack.log("nginx").splitlines()
                     if "trace-me-42" in line]
    assert sorted(line["uri"] for line in gateway_lines) == ["/predict", "/process"]
    [predict_line] = [line for line in gateway_lines if line["uri"] == "/predict"]
    port = predict_line["upstream_addr"].rsplit(":", 1)[1]
    assert '"request_id": "trace-me-42"' in stack.log(f"predictor-{port}")
    assert '"request_id": "trace-me-42"' in stack.log("logger")


def test_gateway_generates_a_request_id_when_the_client_sends_none_or_a_bad_one(stack, http):
    for headers in ({}, {"X-Request-ID": "spaces are not allowed"}):
        response = http.post(f"{stack.url}/process", json={"data": "x"}, headers=headers)
        request_id = response.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert response.json()["request_id"] == request_id


def log_entries(text):
    """The JSON lines of a log."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_valid_traceparent_travels_to_the_logger_and_the_predictor_and_is_stored(stack, http):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = http.post(
        f"{stack.url}/process", json={"data": "a traced hamster", "forward_to_model": True},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "X-Request-ID": "traced-1"},
    )

    assert response.status_code == 200
    # The gateway's answer names the same trace, with a parent id of its own.
    version, returned_trace, parent, flags = response.headers["traceparent"].split("-")
    assert (version, returned_trace, flags) == ("00", trace_id, "01")
    assert re.fullmatch(r"[0-9a-f]{16}", parent) and parent != "00f067aa0ba902b7"
    [record] = [r for r in http.get(f"{stack.url}/logs?limit=20").json()["records"]
                if r["request_id"] == "traced-1"]
    assert record["trace_id"] == trace_id
    gateway = [entry for entry in log_entries(stack.log("nginx"))
               if entry["request_id"] == "traced-1"]
    assert {entry["trace_id"] for entry in gateway} == {trace_id}
    assert sorted(entry["uri"] for entry in gateway) == ["/predict", "/process"]
    port = next(entry for entry in gateway if entry["uri"] == "/predict")["upstream_addr"] \
        .rsplit(":", 1)[1]
    for log in (stack.log("logger"), stack.log(f"predictor-{port}")):
        [access] = [entry for entry in log_entries(log) if entry.get("request_id") == "traced-1"
                    and entry["logger"] == "gunicorn.access"]
        assert access["trace_id"] == trace_id


@pytest.mark.parametrize("traceparent", [
    None, "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
])
def test_the_gateway_starts_a_trace_for_a_missing_or_invalid_traceparent(stack, http,
                                                                          traceparent):
    headers = {"traceparent": traceparent} if traceparent else {}
    response = http.post(f"{stack.url}/process", json={"data": "untraced"}, headers=headers)

    version, trace_id, parent, flags = response.headers["traceparent"].split("-")
    assert version == "00" and flags == "00"
    assert trace_id == response.headers["X-Request-ID"]  # a new trace: the request's id
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and re.fullmatch(r"[0-9a-f]{16}", parent)
    [record] = [r for r in http.get(f"{stack.url}/logs?limit=20").json()["records"]
                if r["request_id"] == trace_id]
    assert record["trace_id"] == trace_id


def test_the_gateways_own_errors_carry_the_trace_too(stack, http):
    response = http.get(f"{stack.url}/nowhere")

    assert response.status_code == 404
    assert response.headers["traceparent"].split("-")[1] == response.headers["X-Request-ID"]
