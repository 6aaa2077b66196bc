"""Render the configuration files of a local run from the templates."""

import getpass
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
GATEWAY_TEMPLATE = ROOT / "nginx" / "gateway.conf.template"

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


@dataclass(frozen=True)
class Layout:
    """Ports and folders of one local run."""

    predictors: int = 3
    port: int = 8080
    logger_port: int = 8000
    predictor_base_port: int = 8001
    predictor_workers: int = 1
    run_dir: Path = ROOT / ".run"
    # Per client address, at the gateway; off for benchmarks and load tests.
    rate_limit: str = "100r/s"
    rate_burst: int = 200
    rate_limit_enabled: bool = True

    @property
    def predictor_ports(self):
        return list(range(self.predictor_base_port, self.predictor_base_port + self.predictors))

    @property
    def nginx_dir(self):
        return self.run_dir / "nginx"

    @property
    def log_dir(self):
        return self.run_dir / "logs"

    @property
    def supervisord_conf(self):
        return self.run_dir / "supervisord.conf"

    def ports(self):
        return [self.port, self.logger_port, *self.predictor_ports]


def find_nginx():
    """Return the Nginx binary; Debian's is in /usr/sbin, off a normal user's PATH."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def gateway_settings(layout):
    """The values of the routing template's variables, as Docker's environment gives them."""
    return {
        "GATEWAY_PORT": layout.port,
        "GATEWAY_RATE_LIMIT": layout.rate_limit,
        "GATEWAY_RATE_BURST": layout.rate_burst,
        "GATEWAY_RATE_LIMIT_ENABLED": "on" if layout.rate_limit_enabled else "off",
    }


def render_gateway(layout):
    """The shared routing file, filled in as the image's envsubst would do."""
    text = Template(GATEWAY_TEMPLATE.read_text()).safe_substitute(gateway_settings(layout))
    if "${" in text:
        raise ValueError("gateway.conf.template uses a variable that is not filled in")
    return text


def render_upstreams(layout):
    servers = "\n".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
        for port in layout.predictor_ports
    )
    return template("upstreams.conf.template").substitute(
        logger_port=layout.logger_port, predictor_servers=servers
    )


def render_nginx_main(layout):
    return template("nginx.conf.template").substitute(nginx_dir=layout.nginx_dir)


def render_supervisord(layout, nginx):
    return template("supervisord.conf.template").substitute(
        user=getpass.getuser(),
        run_dir=layout.run_dir,
        log_dir=layout.log_dir,
        nginx_dir=layout.nginx_dir,
        predictors=layout.predictors,
        predictor_base_port=layout.predictor_base_port,
        predictor_workers=layout.predictor_workers,
        logger_port=layout.logger_port,
        port=layout.port,
        python=sys.executable,
        nginx=nginx,
        process_settings=PROCESS_SETTINGS,
    )


def write_all(layout, nginx):
    """Write every configuration file of the run into its run folder."""
    layout.nginx_dir.mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    (layout.nginx_dir / "nginx.conf").write_text(render_nginx_main(layout))
    (layout.nginx_dir / "upstreams.conf").write_text(render_upstreams(layout))
    (layout.nginx_dir / "gateway.conf").write_text(render_gateway(layout))
    layout.supervisord_conf.write_text(render_supervisord(layout, nginx))


def template(name):
    return Template((HERE / name).read_text())
