"""flask-smorest as the services use it, and init_app, which sets a service's app up.

One JSON error shape for everything a client can get wrong or meet (flask-smorest's
{"code", "status", "message", "errors"}), domain errors answered with their own status,
and request bodies read by a parser that turns JSON Python cannot hold into a 400.
"""

import json

import flask_smorest
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import default_exceptions
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import ServiceError
from .gunicorn import use_gunicorn_logging
from .hooks import install_request_hooks


class Api(flask_smorest.Api):
    """flask-smorest's Api, with a message in every error, never a traceback, and each
    ServiceError answered with its own status and message."""

    def init_app(self, app, **kwargs):
        super().init_app(app, **kwargs)
        app.register_error_handler(ServiceError, self.handle_service_error)

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

    def handle_service_error(self, error):
        """Answer a domain error as abort(error.status, message=str(error)) would."""
        http_error = default_exceptions[error.status]()
        http_error.data = {"message": str(error)}  # where flask-smorest's abort() puts it
        return self.handle_http_exception(http_error)


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


def init_app(app, blueprints):
    """Set a service's app up as both run: behind the gateway, logging through gunicorn,
    with the one error shape, the request hooks, and the service's blueprints."""
    # Keep the schemas' field order (the lab's order) instead of sorting keys.
    app.json.sort_keys = False
    use_gunicorn_logging()
    # Behind the gateway: trust its X-Forwarded-* headers (one proxy hop), so that the
    # docs under /logger/ or /predictor/ link to their own OpenAPI document.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_prefix=1)

    api = Api(app)
    install_request_hooks(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    return api
