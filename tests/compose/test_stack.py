"""`docker-compose up --scale predictor=3`, for real, through the published gateway port."""

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.compose.conftest import inspect
from tests.support import ROOT, SteadyClient, matches, readme_examples, run_example

pytestmark = pytest.mark.compose
README_GATEWAY = "http://localhost/"
# Where nginx/upstreams-from-dns.sh writes the gateway's upstream list.
UPSTREAMS_FILE = re.search(r"^conf=(\S+)$", (ROOT / "nginx" / "upstreams-from-dns.sh").read_text(),
                           re.MULTILINE).group(1)


def served_by(http, url, count):
    return {
        http.post(f"{url}/predict", json={"input": f"dog {n}"}).headers["X-Served-By"].split(":")[0]
        for n in range(count)
    }


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
    examples = readme_examples(README_GATEWAY)
    assert len(examples) >= 3

    for command, answer in examples:
        actual = run_example(command, README_GATEWAY, compose.url + "/")
        assert matches(answer, actual), (command, actual)


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


# Anything of these in an image's /app came from a working copy, not from the code.
LEFTOVERS = re.compile(
    r"/(tests|\.venv|venv|__pycache__|\.pytest_cache|[^/]*\.egg-info)(/|$)|\.pyc$|\.sqlite3")


@pytest.mark.parametrize("service, code_file", [
    ("logger", "/app/logger_service/routes.py"),
    ("predictor", "/app/predictor_service/model.py"),
])
def test_the_images_hold_the_code_and_no_leftovers(compose, service, code_file):
    image = inspect(compose("ps", "-q", service).split()[0], "{{.Image}}")

    # A new container of the image that never runs Python: what the build put there.
    listing = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "find", image, "/app"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()

    assert code_file in listing
    assert [path for path in listing if LEFTOVERS.search(path)] == []


def test_all_three_replicas_serve(compose, http):
    live = compose.predictor_hostnames()

    assert len(live) == 3
    assert served_by(http, compose.url, 30) == live


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
    reaches exactly them; fail after timeout seconds."""
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
