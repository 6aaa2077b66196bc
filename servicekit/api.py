"""flask-smorest as the services use it, and init_app, which sets a service's app up.

One JSON error shape for everything a client can get wrong or meet (flask-smorest's
{"code", "status", "message", "errors"}), domain errors answered with their own status,
request bodies read by a parser that turns JSON Python cannot hold into a 400, and
query strings where a repeated parameter is a 422.
"""

import functools
import json

import flask_smorest
import marshmallow as ma
from flask.json.provider import DefaultJSONProvider
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import default_exceptions
from werkzeug.middleware.proxy_fix import ProxyFix

from . import docs
from .errors import ServiceError
from .gunicorn import use_gunicorn_logging
from .hooks import install_request_hooks
from .metrics import install_request_metrics


class Api(flask_smorest.Api):
    """flask-smorest's Api, with a message in every error, never a traceback, and each
    ServiceError answered with its own status and message."""

    def init_app(self, app, **kwargs):
        super().init_app(app, **kwargs)
        app.register_error_handler(ServiceError, self.handle_service_error)

    def handle_http_exception(self, error):
        payload, status, headers = super().handle_http_exception(error)
        # flask-smorest drops the headers Werkzeug gives its exceptions (Allow on a 405,
        # Retry-After, WWW-Authenticate): keep them, all but its HTML Content-Type.
        headers = {
            **{name: value for name, value in error.get_headers() if name != "Content-Type"},
            **(headers or {}),  # webargs passes None for none
        }
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

    def handle_service_error(self, error):
        """Answer a domain error as abort(error.status, message=str(error)) would,
        with the error's headers."""
        http_error = default_exceptions[error.status]()
        # Where flask-smorest's abort() puts them.
        http_error.data = {"message": str(error), "headers": dict(error.headers)}
        return self.handle_http_exception(http_error)


class JsonParser(FlaskParser):
    """webargs' parser, where JSON that Python's parser cannot hold is a 400, not a 500:
    nested too deeply (RecursionError) or an integer of over 4300 digits (ValueError);
    and where a query parameter given twice is a 422 instead of its first value."""

    def load_querystring(self, req, schema):
        args = super().load_querystring(req, schema)
        repeated = {
            name: ["Given more than once: send this parameter once."]
            for name in req.args
            if name not in args.multiple_keys and len(req.args.getlist(name)) > 1
        }
        if repeated:
            raise ma.ValidationError(repeated)  # webargs files it under "query"
        return args

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as exc:
            raise json.JSONDecodeError(f"JSON too large to parse: {exc}", "<body>", 0) from None


class Utf8JsonProvider(DefaultJSONProvider):
    """Flask's JSON, with text other than ASCII written as UTF-8 rather than \\u escapes
    (an emoji is 4 bytes, not 12), and schema order kept instead of sorted keys.

    Text with a lone surrogate, which UTF-8 cannot hold, is still escaped: an error
    can name a field of the request, and a field's name is not validated.
    """

    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj, **kwargs):
        text = super().dumps(obj, **kwargs)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = super().dumps(obj, **{**kwargs, "ensure_ascii": True})
        return text


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading bodies with JsonParser."""

    ARGUMENTS_PARSER = JsonParser()


def init_app(app, blueprints):
    """Set a service's app up as both run: behind the gateway, logging through gunicorn,
    with the one error shape, request metrics, the request hooks, and the service's
    blueprints."""
    # UTF-8 answers, in the schemas' field order (the lab's order), not sorted keys.
    app.json = Utf8JsonProvider(app)
    # Flask asks, of each hook and view at every request, whether it is a coroutine
    # function (11 inspect calls per /predict, 3 % of its CPU): ask once per function.
    app.ensure_sync = functools.lru_cache(maxsize=1024)(app.ensure_sync)
    use_gunicorn_logging()
    # Behind the gateway: trust its X-Forwarded-* headers (one proxy hop), so that the
    # docs under /logger/ or /predictor/ link to their own OpenAPI document.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_prefix=1)

    api = Api(app)
    docs.init_app(app)
    # First: a request that the hooks below refuse (a 415, say) is counted too.
    install_request_metrics(app)
    install_request_hooks(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    return api
