"""docker-compose.postgres.yml over docker-compose.yml, for real: postgres:15 and two
loggers behind the gateway, the password from a secret file."""

import json
import os
import secrets
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.compose.conftest import Compose, ensure_docker_engine
from tests.support import SteadyClient, wait_until

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def password_file():
    # Outside pytest's own folders (mode 0700), readable by the logger's user in its
    # container, as docker-compose.postgres.yml says.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "postgres-password"
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o644)
        yield path


@pytest.fixture(scope="module")
def stack(password_file):
    """The stack with PostgreSQL, 2 loggers and 1 predictor; always torn down."""
    ensure_docker_engine()
    stack = Compose(postgres_password_file=password_file)
    try:
        stack("up", "-d", "--build", "--scale", "logger=2", "--scale", "predictor=1")
        stack.wait_healthy()
        yield stack
    finally:
        stack("down", "--remove-orphans", "-v", timeout=300)


def request_ids_served(container_id):
    """The request ids of the /process requests a container's access log shows."""
    log = subprocess.run(["docker", "logs", container_id], capture_output=True, text=True,
                         timeout=60).stdout
    lines = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return {line["request_id"] for line in lines
            if line.get("logger") == "gunicorn.access" and line.get("path") == "/process"}


def stored_request_ids(stack, http):
    """Every request id in the shared log, paged through /logs as a client would."""
    stored, before_id = set(), None
    while True:
        params = {"limit": 500, **({"before_id": before_id} if before_id else {})}
        page = http.get(f"{stack.url}/logs", params=params, timeout=10).json()
        stored |= {record["request_id"] for record in page["records"]}
        if page["next_before_id"] is None:
            return stored
        before_id = page["next_before_id"]


def test_inputs_through_both_loggers_all_land_in_the_one_database(stack):
    sent = [f"both-{uuid.uuid4().hex}" for _ in range(60)]
    with requests.Session() as http:
        answers = [http.post(f"{stack.url}/process",
                             json={"data": f"input {n}", "forward_to_model": n % 2 == 0},
                             headers={"X-Request-ID": request_id}, timeout=10)
                   for n, request_id in enumerate(sent)]
        stored = stored_request_ids(stack, http)

    assert [answer.status_code for answer in answers] == [200] * len(sent)
    loggers = stack("ps", "-q", "logger").split()
    served = [request_ids_served(container_id) & set(sent) for container_id in loggers]
    assert len(loggers) == 2 and all(served), served  # each logger took some of them
    assert set().union(*served) == set(sent)
    assert set(sent) <= stored


def test_the_database_restarted_under_load_loses_no_acknowledged_input(stack):
    with SteadyClient(f"{stack.url}/process", {"data": "during the restart"},
                      max_requests=10**6, max_seconds=240, resend_closed=True) as load:
        load.wait_for(100)
        stack("restart", "postgres", timeout=180)
        stack.wait_healthy()
        sent = len(load.statuses)
        load.wait_for(sent + 100)  # and it goes on after the restart
        assert len(load.statuses) >= sent + 100

    with requests.Session() as http:
        wait_until(lambda: http.get(f"{stack.url}/logger/ready", timeout=10).status_code == 200,
                   what="the loggers ready again")
        stored = stored_request_ids(stack, http)
    assert load.failures == []
    assert set(load.statuses) <= {200, 503}  # refused while it was down, never dropped
    assert set(load.acknowledged) <= stored
    print(f"{len(load.statuses)} sent, {len(load.acknowledged)} acknowledged, "
          f"{load.statuses.count(503)} refused with 503 during the restart")
