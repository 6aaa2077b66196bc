import pytest

from tests.support import StackUnderTest


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Nginx, the logger and 2 predictor replicas, as `make run` starts them.

    Shared by the gateway fuzzing and the hostile-input table. Without the gateway's
    rate limit, as in tests/integration: fuzzing sends requests as fast as the stack
    answers, and every one must reach the services (tests/integration/test_rate_limit.py
    checks the limit). 2 replicas, not 3, keep the run light on 2 cores while still
    going through the pool.
    """
    stack = StackUnderTest(tmp_path_factory.mktemp("fuzz-stack"), predictors=2,
                           rate_limit_enabled=False)
    with stack as running:
        yield running
