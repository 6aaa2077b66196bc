"""The configuration a local run writes: checked by Nginx itself, and the same upstream
lists as the gateway image's DNS watcher renders from the same template."""

import os
import re
import runpy
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gateway import render
from gateway.layout import GATEWAY_DEFAULTS, Layout
from tests.support import ROOT


@pytest.fixture
def layout(tmp_path):
    return Layout(
        predictors=4, port=18080, logger_port=18000, predictor_base_port=18001, run_dir=tmp_path
    )


def test_nginx_is_installed():
    # Everything under tests/gateway and tests/integration needs it: say so plainly.
    assert render.find_nginx(), "Nginx is missing: run `make nginx` (or apt-get install nginx)"


@pytest.mark.parametrize("percent", [0, 12.5, 100])
def test_rendered_configuration_passes_nginx_own_check(layout, percent):
    layout = replace(layout, canary_percent=percent, shadow_percent=percent)
    render.write_all(layout, render.find_nginx())
    nginx_dir = layout.nginx_dir

    result = subprocess.run(
        [render.find_nginx(), "-t", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"),
         "-e", "stderr"],
        capture_output=True, text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def dns_watcher_upstreams(tmp_path, hosts):
    """What nginx/upstreams-from-dns.sh --print renders, with a stand-in for getent that
    answers as Docker's DNS would for hosts ({name: [address, ...]})."""
    bin_dir = tmp_path / "bin"
    (bin_dir / "hosts").mkdir(parents=True)
    for name, addresses in hosts.items():
        (bin_dir / "hosts" / name).write_text("".join(f"{a} STREAM {name}\n" for a in addresses))
    getent = bin_dir / "getent"  # `getent ahostsv4 NAME`; nothing for an unknown NAME
    getent.write_text(f'#!/bin/sh\ncat "{bin_dir}/hosts/$2" 2>/dev/null || true\n')
    getent.chmod(getent.stat().st_mode | stat.S_IXUSR)
    result = subprocess.run(
        ["sh", str(ROOT / "nginx" / "upstreams-from-dns.sh"), "--print"],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path),
             "GATEWAY_NGINX_DIR": str(ROOT / "nginx")},
        capture_output=True, text=True, check=True,
    )
    return result.stdout


def without_comments(config):
    lines = (line.strip() for line in config.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_local_runner_and_the_dns_watcher_render_the_same_upstream_lists(tmp_path):
    # Docker's replicas listen on the services' fixed ports at their own addresses; here
    # the same servers are given to the local renderer as its loopback ports would be.
    in_docker = dns_watcher_upstreams(
        tmp_path, {"logger": ["10.0.0.2"], "predictor": ["10.0.0.3", "10.0.0.4", "10.0.0.5"]}
    )
    local = render.render_upstreams(Layout(predictors=3, logger_port=8000,
                                           predictor_base_port=8001))

    servers = ["10.0.0.2:8000", "10.0.0.3:8001", "10.0.0.4:8001", "10.0.0.5:8001"]
    loopback = ["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"]
    for server, port in zip(servers, loopback, strict=True):
        local = local.replace(f" {port} ", f" {server} ")
    assert without_comments(in_docker) == without_comments(local)
    assert len(re.findall(r"^\s*server 10\.0\.0\.\d:8001 ", in_docker, re.MULTILINE)) == 3


def test_with_no_replica_in_the_dns_the_pool_is_one_down_server(tmp_path):
    upstreams = dns_watcher_upstreams(tmp_path, {"logger": ["10.0.0.2"]})

    [predictors] = re.findall(r"upstream predictors \{(.*?)\}", upstreams, re.DOTALL)
    assert re.findall(r"^\s*server (.*);", predictors, re.MULTILINE) == [
        "127.0.0.1:8001 down max_fails=1 fail_timeout=5s"
    ]


def image_configuration(tmp_path, **environment):
    """The main file and the routing file that the gateway image's render-gateway.sh
    writes, given environment."""
    settings = {name: value for name, value in os.environ.items()
                if not name.startswith("GATEWAY_")}
    subprocess.run(
        ["sh", str(ROOT / "nginx" / "render-gateway.sh"), str(tmp_path)],
        env={**settings, "GATEWAY_NGINX_DIR": str(ROOT / "nginx"), **environment}, check=True,
    )
    return (tmp_path / "nginx.conf").read_text(), (tmp_path / "conf.d" / "gateway.conf").read_text()


# The image's Nginx lives in /etc/nginx: a local run folder of /etc has the same paths.
IMAGE_LAYOUT = Layout(port=80, run_dir=Path("/etc"))


def settings_of(layout, leave_out=()):
    """The routing template's settings for layout, as an environment would give them."""
    return {name: str(value) for name, value in render.gateway_settings(layout).items()
            if name not in leave_out}


# What render-gateway.sh works out itself, as gateway_settings does.
DERIVED = ("GATEWAY_AUTH", "GATEWAY_ADMIN_AUTH", "GATEWAY_AUTH_SOCKET", "GATEWAY_ERROR_LOG",
           "GATEWAY_CANARY_SPLIT", "GATEWAY_SHADOW_SPLIT")


def test_the_image_fills_in_the_templates_with_the_defaults_of_local_runs(tmp_path):
    # Only the settings that are not in gateway.env, as the image's ENV gives them.
    main, routing = image_configuration(
        tmp_path, **settings_of(IMAGE_LAYOUT, [*GATEWAY_DEFAULTS, *DERIVED, "GATEWAY_API_KEYS"])
    )

    assert main == render.render_nginx_main(IMAGE_LAYOUT)
    assert routing == render.render_gateway(IMAGE_LAYOUT)


def test_the_environment_overrides_each_default_in_the_image(tmp_path):
    overridden = replace(IMAGE_LAYOUT, port=81, rate_limit="7r/s", rate_burst=9,
                         rate_limit_enabled=False, api_keys=Path("/run/secrets/api_keys"),
                         canary_percent=12.5, shadow_percent=100)

    _, routing = image_configuration(tmp_path, **settings_of(overridden, DERIVED))

    assert routing == render.render_gateway(overridden)


@pytest.mark.parametrize("setting", ["GATEWAY_CANARY_PERCENT", "GATEWAY_SHADOW_PERCENT"])
@pytest.mark.parametrize("percent", ["-1", "100.5", "10.125", "ten", ""])
def test_the_image_refuses_a_share_that_is_no_percentage(tmp_path, setting, percent):
    with pytest.raises(subprocess.CalledProcessError):
        image_configuration(tmp_path, **{setting: percent})


def block(config, opening):
    """The text of one block of an Nginx configuration, from its opening line to its brace."""
    start = config.index(f"{opening} {{")
    indent = start - (config.rfind("\n", 0, start) + 1)
    return config[start:config.index("\n" + " " * indent + "}", start)]


def seconds(directive, text):
    """The value in seconds of a directive set once in text."""
    [value] = re.findall(rf"^\s*{directive} (\d+)s;", text, re.MULTILINE)
    return int(value)


# The three checks below read configuration text, because no test can observe what they
# guard: a single logger leaves /process no second server to be retried on; which Nginx
# worker accepts a connection is the kernel's choice, so no sequence of requests shows
# whether the workers share the upstream state; and Nginx closes an idle upstream
# connection only after 60 s.

def test_process_is_never_retried_on_another_logger(layout):
    assert "proxy_next_upstream off;" in block(render.render_gateway(layout), "location = /process")


def test_upstream_state_is_shared_by_every_nginx_worker(layout):
    upstreams = render.render_upstreams(layout)

    assert "zone logger 64k;" in block(upstreams, "upstream logger")
    assert "zone predictors 64k;" in block(upstreams, "upstream predictors")


@pytest.mark.parametrize("service", ["logger_service", "predictor_service"])
def test_gunicorn_keeps_idle_connections_open_longer_than_the_gateway(layout, service):
    # Nginx must be the side that closes an idle upstream connection: if gunicorn did,
    # Nginx could reuse one at the instant gunicorn closes it.
    gunicorn = runpy.run_path(str(ROOT / service / "gunicorn.conf.py"))
    upstreams = render.render_upstreams(layout)

    for name in ("logger", "predictors"):
        assert gunicorn["keepalive"] > seconds("keepalive_timeout", block(upstreams,
                                                                         f"upstream {name}"))


def test_config_command_prints_the_rendered_configuration():
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "--predictors", "5"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )

    assert result.stdout == "\n".join([
        render.render_nginx_main(Layout(predictors=5)),
        render.render_upstreams(Layout(predictors=5)),
        render.render_gateway(Layout(predictors=5)) + "\n",
    ])
