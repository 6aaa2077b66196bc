"""docker-compose.debug.yml over docker-compose.yml, for real: the debugging ports."""

import pytest
import requests

from tests.compose.conftest import Compose, ensure_docker_engine, published

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def debug_stack():
    """The logger and 2 predictors with the debug override; always torn down.

    Run, not read from `docker-compose config`: the config shows what the file asks for,
    only a running container shows that Docker binds it to loopback and that each replica
    gets a port of the range. It costs little: the images come from the build cache of
    the other compose tests, and the gateway, which the override leaves alone, is not
    started (the default stack's tests cover it).
    """
    ensure_docker_engine()
    stack = Compose(debug=True)
    try:
        stack("up", "-d", "--build", "--scale", "predictor=2", "logger", "predictor")
        stack.wait_healthy()
        yield stack
    finally:
        stack("down", "--remove-orphans", "-v", timeout=300)


def test_the_logger_answers_on_its_loopback_debug_port(debug_stack):
    [logger] = debug_stack("ps", "-q", "logger").split()
    port = int(debug_stack.env["LOGGER_DEBUG_PORT"])

    # Its metrics port stays unpublished.
    assert published(logger) == {"8000/tcp": {("127.0.0.1", port)}, "9100/tcp": set()}
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200


def test_each_predictor_answers_on_its_own_port_of_the_range(debug_stack):
    first, last = map(int, debug_stack.env["PREDICTOR_DEBUG_PORTS"].split("-"))
    replicas = debug_stack.running_predictors()
    assert len(replicas) == 2

    ports = set()
    for predictor in replicas:
        [(address, port)] = published(predictor)["8001/tcp"]
        assert address == "127.0.0.1" and first <= port <= last
        answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert answer.headers["X-Served-By"].split(":")[0] == predictor[:12]
        ports.add(port)
    assert len(ports) == 2
