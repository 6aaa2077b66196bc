import pytest

from tests.support import GunicornServer


@pytest.fixture(scope="session")
def predictor_server(tmp_path_factory):
    """A real predictor, under gunicorn on a loopback port, for the whole session."""
    with GunicornServer("predictor", tmp_path_factory.mktemp("predictor")) as server:
        yield server

