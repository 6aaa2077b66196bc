"""The predictor service: classifies text with a trained model behind a JSON API."""

import socket
from functools import partial

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import routes
from .api import Api, install_request_hooks, use_gunicorn_logging
from .batching import MicroBatcher
from .config import Config
from .model import ModelHolder

HOSTNAME = socket.gethostname()


def create_app(test_config=None):
    """Create the predictor app; the model starts loading in the background."""
    app = Flask(__name__)
    app.config.from_object(Config)
    if test_config:
        app.config.update(test_config)
    # Keep the schemas' field order (the lab's order) instead of sorting keys.
    app.json.sort_keys = False
    use_gunicorn_logging()
    # Behind the gateway: trust its X-Forwarded-* headers (one proxy hop), so that the
    # docs under /logger/ or /predictor/ link to their own OpenAPI document.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_prefix=1)

    api = Api(app)
    install_request_hooks(app)
    api.register_blueprint(routes.blp)
    api.register_blueprint(routes.probes)

    batcher_factory = None
    if app.config["BATCHING"]:
        batcher_factory = partial(
            MicroBatcher,
            max_batch_size=app.config["MAX_BATCH_SIZE"],
            max_wait=app.config["MAX_BATCH_WAIT_MS"] / 1000,
        )
    holder = ModelHolder(app.config["MODEL_PATH"], batcher_factory)
    app.extensions["model"] = holder
    if app.config["LOAD_MODEL_ON_START"]:
        holder.start()

    @app.after_request
    def add_served_by(response):
        # Lets clients and tests see which replica answered behind the gateway.
        instance = app.config["INSTANCE_ID"] or f"{HOSTNAME}:{request.environ.get('SERVER_PORT')}"
        response.headers["X-Served-By"] = instance
        return response

    return app
