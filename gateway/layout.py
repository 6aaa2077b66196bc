"""The layout of one local run: its ports, its folders and the gateway's settings.

Every default of `python -m gateway` is a default of Layout, and nowhere else.
"""

import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from .ports import free_port, free_port_range

ROOT = Path(__file__).resolve().parent.parent


def read_env_file(path):
    """The NAME=value lines of an environment file, as a dict (comments left out)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# The routing template's defaults, shared with the gateway image.
GATEWAY_DEFAULTS = read_env_file(ROOT / "nginx" / "gateway.env")


@dataclass(frozen=True)
class Layout:
    """Ports and folders of one local run."""

    predictors: int = 3
    port: int = 8080
    # The logger's forwarded predictions reach the pool here, on loopback, past the
    # public per-client limits.
    internal_port: int = 8081
    logger_port: int = 8000
    predictor_base_port: int = 8001
    predictor_workers: int = 1
    # Each service's metrics, served by its gunicorn master: the logger's on this port,
    # the replicas' on the next ones, in the order of their ports.
    metrics_base_port: int = 9100
    # The gateway's own metrics (gateway/access_metrics.py), counted from Nginx's lines.
    gateway_metrics_port: int = 9145
    # Off only to measure what the gateway's metrics cost (make bench).
    access_metrics: bool = GATEWAY_DEFAULTS["GATEWAY_ACCESS_METRICS"] == "on"
    # Prometheus and Nginx's exporter, scraping the whole stack (--monitoring).
    monitoring: bool = False
    prometheus_port: int = 9090
    nginx_exporter_port: int = 9113
    run_dir: Path = ROOT / ".run"
    # Per client address, at the gateway; off for benchmarks and load tests.
    rate_limit: str = GATEWAY_DEFAULTS["GATEWAY_RATE_LIMIT"]
    rate_burst: int = int(GATEWAY_DEFAULTS["GATEWAY_RATE_BURST"])
    rate_limit_enabled: bool = GATEWAY_DEFAULTS["GATEWAY_RATE_LIMIT_ENABLED"] == "on"
    # The API keys' store (gateway/keys.py): when set, every route but /health needs a key.
    api_keys: Path | None = None
    # Listen on every address, not only 127.0.0.1: only with keys (gateway.runner).
    public: bool = False

    @classmethod
    def on_free_ports(cls, run_dir, **settings):
        """A layout in run_dir whose every port is free right now (for tests and benchmarks)."""
        predictors = settings.get("predictors", cls.predictors)
        return cls(run_dir=Path(run_dir).resolve(), port=free_port(), internal_port=free_port(),
                   logger_port=free_port(), predictor_base_port=free_port_range(predictors),
                   metrics_base_port=free_port_range(predictors + 1),
                   gateway_metrics_port=free_port(), prometheus_port=free_port(),
                   nginx_exporter_port=free_port(), **settings)

    def arguments(self):
        """The options of `python -m gateway up` that give this layout."""
        arguments = []
        for field in fields(self):
            value = getattr(self, field.name)
            option = "--" + field.name.replace("_", "-")
            if field.name == "rate_limit_enabled":
                arguments += [] if value else ["--no-rate-limit"]
            elif field.name == "access_metrics":
                arguments += [] if value else ["--no-access-metrics"]
            elif field.name in ("public", "monitoring"):
                arguments += [option] if value else []
            elif value is None:
                continue
            else:
                arguments += [option, str(value)]
        return arguments

    @property
    def predictor_ports(self):
        return list(range(self.predictor_base_port, self.predictor_base_port + self.predictors))

    @property
    def logger_metrics_port(self):
        return self.metrics_base_port

    @property
    def predictor_metrics_ports(self):
        """The metrics port of each replica, in the order of predictor_ports."""
        return [self.metrics_base_port + 1 + n for n in range(self.predictors)]

    @property
    def nginx_dir(self):
        return self.run_dir / "nginx"

    @property
    def auth_socket(self):
        # Where Nginx's workers can reach it: run as root, they run as nobody, who may not
        # enter the run folder. One gateway port, one socket.
        return Path(tempfile.gettempdir()) / f"gateway-{self.port}-auth.sock"

    @property
    def gateway_metrics_socket(self):
        # Where Nginx's workers (nobody, when run as root) can reach it, as auth_socket.
        return Path(tempfile.gettempdir()) / f"gateway-{self.port}-metrics.sock"

    @property
    def log_dir(self):
        return self.run_dir / "logs"

    @property
    def supervisord_conf(self):
        return self.run_dir / "supervisord.conf"

    @property
    def supervisord_pidfile(self):
        return self.run_dir / "supervisord.pid"

    @property
    def supervisor_socket(self):
        return self.run_dir / "supervisor.sock"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_metrics_url(self):
        return f"http://127.0.0.1:{self.gateway_metrics_port}/metrics"

    @property
    def internal_url(self):
        return f"http://127.0.0.1:{self.internal_port}"

    @property
    def prometheus_url(self):
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def prometheus_dir(self):
        return self.run_dir / "prometheus"

    def ports(self):
        """Every TCP port the stack listens on (the gateway's metrics port is UDP too)."""
        prometheus = [self.prometheus_port] if self.monitoring else []
        return [self.port, self.internal_port, self.logger_port, *self.predictor_ports,
                *self.metrics_ports(), *prometheus]

    def readiness_urls(self):
        """Every URL that must answer 200 before the stack is ready."""
        return [
            *(f"http://127.0.0.1:{port}/ready" for port in self.predictor_ports),
            f"http://127.0.0.1:{self.logger_port}/ready",
            *(f"http://127.0.0.1:{port}/metrics" for port in self.metrics_ports()),
            f"{self.url}/health",
            *([f"{self.prometheus_url}/-/ready"] if self.monitoring else []),
        ]

    def metrics_ports(self):
        """The ports that serve Prometheus metrics: the services', the gateway's and,
        with monitoring, the Nginx exporter's."""
        gateway = [self.gateway_metrics_port] if self.access_metrics else []
        exporter = [self.nginx_exporter_port] if self.monitoring else []
        return [self.logger_metrics_port, *self.predictor_metrics_ports, *gateway, *exporter]
