import pytest
import requests

from tests.support import StackUnderTest


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Nginx, the logger and 3 predictor replicas, as `make run` starts them.

    Without the rate limit: these tests drive load (test_rate_limit.py checks the limit).
    """
    stack = StackUnderTest(tmp_path_factory.mktemp("stack"), predictors=3,
                           rate_limit_enabled=False)
    with stack as running:
        yield running


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session
