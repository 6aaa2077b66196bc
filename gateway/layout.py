"""The layout of one local run: its ports, its folders and the gateway's settings.

Every default of `python -m gateway` is a default of Layout, and nowhere else.
"""

import argparse
import json
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from .ports import free_port, free_port_range

ROOT = Path(__file__).resolve().parent.parent


def read_env_file(path):
    """The NAME=value lines of an environment file, as a dict (comments left out)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# The routing template's defaults, shared with the gateway image.
GATEWAY_DEFAULTS = read_env_file(ROOT / "nginx" / "gateway.env")


def option(default, help=None, negative=None):
    """A Layout field that is an option of `python -m gateway up` (and `config`).

    A boolean field is a flag: --name turns a False default on, the negative flag (such
    as --no-rate-limit) turns a True default off."""
    return field(default=default, metadata={"help": help, "negative": negative})


@dataclass(frozen=True)
class Layout:
    """Ports and folders of one local run; each field is an option of `python -m gateway up`."""

    predictors: int = option(3, "predictor replicas")
    port: int = option(8080, "the gateway's port")
    # The logger's forwarded predictions reach the pool here, on loopback, past the
    # public per-client limits.
    internal_port: int = option(8081, "the gateway's port for the logger's forwards (loopback)")
    logger_port: int = option(8000, "the logger's port")
    predictor_base_port: int = option(8001, "the first replica's port")
    predictor_workers: int = option(1, "gunicorn workers per replica")
    # Each service's metrics, served by its gunicorn master: the logger's on this port,
    # the replicas' on the next ones, in the order of their ports.
    metrics_base_port: int = option(9100, "the logger's metrics port; the replicas' follow it")
    # The gateway's own metrics (gateway/access_metrics.py), counted from Nginx's lines.
    gateway_metrics_port: int = option(9145, "the gateway's metrics, counted from Nginx's lines")
    # Off only to measure what the gateway's metrics cost (make bench).
    access_metrics: bool = option(GATEWAY_DEFAULTS["GATEWAY_ACCESS_METRICS"] == "on",
                                  "no gateway metrics (to measure what they cost)",
                                  negative="--no-access-metrics")
    # Prometheus and Nginx's exporter, scraping the whole stack (--monitoring).
    monitoring: bool = option(False, "also run Prometheus and Nginx's exporter, scraping all")
    prometheus_port: int = option(9090, "Prometheus' port (--monitoring)")
    nginx_exporter_port: int = option(9113, "the Nginx exporter's port (--monitoring)")
    run_dir: Path = option(ROOT / ".run", "where the configuration, the logs and the sockets go")
    # Per client address, at the gateway; off for benchmarks and load tests.
    rate_limit: str = option(GATEWAY_DEFAULTS["GATEWAY_RATE_LIMIT"], "per client address")
    rate_burst: int = option(int(GATEWAY_DEFAULTS["GATEWAY_RATE_BURST"]), "requests over the rate")
    rate_limit_enabled: bool = option(GATEWAY_DEFAULTS["GATEWAY_RATE_LIMIT_ENABLED"] == "on",
                                      "no per-client limits (for benchmarks and load tests)",
                                      negative="--no-rate-limit")
    # The API keys' store (gateway/keys.py): when set, every route but /health needs a key.
    api_keys: Path | None = option(None, "the key store: with it, all but /health need a key")
    # Listen on every address, not only 127.0.0.1: only with keys (gateway.runner).
    public: bool = option(False, "listen on every address, not only 127.0.0.1 (needs keys)")
    # The share of clients, in percent, whose predictions the candidate model answers
    # (docs/models.md); `python -m gateway rollout` moves it in a running stack.
    canary_percent: float = option(float(GATEWAY_DEFAULTS["GATEWAY_CANARY_PERCENT"]),
                                   "percent of the clients whose predictions the candidate answers")
    # The share of production's predictions, in percent, mirrored to the candidate.
    shadow_percent: float = option(float(GATEWAY_DEFAULTS["GATEWAY_SHADOW_PERCENT"]),
                                   "percent of production's predictions mirrored to the candidate")
    # The model repository the replicas serve (predictor_service/repository.py); None:
    # theirs by default (PREDICTOR_MODEL_REPOSITORY, else predictor_service/artifacts).
    model_repository: Path | None = option(None, "the model repository the replicas serve")

    def __post_init__(self):
        for what, percent in (("canary", self.canary_percent), ("shadow", self.shadow_percent)):
            if not 0 <= percent <= 100 or round(percent, 2) != percent:
                raise ValueError(f"the {what}'s share must be a percentage from 0 to 100 with "
                                 f"at most two decimals, not {percent:g}")

    @classmethod
    def add_arguments(cls, parser):
        """Add an option for each field to an argparse parser."""
        for field_ in fields(cls):
            name, kind = field_.name.replace("_", "-"), field_.type
            help_text = field_.metadata["help"]
            if kind is bool:
                flag = field_.metadata["negative"] if field_.default else f"--{name}"
                # "%(default).0s" prints nothing: a flag's default says nothing useful.
                parser.add_argument(flag, dest=field_.name, action="store_const",
                                    const=not field_.default, default=field_.default,
                                    help=f"{help_text}%(default).0s")
            else:
                value_type = Path if kind in (Path, Path | None) else kind
                parser.add_argument(f"--{name}", dest=field_.name, type=value_type,
                                    default=field_.default, help=help_text)

    @classmethod
    def from_arguments(cls, args):
        """The layout that parsed options (of add_arguments) give; paths made absolute."""
        values = {field_.name: getattr(args, field_.name) for field_ in fields(cls)}
        return cls(**{name: value.resolve() if isinstance(value, Path) else value
                      for name, value in values.items()})

    def arguments(self):
        """The options of `python -m gateway up` that give this layout."""
        arguments = []
        for field_ in fields(self):
            value = getattr(self, field_.name)
            if field_.type is bool:
                if value != field_.default:
                    arguments.append(field_.metadata["negative"] or
                                     "--" + field_.name.replace("_", "-"))
            elif value is not None:
                arguments += ["--" + field_.name.replace("_", "-"), str(value)]
        return arguments

    @classmethod
    def on_free_ports(cls, run_dir, **settings):
        """A layout in run_dir whose every port is free right now (for tests and benchmarks)."""
        predictors = settings.get("predictors", cls.predictors)
        return cls(run_dir=Path(run_dir).resolve(), port=free_port(), internal_port=free_port(),
                   logger_port=free_port(), predictor_base_port=free_port_range(predictors),
                   metrics_base_port=free_port_range(predictors + 1),
                   gateway_metrics_port=free_port(), prometheus_port=free_port(),
                   nginx_exporter_port=free_port(), **settings)

    def save(self):
        """Write this layout into its run folder, for the commands that act on the running
        stack (`python -m gateway rollout`)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / ".layout.json.tmp"
        tmp.write_text(json.dumps(self.arguments()) + "\n")
        tmp.replace(self.saved_path(self.run_dir))

    @classmethod
    def saved(cls, run_dir):
        """The layout that the stack of run_dir was started with (or last changed to)."""
        try:
            arguments = json.loads(cls.saved_path(run_dir).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no stack was started in {run_dir}") from None
        parser = argparse.ArgumentParser()
        cls.add_arguments(parser)
        return cls.from_arguments(parser.parse_args(arguments))

    @staticmethod
    def saved_path(run_dir):
        return Path(run_dir) / "layout.json"

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
