import pytest

from logger_service import create_app
from logger_service.store import get_store
from tests.support import GunicornServer, free_port, shipped_repository_copy


@pytest.fixture
def make_app(tmp_path):
    """Build logger apps on a fresh database; the predictor URL defaults to a closed port."""

    def make(**config):
        return create_app({
            "TESTING": True,
            "DB_PATH": str(tmp_path / "logger.sqlite3"),
            "PREDICTOR_URL": f"http://127.0.0.1:{free_port()}/predict",
            "PREDICTOR_CONNECT_TIMEOUT": 0.5,
            "PREDICTOR_READ_TIMEOUT": 0.5,
            **config,
        })

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def forwarding_app(make_app, predictor_server):
    """A logger app whose predictor is a real one, under gunicorn on a local port."""
    return make_app(PREDICTOR_URL=f"{predictor_server.url}/predict", PREDICTOR_READ_TIMEOUT=5.0)


@pytest.fixture
def store(app):
    """The app's LogStore, as its views get it."""
    with app.app_context():
        return get_store()


@pytest.fixture
def records(store):
    """Read back what the app recorded, newest first."""
    return lambda: store.page(limit=500)


@pytest.fixture(scope="session")
def candidate_server(tmp_path_factory):
    """A real predictor whose repository has 1.1.0 as the candidate, for the session."""
    repository = shipped_repository_copy(tmp_path_factory.mktemp("models"), candidate="1.1.0")
    env = {"PREDICTOR_MODEL_REPOSITORY": str(repository.root)}
    with GunicornServer("predictor", tmp_path_factory.mktemp("candidate"), env=env) as server:
        yield server
