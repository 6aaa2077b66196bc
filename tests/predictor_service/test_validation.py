import pytest

from tests.support import assert_error


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "input", "Missing data for required field."),
        ({"input": ""}, "input", "Length must be between 1 and 10000."),
        ({"input": "x" * 10_001}, "input", "Length must be between 1 and 10000."),
        ({"input": 42}, "input", "Not a valid string."),
        ({"input": None}, "input", "Field may not be null."),
        ({"input": ["a"]}, "input", "Not a valid string."),
        ({"input": "a", "extra": 1}, "extra", "Unknown field."),
        ({"inputs": []}, "inputs", "Length must be between 1 and 256."),
        ({"inputs": ["a"] * 257}, "inputs", "Length must be between 1 and 256."),
        ({"inputs": "a"}, "inputs", "Not a valid list."),
        ({"input": "a", "inputs": ["b"]}, "_schema", "Send either 'input' or 'inputs', not both."),
    ],
)
def test_invalid_fields_are_422_with_per_field_messages(client, body, field, message):
    response = client.post("/predict", json=body)

    errors = assert_error(response, 422)["errors"]["json"]
    assert message in errors[field]


def test_invalid_batch_items_are_reported_by_index(client):
    response = client.post("/predict", json={"inputs": ["ok", "", 3]})

    errors = assert_error(response, 422)["errors"]["json"]["inputs"]
    assert errors == {
        "1": ["Length must be between 1 and 10000."],
        "2": ["Not a valid string."],
    }


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_422(client, body):
    response = client.post("/predict", data=body, content_type="application/json")

    assert_error(response, 422)


@pytest.mark.parametrize(
    "body", [b'{"input": ', b"{'input': 'a'}", b"\xff\xfe", b'{"input": "a"} x']
)
def test_malformed_json_is_400(client, body):
    response = client.post("/predict", data=body, content_type="application/json")

    assert assert_error(response, 400)["errors"] == {"json": ["Invalid JSON body."]}


def test_empty_body_is_400(client):
    response = client.post("/predict", data=b"", content_type="application/json")

    assert_error(response, 400, "empty")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_body_that_is_not_json_is_415(client, content_type):
    response = client.post("/predict", data='{"input": "a"}', content_type=content_type)

    assert_error(response, 415, "application/json")


def test_body_over_one_mebibyte_is_413(client):
    body = '{"input": "' + "x" * (1024 * 1024) + '"}'
    response = client.post("/predict", data=body, content_type="application/json")

    assert_error(response, 413)
