"""The logger app: its routes, its store, its clients of the predictor pool."""

from flask import Flask

from servicekit.api import init_app

from . import routes
from .client import PredictorClient
from .config import Config
from .experiments import TrainingDistributions
from .shadow import ShadowRecorder
from .store import StorageUnavailable, open_store


def create_app(test_config=None):
    """Create the logger app, its database schema and its predictor client."""
    app = Flask(__name__)
    app.config.from_object(Config)
    if test_config:
        app.config.update(test_config)
    init_app(app, [routes.blp, routes.probes])

    store = open_store(app.config)
    try:
        store.create_schema()
    except StorageUnavailable as exc:
        # Not fatal: until the database can be written (a volume mounted read-only, a
        # full disk, PostgreSQL not up yet), /ready says why and /process refuses with
        # 503; the first write that succeeds creates the schema.
        app.logger.error("the database is not writable: %s", exc.reason)
    # Views reach these through store.get_store(), client.get_predictor_client(),
    # shadow.get_shadow_recorder() and experiments.get_training_distributions().
    app.extensions["store"] = store
    app.extensions["shadow"] = ShadowRecorder(
        app.config["SHADOW_URL"], store,
        connect_timeout=app.config["PREDICTOR_CONNECT_TIMEOUT"],
        read_timeout=app.config["SHADOW_READ_TIMEOUT"],
        max_queued=app.config["SHADOW_MAX_QUEUED"],
    )
    app.extensions["training_distributions"] = TrainingDistributions(app.config["MODELS_URL"])
    app.extensions["predictor"] = PredictorClient(
        app.config["PREDICTOR_URL"],
        connect_timeout=app.config["PREDICTOR_CONNECT_TIMEOUT"],
        read_timeout=app.config["PREDICTOR_READ_TIMEOUT"],
        pool_size=app.config["PREDICTOR_POOL_SIZE"],
        breaker_fail_max=app.config["PREDICTOR_BREAKER_FAIL_MAX"],
        breaker_reset_timeout=app.config["PREDICTOR_BREAKER_RESET_TIMEOUT"],
        in_flight=app.config["FORWARDS_IN_FLIGHT"],
        batch_max_texts=app.config["FORWARD_BATCH_MAX_TEXTS"],
        batch_max_chars=app.config["FORWARD_BATCH_MAX_CHARS"],
    )
    return app
