import pytest

from predictor_service import create_app
from predictor_service.serving import get_models
from tests.support import shipped_repository_copy


@pytest.fixture(scope="session")
def ready_app():
    """One predictor app with its model loaded, shared by the read-only tests."""
    app = create_app({"TESTING": True, "INSTANCE_ID": "predictor-test"})
    with app.app_context():
        models = get_models()
    assert models.wait(timeout=60), models.error
    return app


@pytest.fixture
def app(ready_app):
    return ready_app


@pytest.fixture
def unloaded_app():
    """An app whose model has not started loading: the not-yet-ready state, which
    /predict does not wait for."""
    return create_app({"TESTING": True, "LOAD_MODEL_ON_START": False, "LOAD_WAIT_SECONDS": 0})


@pytest.fixture
def holder_of():
    """The ServedModels of an app, as its views get them."""

    def holder(app):
        with app.app_context():
            return get_models()

    return holder


@pytest.fixture
def repository(tmp_path):
    """A copy of the shipped repository, for a test to move its aliases: 1.0.0 production,
    1.1.0 beside it."""
    return shipped_repository_copy(tmp_path)
