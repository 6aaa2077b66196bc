"""The configuration a local run writes, checked by Nginx itself."""

import configparser
import re
import runpy
import subprocess
import sys

import pytest

from gateway import render
from logger_service.config import Config as LoggerConfig
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


def block(config, opening):
    """The text of one block of an Nginx configuration, from its opening line to its brace."""
    start = config.index(f"{opening} {{")
    indent = start - (config.rfind("\n", 0, start) + 1)
    return config[start:config.index("\n" + " " * indent + "}", start)]


def seconds(directive, text):
    """The value in seconds of a directive set once in text."""
    [value] = re.findall(rf"^\s*{directive} (\d+)s;", text, re.MULTILINE)
    return int(value)


def test_predictions_are_retried_on_another_replica_but_process_never(layout):
    gateway = render.render_gateway(layout)

    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in (
        block(gateway, "location = /predict")
    )
    assert "proxy_next_upstream off;" in block(gateway, "location = /process")


def test_every_route_to_a_service_is_rate_limited(layout):
    gateway = render.render_gateway(layout)
    locations = re.findall(r"^    location ([^{]+) \{", gateway, re.MULTILINE)

    proxied = [where for where in locations if "proxy_pass" in block(gateway, f"location {where}")]
    assert set(proxied) == {"= /predict", "= /process", "= /logs", "/logger/", "/predictor/"}
    for where in proxied:
        assert "limit_req zone=per_client" in block(gateway, f"location {where}"), where


def test_upstream_state_is_shared_by_every_nginx_worker(layout):
    upstreams = render.render_upstreams(layout)
    dns_script = (ROOT / "nginx" / "upstreams-from-dns.sh").read_text()

    assert "zone logger 64k;" in block(upstreams, "upstream logger")
    assert "zone predictors 64k;" in block(upstreams, "upstream predictors")
    assert 'echo "    zone $1 64k;"' in dns_script


@pytest.mark.parametrize("service", ["logger_service", "predictor_service"])
def test_gunicorn_keeps_idle_connections_open_longer_than_the_gateway(layout, service):
    # Nginx must be the side that closes an idle upstream connection: if gunicorn did,
    # Nginx could reuse one at the instant gunicorn closes it.
    gunicorn = runpy.run_path(str(ROOT / service / "gunicorn.conf.py"))
    upstreams = render.render_upstreams(layout)
    dns_script = (ROOT / "nginx" / "upstreams-from-dns.sh").read_text()

    for name in ("logger", "predictors"):
        upstream = block(upstreams, f"upstream {name}")
        assert gunicorn["keepalive"] > seconds("keepalive_timeout", upstream)
    assert gunicorn["keepalive"] > seconds('echo "    keepalive_timeout', dns_script)


def test_the_logger_gives_up_on_the_pool_before_the_gateway_gives_up_on_the_logger(layout):
    gateway = render.render_gateway(layout)
    # /process sets no timeout of its own: the server's applies.
    server_wide = block(gateway, "server").split("\n    location", 1)[0]
    # A forwarded prediction, its one resend included, takes at most connect + read.
    logger_budget = LoggerConfig.PREDICTOR_CONNECT_TIMEOUT + LoggerConfig.PREDICTOR_READ_TIMEOUT

    assert "proxy_read_timeout" not in block(gateway, "location = /process")
    assert logger_budget < seconds("proxy_read_timeout", server_wide)


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
    priorities = [
        int(config[f"program:{name}"]["priority"]) for name in ("predictor", "logger", "nginx")
    ]
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
