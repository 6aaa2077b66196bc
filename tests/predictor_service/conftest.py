import pytest

from predictor_service import create_app


@pytest.fixture(scope="session")
def ready_app():
    """One predictor app with its model loaded, shared by the read-only tests."""
    app = create_app({"TESTING": True, "INSTANCE_ID": "predictor-test"})
    assert app.extensions["model"].wait(timeout=60), app.extensions["model"].error
    return app


@pytest.fixture
def app(ready_app):
    return ready_app


@pytest.fixture
def unloaded_app():
    """An app whose model has not started loading: the not-yet-ready state."""
    return create_app({"TESTING": True, "LOAD_MODEL_ON_START": False})
