"""The configuration a local run writes, checked by Nginx itself."""

import configparser
import re
import subprocess
import sys

import pytest

from gateway import render
from tests.support import ROOT


@pytest.fixture
def layout(tmp_path):
    return render.Layout(
        predictors=4, port=18080, logger_port=18000, predictor_base_port=18001, run_dir=tmp_path
    )


def test_nginx_is_installed():
    # Everything under tests/gateway and tests/integration needs it: say so plainly.
    assert render.find_nginx(), "Nginx is missing: run `make nginx` (or apt-get install nginx)"


def test_upstreams_list_every_replica_with_passive_health_and_keepalive(layout):
    upstreams = render.render_upstreams(layout)

    for port in (18001, 18002, 18003, 18004):
        assert f"server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" in upstreams
    assert "server 127.0.0.1:18005" not in upstreams
    assert "server 127.0.0.1:18000;" in upstreams
    assert upstreams.count("keepalive_timeout 60s;") == 2


def test_gateway_routing_file_is_the_shared_template_with_the_port_filled_in(layout):
    gateway = render.render_gateway(layout)

    assert "listen 18080 default_server;" in gateway
    assert "${" not in gateway
    template = (ROOT / "nginx" / "gateway.conf.template").read_text()
    filled_in = (
        template.replace("${GATEWAY_PORT}", "18080")
        .replace("${GATEWAY_RATE_LIMIT}", "100r/s")
        .replace("${GATEWAY_RATE_BURST}", "200")
        .replace("${GATEWAY_RATE_LIMIT_ENABLED}", "on")
    )
    assert gateway == filled_in


def test_every_template_variable_is_set_in_the_gateway_image():
    template = (ROOT / "nginx" / "gateway.conf.template").read_text()
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()

    for name in set(re.findall(r"\$\{(\w+)\}", template)):
        assert f"{name}=" in dockerfile, name


def test_rendered_configuration_passes_nginx_own_check(layout):
    render.write_all(layout, render.find_nginx())
    nginx_dir = layout.nginx_dir

    result = subprocess.run(
        [render.find_nginx(), "-t", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"),
         "-e", "stderr"],
        capture_output=True, text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_supervisord_runs_one_gunicorn_per_replica_numbered_by_port(layout):
    render.write_all(layout, "/usr/sbin/nginx")
    config = configparser.RawConfigParser()
    config.read(layout.supervisord_conf)

    predictor = config["program:predictor"]
    assert predictor["numprocs"] == "4"
    assert predictor["numprocs_start"] == "18001"
    assert 'PREDICTOR_BIND="127.0.0.1:%(process_num)d"' in predictor["environment"]
    assert predictor["autorestart"] == "true"
    assert 'LOGGER_PREDICTOR_URL="http://127.0.0.1:18080/predict"' in (
        config["program:logger"]["environment"]
    )
    assert config["program:nginx"]["stopsignal"] == "QUIT"
    # Start order: predictors, logger, then the gateway in front of them.
    priorities = [int(config[f"program:{name}"]["priority"]) for name in ("predictor", "logger", "nginx")]
    assert priorities == sorted(priorities)


def test_config_command_prints_the_rendered_configuration():
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "--predictors", "5"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )

    assert result.stdout.count("max_fails=1 fail_timeout=5s;") == 5
    assert "server 127.0.0.1:8005 max_fails=1" in result.stdout
    assert "listen 8080 default_server;" in result.stdout
    assert "location = /predict" in result.stdout
