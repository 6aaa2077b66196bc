"""docker-compose.keys.yml over docker-compose.yml, for real: keys from the host's store,
changed while the gateway runs."""

import os
import tempfile
from pathlib import Path

import pytest
import requests

from gateway import keys
from tests.compose.conftest import Compose, ensure_docker_engine, inspect, published

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def keys_dir():
    # Outside pytest's own folders (mode 0700): the gateway's workers read the store.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


@pytest.fixture(scope="module")
def keyed_stack(keys_dir):
    """The stack with keys and one predictor, published on every address; torn down."""
    ensure_docker_engine()
    made = {"alice": keys.add_key(keys_dir / "api-keys", "alice"),
            "ops": keys.add_key(keys_dir / "api-keys", "ops", admin=True)}
    stack = Compose(keys_dir=keys_dir)
    stack.env["GATEWAY_PUBLISH_ADDRESS"] = "0.0.0.0"
    try:
        stack("up", "-d", "--build", "--scale", "predictor=1")
        stack.wait_healthy()
        yield stack, made
    finally:
        stack("down", "--remove-orphans", "-v", timeout=300)


def post(stack, path, body, key=None):
    headers = {"X-API-Key": key} if key else {}
    return requests.post(f"{stack.url}{path}", json=body, headers=headers, timeout=10)


def test_with_keys_the_gateway_may_listen_beyond_this_machine(keyed_stack):
    stack, _ = keyed_stack
    [gateway] = stack("ps", "-q", "gateway").split()

    assert {address for address, _ in published(gateway)["80/tcp"]} <= {"0.0.0.0", "::"}


def test_every_route_but_health_needs_a_key_and_the_logs_an_admin_key(keyed_stack):
    stack, made = keyed_stack

    assert post(stack, "/predict", {"input": "my cat"}).status_code == 401
    assert post(stack, "/predict", {"input": "my cat"}, made["alice"]).status_code == 200
    sent = post(stack, "/process", {"data": "my dog", "forward_to_model": True}, made["alice"])
    assert sent.status_code == 200
    logs = [requests.get(f"{stack.url}/logs", headers={"X-API-Key": key}, timeout=10)
            for key in (made["alice"], made["ops"])]
    assert [response.status_code for response in logs] == [403, 200]
    [record] = [r for r in logs[1].json()["records"]
                if r["request_id"] == sent.json()["request_id"]]
    assert record["client_id"] == "alice"
    assert requests.get(f"{stack.url}/health", timeout=10).status_code == 200


def test_a_key_made_or_revoked_on_the_host_counts_at_once(keyed_stack, keys_dir):
    stack, _ = keyed_stack
    [gateway] = stack("ps", "-q", "gateway").split()
    started = inspect(gateway, "{{.State.StartedAt}}")

    new = keys.add_key(keys_dir / "api-keys", "carol")
    added = post(stack, "/predict", {"input": "a"}, new)
    keys.revoke_key(keys_dir / "api-keys", "carol")
    revoked = post(stack, "/predict", {"input": "a"}, new)

    assert (added.status_code, revoked.status_code) == (200, 401)
    assert inspect(gateway, "{{.State.StartedAt}}") == started
