import pytest

from tests.support import assert_error


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "data", "Missing data for required field."),
        ({"forward_to_model": True}, "data", "Missing data for required field."),
        ({"data": ""}, "data", "Length must be between 1 and 10000."),
        ({"data": "x" * 10_001}, "data", "Length must be between 1 and 10000."),
        ({"data": 7}, "data", "Not a valid string."),
        ({"data": None}, "data", "Field may not be null."),
        ({"data": {"nested": "object"}}, "data", "Not a valid string."),
        ({"data": "a", "forward_to_model": "yes"}, "forward_to_model", "Not a valid boolean."),
        ({"data": "a", "forward_to_model": "true"}, "forward_to_model", "Not a valid boolean."),
        ({"data": "a", "forward_to_model": 1}, "forward_to_model", "Not a valid boolean."),
        ({"data": "a", "forward_to_model": None}, "forward_to_model", "Field may not be null."),
        ({"data": "a", "model": "x"}, "model", "Unknown field."),
    ],
)
def test_invalid_fields_are_422_with_per_field_messages(client, records, body, field, message):
    response = client.post("/process", json=body)

    errors = assert_error(response, 422)["errors"]["json"]
    assert message in errors[field]
    assert records() == []  # nothing invalid is recorded


def test_longest_valid_input_is_accepted(client, records):
    assert client.post("/process", json={"data": "x" * 10_000}).status_code == 200
    assert len(records()[0]["data"]) == 10_000


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"null"])
def test_json_that_is_not_an_object_is_422(client, body):
    assert_error(client.post("/process", data=body, content_type="application/json"), 422)


@pytest.mark.parametrize("body", [b'{"data": "a"', b"{data: 1}", b"\xff"])
def test_malformed_json_is_400(client, body):
    response = client.post("/process", data=body, content_type="application/json")

    assert assert_error(response, 400)["errors"] == {"json": ["Invalid JSON body."]}


def test_empty_body_is_400(client):
    assert_error(client.post("/process", data=b"", content_type="application/json"), 400, "empty")


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", None])
def test_body_that_is_not_json_is_415(client, content_type):
    response = client.post("/process", data='{"data": "a"}', content_type=content_type)

    assert_error(response, 415, "application/json")


def test_body_over_one_mebibyte_is_413(client, records):
    body = '{"data": "' + "x" * (1024 * 1024) + '"}'

    assert_error(client.post("/process", data=body, content_type="application/json"), 413)
    assert records() == []


@pytest.mark.parametrize(
    "query, field",
    [("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"),
     ("before_id=0", "before_id")],
)
def test_invalid_logs_query_is_422(client, query, field):
    errors = assert_error(client.get(f"/logs?{query}"), 422)["errors"]["query"]

    assert field in errors


def test_unknown_logs_query_parameters_are_422_each_named(client):
    response = client.get("/logs?limt=5&limit=2&page=3")

    assert assert_error(response, 422)["errors"] == {
        "query": {"limt": ["Unknown field."], "page": ["Unknown field."]}
    }
