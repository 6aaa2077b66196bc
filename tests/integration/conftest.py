import pytest
import requests

from tests.support import LocalStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Nginx, the logger and 3 predictor replicas, as `make run` starts them."""
    with LocalStack(tmp_path_factory.mktemp("stack"), predictors=3) as running:
        yield running


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session
