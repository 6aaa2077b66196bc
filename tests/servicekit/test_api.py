"""servicekit's app side on an app of its own: domain errors and limits in the one error shape."""

import io
import json

import marshmallow as ma
import pytest
from flask import Flask, g

from servicekit.api import Blueprint, init_app
from servicekit.config import ApiConfig
from servicekit.errors import ServiceError
from servicekit.fields import QueryInteger
from servicekit.hooks import in_words
from tests.support import assert_error


class Overloaded(ServiceError):
    status = 503


class RetryLater(ServiceError):
    status = 503
    headers = {"Retry-After": "7"}


class PageQuery(ma.Schema):
    size = QueryInteger()
    tags = ma.fields.List(ma.fields.String())  # a list: the one kind that may repeat


@pytest.fixture
def app():
    app = Flask(__name__)
    app.config.from_object(ApiConfig)
    app.config.update(TESTING=True, API_TITLE="Test service", API_VERSION="0.1.0",
                      MAX_CONTENT_LENGTH=64 * 1024)
    blp = Blueprint("test", __name__)

    @blp.post("/echo")
    def echo():
        return {"echoed": True}

    @blp.get("/overloaded")
    def overloaded():
        raise Overloaded("Too busy: try again later.")

    @blp.get("/retry-later")
    def retry_later():
        raise RetryLater("Busy: try again in 7 s.")

    @blp.get("/page")
    @blp.arguments(PageQuery(), location="query")
    def page(query):
        return {"query": query}

    @blp.get("/text")
    def text():
        return {"text": "🐱 café"}

    @blp.get("/lone-surrogate")
    def lone_surrogate():
        # As an error would that names a request's unknown field "\ud800".
        return {"field": "a\ud800b", "text": "🐱"}

    @blp.get("/client")
    def client_id():
        return {"client_id": g.client_id}

    init_app(app, [blp])
    return app


def test_a_service_error_is_answered_with_its_own_status_and_message(client):
    response = client.get("/overloaded")

    assert_error(response, 503)
    assert response.get_json() == {
        "code": 503, "status": "Service Unavailable", "message": "Too busy: try again later.",
    }
    assert response.headers["X-Request-ID"]  # it went through the request hooks


def test_a_chunked_body_past_the_limit_is_413_naming_the_configured_limit(client):
    body = b'{"text": "' + b"a" * (100 * 1024) + b'"}'

    # As gunicorn passes a chunked body: no Content-Length, the input marked as ending.
    response = client.post("/echo", input_stream=io.BytesIO(body), content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})

    assert_error(response, 413)
    assert response.get_json()["message"] == "The request body is larger than 64 KiB."


@pytest.mark.parametrize("size, words", [
    (1024 * 1024, "1 MiB"), (3 * 1024 * 1024, "3 MiB"), (64 * 1024, "64 KiB"),
    (1536 * 1024, "1536 KiB"), (1000, "1000 bytes"),
])
def test_sizes_are_written_as_people_write_them(size, words):
    assert in_words(size) == words



def test_a_service_error_carries_its_headers(client):
    response = client.get("/retry-later")

    assert_error(response, 503, "Busy")
    assert response.headers["Retry-After"] == "7"


def test_a_service_error_without_headers_adds_none(client):
    assert "Retry-After" not in client.get("/overloaded").headers


@pytest.mark.parametrize("method, path, allowed", [
    ("get", "/echo", {"POST", "OPTIONS"}),
    ("post", "/overloaded", {"GET", "HEAD", "OPTIONS"}),
    ("delete", "/page", {"GET", "HEAD", "OPTIONS"}),
])
def test_405_says_which_methods_the_route_allows(client, method, path, allowed):
    response = getattr(client, method)(path)

    assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert response.headers["Content-Type"] == "application/json"  # not Werkzeug's HTML


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "gzip, identity", "x"])
def test_a_body_with_a_content_encoding_is_415(client, encoding):
    response = client.post("/echo", json={"text": "plain"}, headers={"Content-Encoding": encoding})

    assert_error(response, 415, "Content-Encoding")
    assert response.headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("headers", [{}, {"Content-Encoding": "identity"},
                                     {"Content-Encoding": " Identity "}])
def test_a_body_without_a_content_encoding_is_read(client, headers):
    response = client.post("/echo", json={"text": "plain"}, headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_repeated_query_parameter_is_422_naming_it(client):
    response = client.get("/page?size=1&size=2")

    assert assert_error(response, 422)["errors"] == {
        "query": {"size": ["Given more than once: send this parameter once."]}
    }


def test_a_list_parameter_may_repeat(client):
    response = client.get("/page?size=3&tags=a&tags=b")

    assert response.get_json() == {"query": {"size": 3, "tags": ["a", "b"]}}


@pytest.mark.parametrize("value", ["%EF%BC%91", "%D9%A5", "1_0", "%2B5", "%205", "5%20", "0x10",
                                   "1.0", "1e3", "", "ten"])
def test_a_query_integer_is_ascii_digits_only(client, value):
    response = client.get(f"/page?size={value}")

    errors = assert_error(response, 422)["errors"]["query"]
    assert errors == {"size": ["Not a valid integer: use ASCII digits (0-9) only."]}


@pytest.mark.parametrize("value, number", [
    ("5", 5), ("-5", -5), ("007", 7), ("9" * 30, 10**30 - 1),
])
def test_a_query_integer_of_ascii_digits_is_read(client, value, number):
    assert client.get(f"/page?size={value}").get_json() == {"query": {"size": number}}


def test_json_answers_carry_text_as_utf8_not_escapes(client):
    response = client.get("/text")

    assert response.headers["Content-Type"] == "application/json"  # JSON's default: UTF-8
    assert "🐱 café".encode() in response.data
    assert b"\\u" not in response.data
    assert json.loads(response.data) == {"text": "🐱 café"}


def test_json_with_a_lone_surrogate_is_still_answered_escaped(client):
    response = client.get("/lone-surrogate")

    assert response.status_code == 200
    assert response.data.isascii()
    assert json.loads(response.data) == {"field": "a\ud800b", "text": "🐱"}


@pytest.mark.parametrize("header, client_id", [
    (None, None), ("alice", "alice"), ("team-7.key_2:prod", "team-7.key_2:prod"),
    ("a" * 64, "a" * 64), ("a" * 65, None), ("", None), ("bob smith", None),
    ("bob\tsmith", None), ("<script>", None), ("bob,eve", None),
])
def test_the_client_id_is_taken_from_the_gateway_only_when_sane(client, header, client_id):
    headers = {} if header is None else {"X-Client-Id": header}

    assert client.get("/client", headers=headers).get_json() == {"client_id": client_id}
