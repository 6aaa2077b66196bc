import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import requests

from tests.support import (
    ROOT,
    free_port,
    free_port_range,
    matches,
    readme_examples,
    run_example,
)

PREPARE = ROOT.parent / "shared" / "container-base" / "prepare"


def succeeds(*command):
    return subprocess.run(command, capture_output=True, timeout=60).returncode == 0


def missing_for_compose():
    """What prepare provides that this machine lacks: the docker and docker-compose
    commands, an engine that answers. Empty when nothing is missing.

    The base images are not asked about: where an engine answers, a machine with
    internet access pulls the official ones, which prepare's look-alikes would shadow.
    """
    missing = [command for command in ("docker", "docker-compose") if shutil.which(command) is None]
    if "docker" in missing or not succeeds("docker", "info"):
        missing.append("a Docker engine")
    return missing


def ensure_docker_engine():
    """Run the shared prepare script when anything it provides is missing."""
    missing = missing_for_compose()
    if not missing:
        return
    assert PREPARE.exists(), f"missing: {', '.join(missing)}; and {PREPARE} is missing too"
    subprocess.run([str(PREPARE)], check=True, timeout=900)
    still_missing = missing_for_compose()
    assert still_missing == [], f"prepare ran, yet still missing: {', '.join(still_missing)}"


def inspect(container_or_image, template):
    """One field of `docker inspect`, by Go template."""
    return subprocess.run(["docker", "inspect", "-f", template, container_or_image],
                          capture_output=True, text=True, check=True).stdout.strip()


def published(container_id):
    """A container's published ports: {"8000/tcp": {(host address, host port), ...}}."""
    ports = json.loads(inspect(container_id, "{{json .NetworkSettings.Ports}}"))
    return {
        port: {(binding["HostIp"], int(binding["HostPort"])) for binding in bindings or []}
        for port, bindings in ports.items()
    }


# The override that publishes the logger's and the predictors' debugging ports.
DEBUG_OVERRIDE = "docker-compose.debug.yml"
KEYS_OVERRIDE = "docker-compose.keys.yml"
POSTGRES_OVERRIDE = "docker-compose.postgres.yml"


class Compose:
    """docker-compose under a unique project name, its gateway on a free port.

    With debug, the stack of docker-compose.yml and DEBUG_OVERRIDE, whose debugging ports
    are moved to free loopback ports too; with keys_dir, KEYS_OVERRIDE with the key store
    of that folder; with postgres_password_file, POSTGRES_OVERRIDE with that password;
    without any, docker-compose.yml alone. With monitoring, its `monitoring` profile too,
    Prometheus published on a free port.
    """

    def __init__(self, debug=False, keys_dir=None, monitoring=False,
                 postgres_password_file=None):
        self.project = f"mlgw-test-{uuid.uuid4().hex[:8]}"
        self.gateway_port = free_port()
        files = ["docker-compose.yml", *([DEBUG_OVERRIDE] if debug else []),
                 *([KEYS_OVERRIDE] if keys_dir else []),
                 *([POSTGRES_OVERRIDE] if postgres_password_file else [])]
        # The gateway's other settings are left to their defaults, and the debugging ports
        # to this stack's choice: none of them taken from this shell.
        host = {name: value for name, value in os.environ.items()
                if name not in ("GATEWAY_RATE_LIMIT", "GATEWAY_RATE_BURST",
                                "GATEWAY_PUBLISH_ADDRESS", "GATEWAY_API_KEYS_DIR",
                                "LOGGER_DEBUG_PORT", "PREDICTOR_DEBUG_PORTS",
                                "COMPOSE_PROFILES", "PROMETHEUS_PUBLISH_PORT",
                                "POSTGRES_PASSWORD_FILE")}
        self.env = {
            **host,
            # In the environment, not as -f options: the documented commands that a test
            # runs as written (docs/reliability.md) then see the same files.
            "COMPOSE_FILE": os.pathsep.join(files),
            "COMPOSE_PATH_SEPARATOR": os.pathsep,
            "GATEWAY_PUBLISH_PORT": str(self.gateway_port),
            # The test drives load from one address: the per-client limit would answer 429.
            "GATEWAY_RATE_LIMIT_ENABLED": "off",
        }
        if keys_dir:
            self.env["GATEWAY_API_KEYS_DIR"] = str(keys_dir)
        if postgres_password_file:
            self.env["POSTGRES_PASSWORD_FILE"] = str(postgres_password_file)
        if monitoring:
            self.env["COMPOSE_PROFILES"] = "monitoring"
            self.env["PROMETHEUS_PUBLISH_PORT"] = str(free_port())
            self.prometheus_url = f"http://127.0.0.1:{self.env['PROMETHEUS_PUBLISH_PORT']}"
        if debug:
            predictor_ports = free_port_range(10)
            self.env["LOGGER_DEBUG_PORT"] = str(free_port())
            self.env["PREDICTOR_DEBUG_PORTS"] = f"{predictor_ports}-{predictor_ports + 9}"
        self.url = f"http://127.0.0.1:{self.gateway_port}"

    def __call__(self, *args, timeout=900):
        result = subprocess.run(
            ["docker-compose", "-p", self.project, *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def running_predictors(self):
        """Ids of the predictor containers that are running."""
        return [
            container_id for container_id in self("ps", "-q", "predictor").split()
            if inspect(container_id, "{{.State.Running}}") == "true"
        ]

    def predictor_hostnames(self):
        """Hostnames of the running predictor containers: their ids' first 12 characters."""
        return {container_id[:12] for container_id in self.running_predictors()}

    def predictor_addresses(self):
        """The network addresses of the running predictor containers."""
        return {address for container_id in self.running_predictors()
                for address in self.predictor_addresses_of(container_id)}

    @staticmethod
    def predictor_addresses_of(container_id):
        """The network addresses of one container."""
        return inspect(container_id,
                       "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}").split()

    @staticmethod
    def docker(*args):
        """Run a docker command (pause, unpause, ...) and fail with its error if it fails."""
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def wait_healthy(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A container without a healthcheck (Nginx's exporter) counts once it runs.
            states = subprocess.run(
                ["docker", "inspect", "-f",
                 "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                 *self("ps", "-q").split()],
                capture_output=True, text=True,
            ).stdout.split()
            if states and all(state in ("healthy", "running") for state in states):
                return
            time.sleep(1)
        raise AssertionError(
            f"not healthy after {timeout}s:\n{self('ps')}\n{self('logs', '--tail', '30')}"
        )


@pytest.fixture(scope="module")
def compose():
    """The stack from docker-compose.yml alone with 3 predictors; always torn down."""
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


# Where the README's Docker examples send their requests.
README_GATEWAY = "http://localhost/"


def check_readme_docker_examples(url):
    """Run the README's Docker curl examples against url; each must give its answer."""
    examples = readme_examples(README_GATEWAY)
    assert len(examples) >= 3
    for command, answer in examples:
        actual = run_example(command, README_GATEWAY, url + "/")
        assert matches(answer, actual), (command, actual)
