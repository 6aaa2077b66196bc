"""API keys at the gateway: every route but /health needs one, an admin key reads the
logs, each record names its key's client, and keys change with no reload."""

import base64
import os
import tempfile
from pathlib import Path

import pytest
import requests

from gateway import keys, rollout
from gateway.layout import Layout
from tests.support import (
    StackUnderTest,
    SteadyClient,
    close_held,
    first_answers,
    hold_requests,
    listening_addresses,
    request_from,
    shipped_repository_copy,
)

PUBLIC_ROUTES = [
    ("POST", "/predict", {"input": "my cat"}),
    ("POST", "/process", {"data": "my cat", "forward_to_model": True}),
    ("GET", "/logs", None),
    ("GET", "/logger/ready", None),
    ("GET", "/predictor/model", None),
]
ADMIN_ROUTES = [route for route in PUBLIC_ROUTES if route[1] not in ("/predict", "/process")]


@pytest.fixture(scope="module")
def store():
    # Not in pytest's own folders (mode 0700): Nginx's workers must read the store.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "api-keys"
        made = {
            "alice": keys.add_key(path, "alice"),
            "bob": keys.add_key(path, "bob"),
            "ops": keys.add_key(path, "ops", admin=True),
        }
        yield path, made


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, store):
    """A stack with keys that listens on every address, as `make run` with --public; its
    models have 1.1.0 as the candidate, which no client gets unless a test says so."""
    path, _ = store
    models = shipped_repository_copy(tmp_path_factory.mktemp("models"), candidate="1.1.0")
    with StackUnderTest(tmp_path_factory.mktemp("keyed"), predictors=2, api_keys=path,
                        public=True, model_repository=models.root) as running:
        yield running


@pytest.fixture
def key(store):
    return store[1]


def call(stack, method, path, body=None, headers=None):
    return requests.request(method, f"{stack.url}{path}", json=body, headers=headers, timeout=10)


def test_a_public_gateway_listens_everywhere_but_its_internal_port_does_not(keyed):
    assert listening_addresses(keyed.port) == {"0.0.0.0"}
    assert listening_addresses(keyed.layout.internal_port) == {"127.0.0.1"}


@pytest.mark.parametrize("method, path, body", PUBLIC_ROUTES)
def test_every_route_but_health_needs_a_key(keyed, method, path, body):
    response = call(keyed, method, path, body)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["code"] == 401
    assert "API key is needed" in response.json()["message"]
    assert call(keyed, "GET", "/health").status_code == 200


@pytest.mark.parametrize("sent", [
    "gw_" + base64.b64encode(b"alice.00000000:wrong-secret").decode(),
    "gw_" + base64.b64encode(b"nobody.00000000:wrong-secret").decode(),
    "not-a-key",
    "gw_" + "A" * 600,
], ids=["wrong-secret", "unknown-name", "malformed", "too-long"])
def test_a_wrong_key_is_401_json(keyed, sent):
    for headers in ({"X-API-Key": sent}, {"Authorization": f"Bearer {sent}"}):
        response = call(keyed, "POST", "/predict", {"input": "my cat"}, headers)

        assert response.status_code == 401, headers
        assert response.json()["message"] == "This API key is not valid."


def test_a_key_in_either_header_is_accepted(keyed, key):
    for headers in ({"X-API-Key": key["alice"]}, {"Authorization": f"Bearer {key['alice']}"}):
        response = call(keyed, "POST", "/predict", {"input": "my cat"}, headers)

        assert response.status_code == 200, response.text
        assert response.json()["prediction"]["class"] == "cat"


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
def test_logs_and_each_services_own_routes_need_an_admin_key(keyed, key, method, path, body):
    client = call(keyed, method, path, body, {"X-API-Key": key["alice"]})
    admin = call(keyed, method, path, body, {"X-API-Key": key["ops"]})

    assert client.status_code == 403
    assert client.json()["message"] == "This route needs an admin key."
    assert "WWW-Authenticate" not in client.headers
    assert admin.status_code == 200, admin.text


def test_each_record_carries_the_client_of_its_key(keyed, key):
    # A client cannot name itself: the gateway sets X-Client-Id from the key.
    sent = call(keyed, "POST", "/process", {"data": "whose cat?", "forward_to_model": True},
                {"X-API-Key": key["bob"], "X-Client-Id": "alice"})
    assert sent.status_code == 200, sent.text

    logs = call(keyed, "GET", "/logs?limit=50", headers={"X-API-Key": key["ops"]}).json()

    [record] = [r for r in logs["records"] if r["request_id"] == sent.json()["request_id"]]
    assert record["client_id"] == "bob"
    assert record["outcome"] == "predicted"


def test_no_log_of_the_stack_holds_a_key(keyed, key):
    headers = {"X-API-Key": key["alice"], "X-Request-ID": "key-not-logged"}
    assert call(keyed, "POST", "/process", {"data": "a", "forward_to_model": True},
                headers).status_code == 200

    # The request, and the logger's forward of it on the internal listener.
    forwarded, public = sorted(keyed.access_log("key-not-logged", 2), key=lambda e: e["uri"])
    assert (public["uri"], public["client_id"], public["key"].split(".")[0]) == (
        "/process", "alice", "alice")
    assert (forwarded["uri"], forwarded["client_id"], forwarded["key"]) == (
        "/predict", "alice", "")
    secret = base64.b64decode(key["alice"][3:]).split(b":", 1)[1].decode()
    for log in Path(keyed.layout.log_dir).iterdir():
        text = log.read_text(errors="replace")
        assert key["alice"][3:] not in text and secret not in text, log.name


def nginx_worker_pids(stack):
    """The pids of the gateway's Nginx workers: a reload replaces every one."""
    master = (stack.layout.nginx_dir / "nginx.pid").read_text().strip()
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return set(children)


def test_a_key_added_or_revoked_counts_from_the_next_request_with_no_reload(keyed, key, store):
    path, _ = store
    workers = nginx_worker_pids(keyed)
    with SteadyClient(f"{keyed.url}/predict", {"input": "my cat"}, max_requests=2000,
                      headers={"X-API-Key": key["alice"]}) as steady:
        steady.wait_for(50)
        new = keys.add_key(path, "carol")
        added = call(keyed, "POST", "/predict", {"input": "a"}, {"X-API-Key": new})
        keys.revoke_key(path, [k.name for k in keys.read_store(path) if k.client == "carol"][0])
        revoked = call(keyed, "POST", "/predict", {"input": "a"}, {"X-API-Key": new})
        steady.wait_for(len(steady.statuses) + 50)

    assert (added.status_code, revoked.status_code) == (200, 401)
    assert steady.failures == [] and set(steady.statuses) == {200}
    assert nginx_worker_pids(keyed) == workers


def test_the_limits_apply_per_key_as_well_as_per_address(keyed, key):
    # 12 predictions held with one key from 4 addresses: 3 each, under the 8 allowed per
    # address, but 12 for the key, whose 8 leave 4 refused at once.
    headers = {"X-API-Key": key["alice"]}
    held = [sock for address in ("127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8")
            for sock in hold_requests(address, keyed.port, "/predict", 3, headers)]
    try:
        refused = first_answers(held, 4)
        other_key = request_from("127.0.0.5", keyed.port, "POST", "/predict", {"input": "a"},
                                 headers={"X-API-Key": key["bob"]})[0]
    finally:
        close_held(keyed, held)

    assert [answer.split(b" ", 2)[1] for answer in refused] == [b"429"] * 4
    assert other_key == 200


def test_the_store_holds_no_key_and_nginx_can_read_it(store):
    path, made = store
    text = path.read_text()

    for made_key in made.values():
        assert made_key[3:] not in text
        assert base64.b64decode(made_key[3:]).split(b":", 1)[1].decode() not in text
    assert os.stat(path).st_mode & 0o777 == 0o644  # the workers run as another user


def test_the_canary_splits_keyed_clients_on_their_client_not_their_key(keyed, store):
    path, _ = store
    clients = [f"canary-{n}" for n in range(20)]
    client_keys = {client: [keys.add_key(path, client) for _ in range(2)] for client in clients}

    def version(key, **headers):
        response = call(keyed, "POST", "/predict", {"input": "my cat purrs"},
                        {"Authorization": f"Bearer {key}", **headers})
        assert response.status_code == 200, response.text
        return response.json()["model"]["version"]

    rollout.set_canary(Layout.saved(keyed.run_dir), 50)
    try:
        seen = {client: {version(key) for key in made} |
                {version(made[0], **{"X-Client-ID": "someone-else"})}
                for client, made in client_keys.items()}
    finally:
        rollout.set_canary(Layout.saved(keyed.run_dir), 0)

    # Each client one version, whichever of its keys it sends and whatever it claims to be.
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert set.union(*seen.values()) == {"1.0.0", "1.1.0"}
