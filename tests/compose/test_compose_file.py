"""docker-compose.yml, read without Docker: the Compose specification and the contract."""

import subprocess
import sys
from pathlib import Path

import yaml

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


def test_images_keep_tests_venvs_caches_and_databases_out():
    for folder in ("logger_service", "predictor_service"):
        ignored = (ROOT / folder / ".dockerignore").read_text()
        for pattern in ("**/__pycache__", "artifacts/", "instance/", "*.sqlite3*"):
            assert pattern in ignored
    # The gateway's context admits two files and nothing else.
    assert (ROOT / "nginx" / ".dockerignore").read_text().splitlines()[1] == "*"
