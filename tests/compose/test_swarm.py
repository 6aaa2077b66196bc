"""The stack on Docker Swarm, for real: deploy/swarm/stack.yml on a one-node swarm of the
local engine, through the gateway's published port."""

import os
import subprocess
import time
import uuid

import pytest
import requests

from tests.compose.conftest import check_readme_docker_examples, ensure_docker_engine
from tests.support import (
    ROOT,
    SteadyClient,
    free_port,
    post_resending,
    wait_until,
)

pytestmark = pytest.mark.compose
STACK_FILE = ROOT / "deploy" / "swarm" / "stack.yml"


def run(*command, env=None, timeout=600):
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    return result.stdout


class SwarmStack:
    def __init__(self):
        self.name = f"swarm{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "IMAGE_PREFIX": self.name,
                    "GATEWAY_PUBLISH_PORT": str(self.port), "GATEWAY_RATE_LIMIT_ENABLED": "off"}

    def service(self, name):
        return f"{self.name}_{name}"

    def running_tasks(self, name):
        """The ids of the service's containers that run, from the node's view."""
        out = run("docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name="
                  f"{self.service(name)}", "--filter", "status=running")
        return out.split()

    def served_by(self, http, count):
        # The gateway reloads whenever the tasks' addresses change (upstreams-from-dns): a
        # request on a keep-alive connection that reload closes is resent, as in the tests
        # of the other reloads.
        answers = [post_resending(http, f"{self.url}/predict", [], json={"input": f"cat {n}"},
                                  timeout=10)
                   for n in range(count)]
        return {answer.headers.get("X-Served-By", "").split(":")[0] if answer.status_code == 200
                else answer.status_code for answer in answers}

    def wait_served_by(self, http, replicas, timeout=120):
        """Wait until the gateway spreads predictions over exactly that many replicas."""
        wait_until(lambda: len(self.running_tasks("predictor")) == replicas
                   and self.served_by(http, 6 * replicas)
                   == {task[:12] for task in self.running_tasks("predictor")},
                   timeout=timeout, what=f"the gateway serving from {replicas} replicas")


def swarm_state():
    return run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").strip()


@pytest.fixture(scope="module")
def swarm():
    ensure_docker_engine()
    stack = SwarmStack()
    joined = swarm_state() != "active"
    if joined:
        run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        # The images, tagged <name>_<service>, as the stack file names them.
        run("docker-compose", "-p", stack.name, "build", env=stack.env, timeout=1200)
        run("docker", "stack", "deploy", "-c", str(STACK_FILE), stack.name, env=stack.env)
        with requests.Session() as http:
            wait_until(lambda: answers(http, f"{stack.url}/ready"), timeout=240,
                       what="the swarm stack's gateway ready")
            stack.wait_served_by(http, 3)
        yield stack
    finally:
        subprocess.run(["docker", "stack", "rm", stack.name], capture_output=True, timeout=120)
        deadline = time.monotonic() + 120
        label = f"label=com.docker.stack.namespace={stack.name}"
        while time.monotonic() < deadline and run("docker", "ps", "-aq", "--filter", label):
            time.sleep(1)
        for volume in run("docker", "volume", "ls", "-q", "--filter", label).split():
            subprocess.run(["docker", "volume", "rm", volume], capture_output=True, timeout=60)
        for image in ("gateway", "gateway-metrics", "logger", "predictor"):
            subprocess.run(["docker", "rmi", f"{stack.name}_{image}"], capture_output=True,
                           timeout=60)
        if joined:
            run("docker", "swarm", "leave", "--force")


def answers(http, url):
    try:
        return http.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def test_readme_docker_examples_give_the_documented_answers_on_swarm(swarm):
    check_readme_docker_examples(swarm.url)


def test_the_predictors_scale_from_3_to_6_and_the_gateway_follows(swarm, http):
    run("docker", "service", "scale", "--detach=false", f"{swarm.service('predictor')}=6",
        timeout=300)
    swarm.wait_served_by(http, 6)

    run("docker", "service", "scale", "--detach=false", f"{swarm.service('predictor')}=3",
        timeout=300)
    swarm.wait_served_by(http, 3)


def test_a_rolling_update_of_the_predictors_under_load_fails_no_request(swarm, http):
    before = set(swarm.running_tasks("predictor"))
    with SteadyClient(f"{swarm.url}/predict", {"input": "a parrot"}, max_requests=10**6,
                      max_seconds=400, resend_closed=True) as load:
        load.wait_for(50)
        # start-first, one at a time, each healthy before the next (stack.yml).
        run("docker", "service", "update", "--force", "--detach=false",
            swarm.service("predictor"), timeout=400)
        swarm.wait_served_by(http, 3)
        sent = len(load.statuses)
        load.wait_for(sent + 50)
        assert len(load.statuses) >= sent + 50  # the load ran through the whole update

    assert not before & set(swarm.running_tasks("predictor"))  # every task replaced
    assert load.failures == []
    assert set(load.statuses) == {200}
    print(f"{len(load.statuses)} requests, {len(load.resent)} resent after a closed connection")
