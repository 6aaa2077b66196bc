"""Render a local run's configuration files from the templates in nginx/, gateway/ and
monitoring/."""

import getpass
import json
import shutil
import sys
from string import Template

from .layout import ROOT

NGINX_DIR = ROOT / "nginx"
GATEWAY_DIR = ROOT / "gateway"
MONITORING_DIR = ROOT / "monitoring"

# Every supervised program: restarted when it crashes, stopped with its children.
PROCESS_SETTINGS = f"""\
directory = {ROOT}
autorestart = true
startsecs = 1
startretries = 10
stopwaitsecs = 30
stopasgroup = true
killasgroup = true
redirect_stderr = true"""


def find_nginx():
    """Return the Nginx binary; Debian's is in /usr/sbin, off a normal user's PATH."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def find_monitoring():
    """Return Prometheus' and its Nginx exporter's binaries (Debian's), or None for each."""
    return shutil.which("prometheus"), shutil.which("prometheus-nginx-exporter")


def gateway_settings(layout):
    """The values of the routing template's variables, as render-gateway.sh gives them."""
    keys = layout.api_keys
    return {
        # A local run serves this machine only unless asked (the image listens on every
        # address); the internal listener always serves this machine only.
        "GATEWAY_ADDRESS": "0.0.0.0" if layout.public else "127.0.0.1",
        "GATEWAY_PORT": layout.port,
        "GATEWAY_INTERNAL_ADDRESS": "127.0.0.1",
        "GATEWAY_INTERNAL_PORT": layout.internal_port,
        "GATEWAY_RATE_LIMIT": layout.rate_limit,
        "GATEWAY_RATE_BURST": layout.rate_burst,
        "GATEWAY_RATE_LIMIT_ENABLED": "on" if layout.rate_limit_enabled else "off",
        # Keys are checked when a store is given (the same rule as render-gateway.sh).
        "GATEWAY_API_KEYS": keys or "/dev/null",
        "GATEWAY_AUTH": "/_gateway_auth" if keys else "off",
        "GATEWAY_ADMIN_AUTH": "/_gateway_admin_auth" if keys else "off",
        "GATEWAY_AUTH_SOCKET": layout.auth_socket,
        "GATEWAY_ACCESS_METRICS": "on" if layout.access_metrics else "off",
        "GATEWAY_METRICS_SOCKET": layout.gateway_metrics_socket,
        # The same rule as render-gateway.sh.
        "GATEWAY_ERROR_LOG": (f"syslog:server=unix:{layout.gateway_metrics_socket},nohostname,"
                              "tag=nginx" if layout.access_metrics else "stderr"),
        "GATEWAY_CANARY_PERCENT": f"{layout.canary_percent:g}",
        "GATEWAY_CANARY_SPLIT": split_line(layout.canary_percent, "candidate"),
        "GATEWAY_SHADOW_PERCENT": f"{layout.shadow_percent:g}",
        "GATEWAY_SHADOW_SPLIT": split_line(layout.shadow_percent, "on"),
    }


def split_line(percent, value):
    """The split_clients line that gives value to percent of the keys, or none for 0
    (which split_clients refuses); the same rule as render-gateway.sh."""
    return f"{percent:g}% {value};" if percent else ""


def render_gateway(layout):
    """The shared routing file, filled in as render-gateway.sh does in the image."""
    return fill_in_gateway(gateway_settings(layout))


def fill_in_gateway(settings):
    """gateway.conf.template with its ${GATEWAY_...} variables set from settings."""
    text = Template((NGINX_DIR / "gateway.conf.template").read_text()).safe_substitute(settings)
    if "${" in text:
        raise ValueError("gateway.conf.template uses a variable that is not filled in")
    return text


def expand_servers(template, servers):
    """Repeat each line holding a ${NAME} of servers once per server of NAME.

    The same rule as upstreams-from-dns.sh applies to the same template in Docker.
    """
    lines = []
    for line in template.splitlines():
        [name] = [name for name in servers if f"${{{name}}}" in line] or [None]
        if name is None:
            lines.append(line)
        else:
            lines += [line.replace(f"${{{name}}}", server) for server in servers[name]]
    return "\n".join(lines) + "\n"


def render_upstreams(layout):
    """The upstream lists of the local run: every service on its loopback port."""
    return expand_servers((NGINX_DIR / "upstreams.conf.template").read_text(), {
        "LOGGER_SERVER": [f"127.0.0.1:{layout.logger_port}"],
        "PREDICTOR_SERVER": [f"127.0.0.1:{port}" for port in layout.predictor_ports],
    })


def render_nginx_main(layout):
    """Nginx's main file, with the run folder's paths, as render-gateway.sh in the image."""
    return template(NGINX_DIR / "nginx.conf.template").substitute(NGINX_DIR=layout.nginx_dir)


PREDICTOR_PROGRAM = """\
[program:predictor-{port}]
command = {python} -m gunicorn -c predictor_service/gunicorn.conf.py
environment = PREDICTOR_BIND="127.0.0.1:{port}",PREDICTOR_METRICS_BIND="127.0.0.1:{metrics_port}",\
PREDICTOR_WORKERS="{workers}"{repository}
stdout_logfile = {log_dir}/predictor-{port}.log
priority = 10
{process_settings}
"""


def render_predictor_programs(layout):
    """One supervisord program per replica, in the group `predictor`: each is
    predictor:predictor-<port> to supervisorctl, with a metrics port of its own."""
    ports = layout.predictor_ports
    programs = [
        PREDICTOR_PROGRAM.format(
            port=port, metrics_port=metrics_port, workers=layout.predictor_workers,
            repository=(f',PREDICTOR_MODEL_REPOSITORY="{layout.model_repository}"'
                        if layout.model_repository else ""),
            python=sys.executable, log_dir=layout.log_dir, process_settings=PROCESS_SETTINGS,
        )
        for port, metrics_port in zip(ports, layout.predictor_metrics_ports, strict=True)
    ]
    group = f"[group:predictor]\nprograms = {','.join(f'predictor-{port}' for port in ports)}\n"
    return "\n".join([group, *programs])


GATEWAY_METRICS_PROGRAM = """\
; Counts Nginx's answers from its access lines.
[program:gateway-metrics]
command = {python} -m gateway.access_metrics --socket {socket} --listen 127.0.0.1:{port}
stdout_logfile = {log_dir}/gateway-metrics.log
priority = 25
{process_settings}
"""

MONITORING_PROGRAMS = """\
; Its log is plain text: gateway.jsonlines writes each line as JSON.
[program:nginx-exporter]
command = {python} -m gateway.jsonlines nginx-exporter -- {exporter} \
-nginx.scrape-uri={internal_url}/nginx_status -web.listen-address=127.0.0.1:{exporter_port}
stdout_logfile = {log_dir}/nginx-exporter.log
priority = 40
{process_settings}

[program:prometheus]
command = {prometheus} --config.file={prometheus_dir}/prometheus.yml \
--storage.tsdb.path={prometheus_dir}/data --web.listen-address=127.0.0.1:{prometheus_port} \
--log.format=json
stdout_logfile = {log_dir}/prometheus.log
priority = 50
{process_settings}
"""


def render_optional_programs(layout):
    """The gateway's metrics process and, with monitoring, Prometheus and the exporter."""
    programs = []
    settings = {"python": sys.executable, "log_dir": layout.log_dir,
                "process_settings": PROCESS_SETTINGS}
    if layout.access_metrics:
        programs.append(GATEWAY_METRICS_PROGRAM.format(
            socket=layout.gateway_metrics_socket, port=layout.gateway_metrics_port, **settings))
    if layout.monitoring:
        prometheus, exporter = find_monitoring()
        programs.append(MONITORING_PROGRAMS.format(
            prometheus=prometheus, exporter=exporter, internal_url=layout.internal_url,
            exporter_port=layout.nginx_exporter_port, prometheus_dir=layout.prometheus_dir,
            prometheus_port=layout.prometheus_port, **settings,
        ))
    return "\n".join(programs)


def render_prometheus(layout):
    """Prometheus' configuration for the layout: a static target for each of its ports."""

    def targets(*ports):
        return json.dumps([f"127.0.0.1:{port}" for port in ports])

    return template(MONITORING_DIR / "prometheus-local.yml.template").substitute(
        rules=MONITORING_DIR / "rules" / "*.yml",
        gateway=targets(layout.gateway_metrics_port),
        nginx=targets(layout.nginx_exporter_port),
        logger=targets(layout.logger_metrics_port),
        predictor=targets(*layout.predictor_metrics_ports),
        prometheus=targets(layout.prometheus_port),
    )


def render_supervisord(layout, nginx):
    return template(GATEWAY_DIR / "supervisord.conf.template").substitute(
        user=getpass.getuser(),
        run_dir=layout.run_dir,
        pidfile=layout.supervisord_pidfile,
        socket=layout.supervisor_socket,
        log_dir=layout.log_dir,
        nginx_dir=layout.nginx_dir,
        predictor_programs=render_predictor_programs(layout),
        logger_port=layout.logger_port,
        logger_metrics_port=layout.logger_metrics_port,
        internal_url=layout.internal_url,
        python=sys.executable,
        nginx=nginx,
        process_settings=PROCESS_SETTINGS,
        optional_programs=render_optional_programs(layout),
        nginx_autostart="false" if layout.access_metrics else "true",
    )


def write_all(layout, nginx):
    """Write every configuration file of the run into its run folder."""
    included = layout.nginx_dir / "conf.d"  # the same names as in the image
    included.mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    # Left by an Nginx that was killed: it would refuse to listen there again.
    layout.auth_socket.unlink(missing_ok=True)
    (layout.nginx_dir / "nginx.conf").write_text(render_nginx_main(layout))
    (included / "00-upstreams.conf").write_text(render_upstreams(layout))
    (included / "gateway.conf").write_text(render_gateway(layout))
    layout.supervisord_conf.write_text(render_supervisord(layout, nginx))
    layout.save()
    if layout.monitoring:
        layout.prometheus_dir.mkdir(parents=True, exist_ok=True)
        (layout.prometheus_dir / "prometheus.yml").write_text(render_prometheus(layout))


def template(path):
    return Template(path.read_text())
