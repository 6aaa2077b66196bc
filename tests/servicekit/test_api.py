"""servicekit's app side on an app of its own: domain errors and limits in the one error shape."""

import io

import pytest
from flask import Flask

from servicekit.api import Blueprint, init_app
from servicekit.config import ApiConfig
from servicekit.errors import ServiceError
from servicekit.hooks import in_words
from tests.support import assert_error


class Overloaded(ServiceError):
    status = 503


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
