"""`docker-compose up --scale predictor=3`, for real, through the published gateway port."""

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from gateway import render
from gateway.layout import GATEWAY_DEFAULTS, Layout
from tests.compose.conftest import check_readme_docker_examples, inspect, published
from tests.support import (
    ROOT,
    SteadyClient,
    answers_ok,
    post_resending,
    wait_until,
)

pytestmark = pytest.mark.compose
# Where nginx/upstreams-from-dns.sh writes the gateway's upstream list.
UPSTREAMS_FILE = re.search(r"^conf=(\S+)$", (ROOT / "nginx" / "upstreams-from-dns.sh").read_text(),
                           re.MULTILINE).group(1)


def served_by(http, url, count):
    """The hostnames of the replicas that answered count predictions; an answer that is
    not a 200 (so names no replica) is its (status, body)."""
    answers = [http.post(f"{url}/predict", json={"input": f"dog {n}"}) for n in range(count)]
    return {answer.headers["X-Served-By"].split(":")[0] if answer.status_code == 200
            else (answer.status_code, answer.text) for answer in answers}


def wait_until_served_by_exactly(compose, http, timeout=15):
    """Poll until traffic reaches exactly the live predictor replicas; return the seconds taken."""
    started = time.monotonic()
    live = compose.predictor_hostnames()
    while True:
        seen = served_by(http, compose.url, 4 * len(live))
        if seen == live:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"after {timeout}s the gateway serves {seen}, live are {live}")
        time.sleep(0.5)


def test_readme_docker_examples_give_the_documented_answers(compose):
    check_readme_docker_examples(compose.url)


def test_bad_input_is_422_through_the_gateway(compose, http):
    response = http.post(f"{compose.url}/predict", json={"input": ""})

    assert response.status_code == 422
    assert response.json()["errors"] == {"json": {"input": ["Length must be between 1 and 10000."]}}


def exec_in(container_id, *command):
    return subprocess.run(["docker", "exec", container_id, *command],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("service", ["logger", "predictor"])
def test_gunicorn_is_pid_1_and_not_root(compose, service):
    for container_id in compose("ps", "-q", service).split():
        argv = exec_in(container_id, "cat", "/proc/1/cmdline").split("\0")
        uids = re.search(r"^Uid:\s+(.*)$", exec_in(container_id, "cat", "/proc/1/status"),
                         re.MULTILINE).group(1).split()

        # A console script: the interpreter runs it, so gunicorn is the first or second word.
        assert any(Path(word).name == "gunicorn" for word in argv[:2]), argv
        assert "0" not in uids, uids


# Anything of these in an image's /app came from a working copy, not from the code; and
# the build reads the Dockerfile and .dockerignore, it does not copy them.
LEFTOVERS = re.compile(
    r"/(tests|\.venv|venv|__pycache__|\.pytest_cache|[^/]*\.egg-info)(/|$)|\.pyc$|\.sqlite3"
    r"|/Dockerfile$|/\.dockerignore$")


@pytest.mark.parametrize("service, code_file, other_service", [
    ("logger", "/app/logger_service/routes.py", "/app/predictor_service"),
    ("predictor", "/app/predictor_service/model.py", "/app/logger_service"),
])
def test_the_images_hold_the_code_and_no_leftovers(compose, service, code_file, other_service):
    image = inspect(compose("ps", "-q", service).split()[0], "{{.Image}}")

    # A new container of the image that never runs Python: what the build put there.
    listing = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "find", image, "/app"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()

    assert code_file in listing
    assert "/app/servicekit/gunicorn.py" in listing  # the plumbing it shares, beside it
    assert [path for path in listing if path.startswith(other_service)] == []
    assert [path for path in listing if LEFTOVERS.search(path)] == []


def container_ids(compose, service):
    return compose("ps", "-q", service).split()


def test_the_gateway_metrics_image_holds_its_module_alone_and_runs_as_no_root(compose):
    [container_id] = container_ids(compose, "gateway-metrics")
    image = inspect(container_id, "{{.Image}}")
    listing = subprocess.run(["docker", "run", "--rm", "--entrypoint", "find", image, "/app"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    uids = re.search(r"^Uid:\s+(.*)$", exec_in(container_id, "cat", "/proc/1/status"),
                     re.MULTILINE).group(1).split()

    assert sorted(path for path in listing if path.endswith(".py")) == [
        "/app/gateway/__init__.py", "/app/gateway/access_metrics.py"]
    assert "0" not in uids, uids


@pytest.mark.parametrize("service", ["gateway", "gateway-metrics", "logger", "predictor"])
def test_each_container_runs_the_healthcheck_of_its_image(compose, service):
    for container_id in container_ids(compose, service):
        image = inspect(container_id, "{{.Image}}")
        healthcheck = json.loads(inspect(container_id, "{{json .Config.Healthcheck}}"))

        # The Dockerfile's HEALTHCHECK is the one stated; compose adds none of its own.
        assert healthcheck == json.loads(inspect(image, "{{json .Config.Healthcheck}}"))
        # No start period, and a replica still loading would count its failures.
        assert healthcheck["StartPeriod"] > 0
        assert inspect(container_id, "{{.State.Health.Status}}") == "healthy"


def test_the_gateway_routes_with_the_defaults_of_local_runs_unless_the_host_sets_them(compose):
    [gateway] = container_ids(compose, "gateway")
    routing = compose("exec", "-T", "gateway", "cat", "/etc/nginx/conf.d/gateway.conf")
    # A variable the host leaves unset is listed bare, without a value: it is unset.
    environment = dict(entry.split("=", 1)
                       for entry in json.loads(inspect(gateway, "{{json .Config.Env}}"))
                       if "=" in entry)
    # The image's own settings (its addresses and ports), as its Dockerfile's ENV sets them.
    image_settings = {name: environment[name] for name in render.gateway_settings(Layout())
                      if name in environment and name not in GATEWAY_DEFAULTS}
    assert set(image_settings) == {"GATEWAY_ADDRESS", "GATEWAY_PORT",
                                   "GATEWAY_INTERNAL_ADDRESS", "GATEWAY_INTERNAL_PORT",
                                   "GATEWAY_METRICS_SOCKET"}
    # What render-gateway.sh works out in the container: no keys, the check's socket in
    # /tmp, Nginx's error lines to the gateway's metrics process.
    socket = f"/tmp/gateway-{environment['GATEWAY_PORT']}-auth.sock"
    error_log = (f"syslog:server=unix:{environment['GATEWAY_METRICS_SOCKET']},nohostname,"
                 "tag=nginx")
    image_settings |= {"GATEWAY_API_KEYS": "/dev/null", "GATEWAY_AUTH": "off",
                       "GATEWAY_ADMIN_AUTH": "off", "GATEWAY_AUTH_SOCKET": socket,
                       "GATEWAY_ERROR_LOG": error_log}

    # The fixture's shell turns the limit off (its load would meet it) and sets no other
    # setting: the image fills in nginx/gateway.env's defaults, as a local run does.
    assert compose.env["GATEWAY_RATE_LIMIT_ENABLED"] == "off"
    local = render.gateway_settings(Layout(rate_limit_enabled=False))
    assert routing == render.fill_in_gateway({**local, **image_settings})


def wait_until_healthy(container_id, timeout=120):
    wait_until(lambda: inspect(container_id, "{{.State.Health.Status}}") == "healthy",
               timeout=timeout, what=f"{container_id[:12]} healthy")


def test_only_the_gateway_is_published(compose):
    [gateway] = container_ids(compose, "gateway")

    # To this machine only: the default stack has no keys (docker-compose.keys.yml).
    assert published(gateway) == {"80/tcp": {("127.0.0.1", compose.gateway_port)}}
    # Their images expose their service and metrics ports (listed, bound to nothing); the
    # debugging ports come only with docker-compose.debug.yml (test_debug_override.py).
    assert published(container_ids(compose, "logger")[0]) == {"8000/tcp": set(),
                                                              "9100/tcp": set()}
    for predictor in compose.running_predictors():
        assert published(predictor) == {"8001/tcp": set(), "9100/tcp": set()}
    [gateway_metrics] = container_ids(compose, "gateway-metrics")
    assert published(gateway_metrics) == {"9145/tcp": set()}


def test_all_three_replicas_serve(compose, http):
    live = compose.predictor_hostnames()

    assert len(live) == 3
    assert served_by(http, compose.url, 30) == live


@pytest.mark.parametrize("service", ["logger", "predictor", "gateway"])
def test_a_container_whose_server_exits_is_started_again(compose, http, service):
    container_id = container_ids(compose, service)[0]
    restarts = int(inspect(container_id, "{{.RestartCount}}"))

    # PID 1 ends on its own, as a crash would end it: Docker did not stop it.
    exec_in(container_id, "sh", "-c", "kill -TERM 1")

    wait_until(lambda: int(inspect(container_id, "{{.RestartCount}}")) > restarts, timeout=60,
               what=f"a restart of {service}")
    wait_until_healthy(container_id)
    wait_until_served_by_exactly(compose, http, timeout=30)


def documented_rolling_restart():
    """The rolling restart for Docker, exactly as docs/reliability.md gives it."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    [script] = re.findall(r"```bash\n(\(\n  for id in \$\(docker-compose ps -q predictor\).*?)```",
                          text, re.DOTALL)
    return script


def gateway_reloads(compose):
    """How many times upstreams-from-dns.sh has reloaded the gateway so far."""
    return compose("logs", "--no-color", "gateway").count("upstreams-from-dns: Nginx reloaded")


def test_documented_rolling_restart_under_load_costs_no_request(compose, http):
    before = compose.predictor_hostnames()
    started = {cid: container_started_at(cid) for cid in compose("ps", "-q", "predictor").split()}
    reloads = gateway_reloads(compose)

    steady = SteadyClient(f"{compose.url}/predict", {"input": "steady fish"}, max_seconds=240)
    with steady as client:
        client.wait_for(50)
        restart = subprocess.run(
            ["bash", "-c", documented_rolling_restart()], cwd=ROOT, capture_output=True, text=True,
            env={**compose.env, "COMPOSE_PROJECT_NAME": compose.project}, timeout=240,
        )
        seen = len(client.statuses)
        client.wait_for(seen + 100)

    assert restart.returncode == 0, restart.stderr
    assert client.failures == []
    assert set(client.statuses) == {200}
    assert all(container_started_at(cid) != at for cid, at in started.items())
    assert compose.predictor_hostnames() == before
    # Each replica came back on its address within the grace: no reload, whose closing
    # of idle keep-alive connections could have cost a request.
    assert gateway_reloads(compose) == reloads
    wait_until_served_by_exactly(compose, http)


def container_started_at(container_id):
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container_id],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_a_replica_stopped_under_load_costs_no_request(compose, http):
    victim = sorted(compose("ps", "-q", "predictor").split())[0]

    with SteadyClient(f"{compose.url}/predict", {"input": "steady cat"}) as client:
        client.wait_for(100)
        stopped = subprocess.run(
            ["docker", "stop", victim], capture_output=True, text=True, timeout=60
        )
        seen = len(client.statuses)
        client.wait_for(seen + 200)

    assert stopped.returncode == 0, stopped.stderr
    assert client.failures == []
    assert set(client.statuses) == {200}
    assert len(compose.predictor_hostnames()) == 2
    # The gateway's retries would hide a replica killed mid-request. gunicorn's master
    # exits 0 on SIGTERM once its workers are done (at worst, after graceful_timeout),
    # whereas Docker's SIGKILL at the end of stop_grace_period gives 137.
    assert inspect(victim, "{{.State.ExitCode}} {{.State.OOMKilled}}") == "0 false"


def gateway_predictor_addresses(compose):
    """The predictor addresses in the gateway's upstream list, as upstreams-from-dns.sh
    last wrote it; not the placeholder that stands for an empty pool."""
    text = compose("exec", "-T", "gateway", "cat", UPSTREAMS_FILE)
    [block] = re.findall(r"upstream predictors \{(.*?)\}", text, re.DOTALL)
    return {
        address for address, parameters in re.findall(r"^\s*server ([^:\s]+):\d+(.*);", block,
                                                      re.MULTILINE)
        if "down" not in parameters.split()
    }


def wait_until_the_gateway_follows(compose, http, timeout=15):
    """Poll until the gateway lists exactly the live predictors' addresses and traffic
    reaches exactly them, every request answered; fail after timeout seconds.

    Eleven replicas booting on two cores can keep a request past the gateway's timeouts
    (a 504) for a few seconds after each says it is healthy: that is a wait, not yet a
    failure, until the timeout.
    """
    started = time.monotonic()
    live_addresses, live_hostnames = compose.predictor_addresses(), compose.predictor_hostnames()
    while True:
        listed = gateway_predictor_addresses(compose)
        seen = served_by(http, compose.url, 4 * len(live_hostnames))
        if listed == live_addresses and seen == live_hostnames:
            return
        if time.monotonic() - started > timeout:
            raise AssertionError(f"after {timeout}s the gateway lists {listed} and serves {seen};"
                                 f" live are {live_addresses}, {live_hostnames}")
        time.sleep(0.5)


def test_scaling_up_and_down_while_running_is_followed_within_15_seconds(compose, http):
    compose("up", "-d", "--scale", "predictor=5")
    assert len(compose.predictor_hostnames()) == 5
    wait_until_the_gateway_follows(compose, http)

    compose("up", "-d", "--scale", "predictor=2")
    assert len(compose.predictor_hostnames()) == 2
    # Removed replicas cannot answer, so traffic alone would look right even if the
    # gateway never updated: its upstream list must lose their addresses too (it keeps
    # a vanished address for GATEWAY_DNS_GRACE, 6 s, by design).
    wait_until_the_gateway_follows(compose, http)


def test_the_default_stack_scales_to_11_predictors_and_back(compose, http):
    # Beyond the ten ports of the debug override's range, which the default stack does
    # not publish. Back to 3 within the test, so that it costs one scale-up.
    compose("up", "-d", "--scale", "predictor=11")
    replicas = compose.running_predictors()
    assert len(replicas) == 11
    for container_id in replicas:
        wait_until_healthy(container_id)
    wait_until_the_gateway_follows(compose, http)

    compose("up", "-d", "--scale", "predictor=3")
    assert len(compose.predictor_hostnames()) == 3
    wait_until_the_gateway_follows(compose, http)


def logger_records(compose):
    """The logger's latest records, through the gateway: the logger publishes no port."""
    response = requests.get(f"{compose.url}/logs", params={"limit": 50}, timeout=10)
    assert response.status_code == 200, response.text
    return [record["data"] for record in response.json()["records"]]


def test_the_loggers_records_outlive_its_container(compose):
    data = f"kept across containers {uuid.uuid4().hex}"
    before = container_ids(compose, "logger")
    recorded = requests.post(f"{compose.url}/process", json={"data": data}, timeout=10)
    assert recorded.status_code == 200

    compose("up", "-d", "--no-deps", "--force-recreate", "logger")
    [after] = container_ids(compose, "logger")
    wait_until_healthy(after)

    assert [after] != before  # a new container, the same volume
    # The new container may have a new address: the gateway follows it within seconds.
    wait_until(lambda: answers_ok(f"{compose.url}/logs"), timeout=30,
               what="the gateway reaching the new logger")
    assert data in logger_records(compose)


def versions_answering(http, url, clients):
    """The model version that answers each client's /predict, through the gateway."""
    versions, resent = {}, []
    for client in clients:
        # set-split reloads Nginx, which closes idle keep-alive connections (post_resending).
        response = post_resending(http, f"{url}/predict", resent, json={"input": "a cat"},
                                  headers={"X-Client-ID": client})
        assert response.status_code == 200, response.text
        versions[client] = response.json()["model"]["version"]
    return versions


def test_the_compose_rollout_moves_every_replica_and_the_gateway(compose, http):
    # docs/models.md, "With Docker": the lifecycle command in one predictor container
    # moves the aliases of the repository every replica shares (a named volume), and
    # set-split the gateway's. The last test of the module: the stack goes next.
    clients = [f"client-{n}" for n in range(30)]

    def lifecycle(*args):
        return compose("exec", "-T", "predictor", "python", "-m", "predictor_service.lifecycle",
                       *args)

    def set_canary(percent):
        return compose("exec", "-T", "gateway", "set-split", "canary", percent)

    def everywhere(version):
        """Wait until every client's answer comes from this version, on any replica."""
        wait_until(lambda: set(versions_answering(http, compose.url, clients).values())
                   == {version}, timeout=30, what=f"every answer from {version}")

    everywhere("1.0.0")
    assert "candidate: 1.1.0" in lifecycle("stage", "1.1.0")
    assert "100 % of the clients" in set_canary("100")
    everywhere("1.1.0")
    assert "production: 1.1.0" in lifecycle("promote")
    assert "0 % of the clients" in set_canary("0")
    everywhere("1.1.0")
    assert "production: 1.0.0" in lifecycle("rollback")
    everywhere("1.0.0")
