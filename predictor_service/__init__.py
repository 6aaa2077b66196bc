"""The predictor service: classifies text with a trained model behind a JSON API."""

import socket
from functools import partial

from flask import Flask, request

from servicekit.api import init_app
from servicekit.headers import SERVED_BY_HEADER

from . import inference_protocol, routes
from .admission import Admission
from .batching import MicroBatcher
from .config import Config
from .model import ModelHolder
from .repository import Repository
from .serving import ArtifactSource, RepositorySource, ServedModels

HOSTNAME = socket.gethostname()
INFERENCE_MODES = ("compiled", "pipeline")


def create_app(test_config=None):
    """Create the predictor app; its model versions start loading in the background."""
    app = Flask(__name__)
    app.config.from_object(Config)
    if test_config:
        app.config.update(test_config)
    if app.config["INFERENCE"] not in INFERENCE_MODES:
        raise ValueError(f"PREDICTOR_INFERENCE must be one of {', '.join(INFERENCE_MODES)},"
                         f" not {app.config['INFERENCE']!r}")
    init_app(app, [routes.blp, routes.probes])
    app.register_blueprint(inference_protocol.bp)

    batcher_factory = None
    if app.config["BATCHING"]:
        batcher_factory = partial(
            MicroBatcher,
            max_texts=app.config["MICRO_BATCH_MAX_TEXTS"],
            max_wait=app.config["MICRO_BATCH_MAX_WAIT_MS"] / 1000,
            max_chars=app.config["MICRO_BATCH_MAX_CHARS"],
        )
    if app.config["MODEL_PATH"]:
        source = ArtifactSource(app.config["MODEL_PATH"])
    else:
        source = RepositorySource(Repository(app.config["MODEL_REPOSITORY"]))
    admission = Admission(app.config["MAX_QUEUED_CHARS"])
    models = ServedModels(
        source,
        lambda artifact: ModelHolder(artifact, batcher_factory, admission,
                                    app.config["INFERENCE"] == "compiled"),
        app.config["REPOSITORY_POLL_SECONDS"],
    )
    app.extensions["models"] = models  # views reach it through serving.get_models()
    if app.config["LOAD_MODEL_ON_START"]:
        models.start()

    @app.after_request
    def add_served_by(response):
        # Lets clients and tests see which replica answered behind the gateway.
        instance = app.config["INSTANCE_ID"] or f"{HOSTNAME}:{request.environ.get('SERVER_PORT')}"
        response.headers[SERVED_BY_HEADER] = instance
        return response

    return app
