import pytest

from predictor_service import create_app
from predictor_service.model import get_model_holder


@pytest.fixture(scope="session")
def ready_app():
    """One predictor app with its model loaded, shared by the read-only tests."""
    app = create_app({"TESTING": True, "INSTANCE_ID": "predictor-test"})
    with app.app_context():
        holder = get_model_holder()
    assert holder.wait(timeout=60), holder.error
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
    """The ModelHolder of an app, as its views get it."""

    def holder(app):
        with app.app_context():
            return get_model_holder()

    return holder
