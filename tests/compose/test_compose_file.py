"""docker-compose.yml, its debug override and the build contexts, read without Docker:
the Compose specification, what each image is built from, the drain time, and the
defaults that only the files show."""

import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

from tests.support import ROOT, dockerfile_instructions

COMPOSE_FILE = ROOT / "docker-compose.yml"
DEBUG_OVERRIDE = ROOT / "docker-compose.debug.yml"
KEYS_OVERRIDE = ROOT / "docker-compose.keys.yml"
POSTGRES_OVERRIDE = ROOT / "docker-compose.postgres.yml"
SERVICE_IMAGE_FOLDERS = ("logger_service", "predictor_service", "servicekit")
# What the gateway-metrics image builds from, in the same context.
GATEWAY_METRICS_FILES = {"gateway/__init__.py", "gateway/access_metrics.py",
                         "gateway/requirements-access-metrics.txt", "gateway/Dockerfile"}


SWARM_STACK = ROOT / "deploy" / "swarm" / "stack.yml"


def compose_services(path=COMPOSE_FILE):
    return yaml.safe_load(path.read_text())["services"]


@pytest.mark.parametrize("path", [COMPOSE_FILE, DEBUG_OVERRIDE, KEYS_OVERRIDE,
                                  POSTGRES_OVERRIDE, SWARM_STACK], ids=lambda path: path.name)
def test_compose_file_validates_against_the_compose_specification(path):
    check = Path(sys.executable).with_name("check-jsonschema")

    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_published_ports_and_the_start_order():
    # What tests/compose/ cannot see: its stacks move every published port to a free
    # one, so the defaults (80 of 127.0.0.1 for clients; with the debug override 8000
    # and 8001-8010 on loopback, as the README says) show only here; and once the stack
    # is up nothing shows that the gateway waited for healthy services rather than
    # started ones. That
    # the default stack publishes nothing else, how the ports are bound, the scaling,
    # the healthchecks, restarts and the volume are checked on running stacks
    # (test_stack.py, test_debug_override.py).
    services = compose_services()
    debug_services = compose_services(DEBUG_OVERRIDE)

    assert services["gateway"]["ports"] == [
        "${GATEWAY_PUBLISH_ADDRESS:-127.0.0.1}:${GATEWAY_PUBLISH_PORT:-80}:80"]
    assert debug_services["logger"]["ports"] == ["127.0.0.1:${LOGGER_DEBUG_PORT:-8000}:8000"]
    assert debug_services["predictor"]["ports"] == [
        "127.0.0.1:${PREDICTOR_DEBUG_PORTS:-8001-8010}:8001"]
    assert services["gateway"]["depends_on"] == {
        "logger": {"condition": "service_healthy"},
        "predictor": {"condition": "service_healthy"},
        "gateway-metrics": {"condition": "service_healthy"},
    }


def files_of(*folders):
    """The files of folders that git tracks or would track (new, not ignored), relative
    to the repository's root, less those deleted from the working copy."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *folders],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    files = {path for path in listed if (ROOT / path).is_file()}
    for folder in map(os.path.normpath, folders):
        assert any(path.startswith(f"{folder}/") or folder == "." for path in files), folder
    return files


# What a working copy gathers beside the code, at the top of a folder and deeper.
LOCAL_LEFTOVERS = [
    ".venv/bin/python", "venv/lib/python3.11/site-packages/flask/app.py",
    "tests/test_routes.py", "tests/__init__.py", "data/tests/fixture.json",
    "__pycache__/routes.cpython-311.pyc", "data/__pycache__/x.cpython-311.pyc", "routes.pyc",
    ".pytest_cache/v/cache/nodeids", "sub/.pytest_cache/README.md",
    ".mypy_cache/3.11/routes.json", ".ruff_cache/CACHEDIR.TAG",
    "service.egg-info/PKG-INFO", "build/lib/routes.py", "dist/service-1.0.tar.gz",
    ".git/HEAD", ".env",
    "instance/logger.sqlite3", "logger.sqlite3", "logger.sqlite3-wal", "data/old.sqlite3-shm",
    "artifacts/pet-text-classifier/1.0.0/model.skops",
]


def build_context(context, workdir, paths, dockerfile):
    """The files that docker-compose build would send from the context folder, were it
    to hold paths: docker-py's own reading of its .dockerignore, on a copy in workdir."""
    for path in paths:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    lines = (ROOT / context / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {
        path for path in exclude_paths(str(workdir), patterns, dockerfile=dockerfile)
        if (workdir / path).is_file()
    }


@pytest.mark.parametrize("service", ["logger", "predictor", "gateway-metrics"])
def test_images_build_from_the_two_services_servicekit_and_the_metrics_module_only(
        service, tmp_path):
    build = compose_services()[service]["build"]
    code = files_of(*SERVICE_IMAGE_FOLDERS) | GATEWAY_METRICS_FILES
    everything = files_of(".") | {
        f"{folder}/{leftover}" for folder in (".", *SERVICE_IMAGE_FOLDERS)
        for leftover in LOCAL_LEFTOVERS
    }

    context = build_context(build["context"], tmp_path, everything, build["dockerfile"])

    # Docker always gets .dockerignore and the Dockerfile it builds from, and keeps both
    # out of what COPY sees when .dockerignore excludes them, as it does every Dockerfile
    # (tests/compose/test_stack.py looks inside the images).
    dockerfiles = {path for path in code if Path(path).name == "Dockerfile"}
    assert context == code - dockerfiles | {build["dockerfile"], ".dockerignore"}


def test_the_gateway_image_context_holds_what_its_dockerfile_copies_and_nothing_else(tmp_path):
    build = os.path.normpath(compose_services()["gateway"]["build"])
    copied = {
        source
        for keyword, arguments in dockerfile_instructions(ROOT / build / "Dockerfile")
        if keyword == "COPY"
        for source in shlex.split(arguments)[:-1]
    }
    files = {path.removeprefix(f"{build}/") for path in files_of(build)}

    context = build_context(build, tmp_path, files | set(LOCAL_LEFTOVERS), "Dockerfile")

    assert context - {"Dockerfile", ".dockerignore"} == copied


def image_environment(build):
    """The environment that the Dockerfile of a compose build section sets (ENV)."""
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    environment = {}
    for keyword, arguments in dockerfile_instructions(dockerfile):
        if keyword == "ENV":
            pairs = shlex.split(arguments)
            assert all("=" in pair for pair in pairs), f"ENV key=value only: {arguments}"
            environment.update(pair.split("=", 1) for pair in pairs)
    return environment


def compose_duration_seconds(duration):
    """A Compose duration ("30s", "1m30s", "1h") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.mark.parametrize("service", ["logger", "predictor"])
def test_gunicorn_drains_before_docker_kills_the_container(service, monkeypatch):
    """docker stop sends SIGTERM, then SIGKILL after stop_grace_period: gunicorn must
    have drained its requests (graceful_timeout) by then."""
    settings = compose_services()[service]
    prefix = f"{service.upper()}_"
    # Only what the container gets: the image's ENV, then the compose file's environment,
    # over gunicorn.conf.py's defaults.
    for name in [name for name in os.environ if name.startswith(prefix)]:
        monkeypatch.delenv(name)
    container_environment = {**image_environment(settings["build"]),
                             **settings.get("environment", {})}
    for name, value in container_environment.items():
        monkeypatch.setenv(name, str(value))

    gunicorn = runpy.run_path(str(ROOT / f"{service}_service" / "gunicorn.conf.py"))

    # Docker's default grace is 10 s.
    grace = compose_duration_seconds(settings.get("stop_grace_period", "10s"))
    assert gunicorn["graceful_timeout"] < grace
