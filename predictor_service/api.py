"""HTTP plumbing: one JSON error shape, JSON-only bodies, request ids, gunicorn logging.

The logger service has a twin of this module: each service folder builds alone.
"""

import json
import logging
import re
import uuid

import flask_smorest
from flask import g, request
from flask_smorest import abort
from webargs.flaskparser import FlaskParser

REQUEST_ID_HEADER = "X-Request-ID"
# Accept a caller's id only when it is short and harmless to log and to pass on.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Api(flask_smorest.Api):
    """flask-smorest's Api, with a message in every error, never a traceback."""

    def handle_http_exception(self, error):
        payload, status, headers = super().handle_http_exception(error)
        default_message = (
            "Input validation failed: see 'errors'." if "errors" in payload else error.description
        )
        ordered = {
            "code": payload["code"],
            "status": payload["status"],
            "message": payload.get("message", default_message),
        }
        if "errors" in payload:
            ordered["errors"] = payload["errors"]
        return ordered, status, headers


class JsonParser(FlaskParser):
    """webargs' parser, where JSON that Python's parser cannot hold is a 400, not a 500:
    nested too deeply (RecursionError) or an integer of over 4300 digits (ValueError)."""

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as exc:
            raise json.JSONDecodeError(f"JSON too large to parse: {exc}", "<body>", 0) from None


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading bodies with JsonParser."""

    ARGUMENTS_PARSER = JsonParser()


def install_request_hooks(app):
    """Give every request an id, and reject request bodies that are not JSON."""

    @app.before_request
    def assign_request_id():
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.before_request
    def require_json_body():
        # url_rule is None when routing failed: let that 404 or 405 through instead.
        if request.method != "POST" or request.url_rule is None:
            return
        if not request.is_json:
            abort(415, message="Content-Type must be application/json.")
        body = request.get_data(cache=True)
        if not body:
            abort(400, message="Request body is empty: send a JSON object.")
        # Werkzeug cuts a body without Content-Length (chunked) at MAX_CONTENT_LENGTH,
        # silently: refuse one that goes on past it rather than read its first MiB.
        limit = request.max_content_length
        if (request.content_length is None and limit is not None and len(body) >= limit
                and request.environ["wsgi.input"].read(1)):
            abort(413, message="The request body is larger than 1 MiB.")

    @app.after_request
    def return_request_id(response):
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response


def use_gunicorn_logging():
    """Route the application's log records to gunicorn's error log, when under gunicorn."""
    gunicorn_logger = logging.getLogger("gunicorn.error")
    if gunicorn_logger.handlers:
        root = logging.getLogger()
        root.handlers = gunicorn_logger.handlers
        root.setLevel(gunicorn_logger.level)
