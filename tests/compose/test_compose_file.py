"""docker-compose.yml and the build contexts, read without Docker: the Compose
specification, the contract, what each image is built from, and the drain time."""

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

from tests.support import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def test_compose_file_validates_against_the_compose_specification():
    check = Path(sys.executable).with_name("check-jsonschema")

    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_predictor_can_scale_and_only_the_gateway_is_public():
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]

    predictor = services["predictor"]
    assert "container_name" not in predictor
    assert predictor["ports"] == ["127.0.0.1:${PREDICTOR_DEBUG_PORTS:-8001-8010}:8001"]
    assert services["logger"]["ports"] == ["127.0.0.1:${LOGGER_DEBUG_PORT:-8000}:8000"]
    assert services["gateway"]["ports"] == ["${GATEWAY_PUBLISH_PORT:-80}:80"]
    assert services["gateway"]["depends_on"] == {
        "logger": {"condition": "service_healthy"},
        "predictor": {"condition": "service_healthy"},
    }
    for name in ("logger", "predictor"):
        assert services[name]["healthcheck"]["start_period"]
        assert services[name]["stop_grace_period"] == "30s"
        assert services[name]["restart"] == "unless-stopped"
    assert services["logger"]["volumes"] == ["logger-data:/data"]


def tracked_files(folder):
    """The folder's files in git, relative to it, less the two Docker itself handles."""
    listed = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert listed, f"git lists no file in {folder}"
    relative = {path.removeprefix(f"{folder}/") for path in listed}
    return relative - {"Dockerfile", ".dockerignore"}


# What a working copy gathers beside the code, at the top of a service folder and deeper.
LOCAL_LEFTOVERS = [
    ".venv/bin/python", "venv/lib/python3.11/site-packages/flask/app.py",
    "tests/test_routes.py", "tests/__init__.py", "data/tests/fixture.json",
    "__pycache__/routes.cpython-311.pyc", "data/__pycache__/x.cpython-311.pyc", "routes.pyc",
    ".pytest_cache/v/cache/nodeids", "sub/.pytest_cache/README.md",
    ".mypy_cache/3.11/routes.json", ".ruff_cache/CACHEDIR.TAG",
    "service.egg-info/PKG-INFO", "build/lib/routes.py", "dist/service-1.0.tar.gz",
    ".git/HEAD", ".env",
    "instance/logger.sqlite3", "logger.sqlite3", "logger.sqlite3-wal", "data/old.sqlite3-shm",
    "artifacts/pet-text-classifier-1.0.0.skops",
]


def build_context(folder, workdir, paths):
    """The files that docker-compose build would send from folder, were it to hold paths:
    docker-py's own reading of the folder's .dockerignore, on a copy made in workdir."""
    for path in paths:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    lines = (ROOT / folder / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {path for path in exclude_paths(str(workdir), patterns) if (workdir / path).is_file()}


@pytest.mark.parametrize("folder", ["logger_service", "predictor_service"])
def test_images_keep_tests_venvs_caches_and_databases_out(folder, tmp_path):
    code = tracked_files(folder)

    context = build_context(folder, tmp_path, code | set(LOCAL_LEFTOVERS))

    assert context - {"Dockerfile", ".dockerignore"} == code


def test_the_gateway_image_is_built_from_its_two_files_only(tmp_path):
    code = tracked_files("nginx")
    assert code == {"gateway.conf.template", "upstreams-from-dns.sh"}

    context = build_context("nginx", tmp_path, code | set(LOCAL_LEFTOVERS))

    assert context - {"Dockerfile", ".dockerignore"} == code


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
    settings = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]
    prefix = f"{service.upper()}_"
    # Only what the container gets: the compose file's environment over the defaults.
    for name in [name for name in os.environ if name.startswith(prefix)]:
        monkeypatch.delenv(name)
    for name, value in settings.get("environment", {}).items():
        monkeypatch.setenv(name, str(value))

    gunicorn = runpy.run_path(str(ROOT / f"{service}_service" / "gunicorn.conf.py"))

    # Docker's default grace is 10 s.
    grace = compose_duration_seconds(settings.get("stop_grace_period", "10s"))
    assert gunicorn["graceful_timeout"] < grace
