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


def test_a_body_marked_gzip_is_415(client):
    response = client.post("/predict", json={"input": "a cat"},
                           headers={"Content-Encoding": "gzip"})

    assert_error(response, 415, "Content-Encoding")


@pytest.mark.parametrize("body, errors", [
    (b'{"input": "a\\ud800b"}', {"input": ["Must be valid Unicode text: no lone surrogate."]}),
    (b'{"inputs": ["ok", "\\udfff", "fine"]}',
     {"inputs": {"1": ["Must be valid Unicode text: no lone surrogate."]}}),
])
def test_a_lone_surrogate_is_422_as_in_the_logger(client, body, errors):
    response = client.post("/predict", data=body, content_type="application/json")

    assert assert_error(response, 422)["errors"]["json"] == errors


def test_a_surrogate_pair_is_one_valid_character(client):
    response = client.post("/predict", data=b'{"input": "\\ud83d\\udc31"}',
                           content_type="application/json")

    assert response.status_code == 200
    assert response.get_json()["prediction"]["input_length"] == 1  # one cat emoji


@pytest.mark.parametrize("body, field, total", [
    ({"inputs": ["a" * 50, "b" * 50, "c" * 24]}, "inputs", 124),
    ({"input": "a" * 124}, "input", 124),
])
def test_more_characters_than_the_configured_limit_are_422_naming_it(
        app, client, monkeypatch, body, field, total):
    monkeypatch.setitem(app.config, "MAX_REQUEST_CHARS", 123)  # read from the config

    errors = assert_error(client.post("/predict", json=body), 422)["errors"]["json"]

    assert errors == {field: [f"Too much text for one request: {total} characters, at most 123 "
                              "in all: send fewer or shorter texts per request."]}


@pytest.mark.parametrize("body", [{"inputs": ["a" * 50, "b" * 50, "c" * 23]}, {"input": "a" * 123}])
def test_characters_up_to_the_limit_are_classified(app, client, monkeypatch, body):
    monkeypatch.setitem(app.config, "MAX_REQUEST_CHARS", 123)

    assert client.post("/predict", json=body).status_code == 200


def test_the_default_limit_takes_the_longest_single_input_and_refuses_attack_sizes(app, client):
    longest = client.post("/predict", json={"input": "x" * 10_000})
    heavy = client.post("/predict", json={"inputs": ["x" * 10_000] * 100})

    assert longest.status_code == 200
    limit = app.config["MAX_REQUEST_CHARS"]
    assert f"at most {limit} in all" in assert_error(heavy, 422)["errors"]["json"]["inputs"][0]
