import os
import subprocess
import time
import uuid

import pytest
import requests

from tests.support import ROOT, free_port, free_port_range

PREPARE = ROOT.parent / "shared" / "container-base" / "prepare"


def docker_answers():
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_docker_engine():
    """Start a Docker engine (and the base images) with the shared script when none answers."""
    if docker_answers():
        return
    assert PREPARE.exists(), f"no Docker engine answers, and {PREPARE} is missing"
    subprocess.run([str(PREPARE)], check=True, timeout=900)
    assert docker_answers(), "prepare ran, yet no Docker engine answers"


class Compose:
    """docker-compose under a unique project name, with its ports on free loopback ports."""

    def __init__(self):
        self.project = f"mlgw-test-{uuid.uuid4().hex[:8]}"
        self.gateway_port = free_port()
        predictor_ports = free_port_range(10)
        self.env = {
            **os.environ,
            "GATEWAY_PUBLISH_PORT": str(self.gateway_port),
            "LOGGER_DEBUG_PORT": str(free_port()),
            "PREDICTOR_DEBUG_PORTS": f"{predictor_ports}-{predictor_ports + 9}",
            # The test drives load from one address: the per-client limit would answer 429.
            "GATEWAY_RATE_LIMIT_ENABLED": "off",
        }
        self.url = f"http://127.0.0.1:{self.gateway_port}"

    def __call__(self, *args, timeout=900):
        result = subprocess.run(
            ["docker-compose", "-p", self.project, *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def predictor_hostnames(self):
        """Hostnames of the running predictor containers: their ids' first 12 characters."""
        ids = self("ps", "-q", "predictor").split()
        running = []
        for container_id in ids:
            state = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Running}}", container_id],
                capture_output=True, text=True,
            ).stdout.strip()
            if state == "true":
                running.append(container_id[:12])
        return set(running)

    def wait_healthy(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", *self("ps", "-q").split()],
                capture_output=True, text=True,
            ).stdout.split()
            if states and all(state == "healthy" for state in states):
                return
            time.sleep(1)
        raise AssertionError(f"not healthy after {timeout}s:\n{self('ps')}\n{self('logs', '--tail', '30')}")


@pytest.fixture(scope="module")
def compose():
    """The stack from docker-compose.yml with 3 predictors; always torn down."""
    ensure_docker_engine()
    stack = Compose()
    try:
        stack("build")
        stack("up", "-d", "--scale", "predictor=3")
        stack.wait_healthy()
        yield stack
    finally:
        stack("down", "--remove-orphans", "-v", timeout=300)


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session
