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


def test_a_body_marked_gzip_is_415_and_not_recorded(client, records):
    response = client.post("/process", json={"data": "plain, not gzip"},
                           headers={"Content-Encoding": "gzip"})

    assert_error(response, 415, "Content-Encoding")
    assert records() == []


def test_a_lone_surrogate_is_422_and_not_recorded(client, records):
    response = client.post("/process", data=b'{"data": "a\\ud800b"}',
                           content_type="application/json")

    errors = assert_error(response, 422)["errors"]["json"]
    assert errors == {"data": ["Must be valid Unicode text: no lone surrogate."]}
    assert records() == []


def test_a_nul_character_is_422_and_not_recorded(client, records):
    response = client.post("/process", data=b'{"data": "a\\u0000b"}',
                           content_type="application/json")

    errors = assert_error(response, 422)["errors"]["json"]
    assert errors == {"data": ["Must not contain the NUL character (U+0000)."]}
    assert records() == []


@pytest.mark.parametrize("query", [
    "limit=%EF%BC%91",  # a full-width 1
    "limit=1_0", "limit=%2B5", "limit=%205", "limit=5%20", "before_id=%EF%BC%91",
])
def test_logs_query_integers_are_ascii_digits_only(client, query):
    post_one(client)
    field = query.split("=")[0]

    errors = assert_error(client.get(f"/logs?{query}"), 422)["errors"]["query"]

    assert errors == {field: ["Not a valid integer: use ASCII digits (0-9) only."]}


@pytest.mark.parametrize("query, message", [
    ("limit=0", "Must be greater than or equal to 1 and less than or equal to 500."),
    ("limit=-5", "Must be greater than or equal to 1 and less than or equal to 500."),
    ("limit=501", "Must be greater than or equal to 1 and less than or equal to 500."),
])
def test_logs_limit_out_of_range_keeps_its_message(client, query, message):
    assert assert_error(client.get(f"/logs?{query}"), 422)["errors"]["query"] == {
        "limit": [message]
    }


@pytest.mark.parametrize("query, repeated", [
    ("limit=1&limit=2", ["limit"]),
    ("limit=1&limit=1", ["limit"]),
    ("before_id=9&limit=2&before_id=5&limit=2", ["before_id", "limit"]),
])
def test_a_repeated_logs_parameter_is_422_naming_it(client, query, repeated):
    errors = assert_error(client.get(f"/logs?{query}"), 422)["errors"]["query"]

    assert errors == {name: ["Given more than once: send this parameter once."]
                      for name in repeated}


def post_one(client):
    assert client.post("/process", json={"data": "one"}).status_code == 200


def test_an_unknown_field_named_by_a_lone_surrogate_is_422_json(client):
    response = client.post("/process", data=b'{"data": "a", "\\udc00": 1}',
                           content_type="application/json")

    assert assert_error(response, 422)["errors"]["json"] == {"\udc00": ["Unknown field."]}
