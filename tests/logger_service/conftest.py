import pytest

from logger_service import create_app
from logger_service.store import get_store
from tests.postgres import PostgresServer
from tests.support import GunicornServer, free_port, shipped_repository_copy

STORES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc):
    """Run every test that uses a store once on each (the sqlite_only ones on SQLite)."""
    if "database" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("database", STORES[:1] if only_sqlite else STORES, indirect=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session; each test gets a database of its own."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def database(request, tmp_path):
    """The settings of a fresh, empty store of the kind the test is run for."""
    if request.param == "sqlite":
        yield {"DB_PATH": str(tmp_path / "logger.sqlite3")}
        return
    server = request.getfixturevalue("postgres_server")
    url = server.database()
    yield {"DATABASE_URL": url}
    server.drop(url)


@pytest.fixture
def make_app(database):
    """Build logger apps on a fresh database; the predictor URL defaults to a closed port."""
    apps = []

    def make(**config):
        app = create_app({
            "TESTING": True,
            **database,
            "PREDICTOR_URL": f"http://127.0.0.1:{free_port()}/predict",
            "PREDICTOR_CONNECT_TIMEOUT": 0.5,
            "PREDICTOR_READ_TIMEOUT": 0.5,
            **config,
        })
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["store"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def forwarding_app(make_app, predictor_server):
    """A logger app whose predictor is a real one, under gunicorn on a local port."""
    return make_app(PREDICTOR_URL=f"{predictor_server.url}/predict", PREDICTOR_READ_TIMEOUT=5.0)


@pytest.fixture
def store(app):
    """The app's store, as its views get it."""
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
