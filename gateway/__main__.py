"""Command line of the local stack: `python -m gateway up|config|restart|keys`."""

import argparse
import sys
from pathlib import Path

from . import keys, render
from .layout import Layout
from .restart import rolling_restart
from .runner import StackError, up


def layout_from(args):
    return Layout(
        predictors=args.predictors,
        port=args.port,
        internal_port=args.internal_port,
        logger_port=args.logger_port,
        predictor_base_port=args.predictor_base_port,
        predictor_workers=args.predictor_workers,
        metrics_base_port=args.metrics_base_port,
        gateway_metrics_port=args.gateway_metrics_port,
        access_metrics=not args.no_access_metrics,
        monitoring=args.monitoring,
        prometheus_port=args.prometheus_port,
        nginx_exporter_port=args.nginx_exporter_port,
        run_dir=args.run_dir.resolve(),
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        rate_limit_enabled=not args.no_rate_limit,
        api_keys=args.api_keys and args.api_keys.resolve(),
        public=args.public,
    )


def parser():
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_command = commands.add_parser(
        "up", help="run Nginx, the logger and the predictor pool",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    config = commands.add_parser(
        "config", help="print the rendered Nginx configuration",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    restart = commands.add_parser(
        "restart", help="restart the predictor replicas of a running stack, one at a time",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    restart.add_argument("program", choices=["predictor"])
    restart.add_argument("--run-dir", type=Path, default=Layout.run_dir)
    restart.add_argument(
        "--settle", type=float, default=5.0,
        help="seconds to wait after each replica is ready (the gateway's fail_timeout)",
    )
    keys_command = commands.add_parser(
        "keys", help="make, revoke and list the gateway's API keys (read on each request)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    keys_command.add_argument("--file", type=Path, default=keys.DEFAULT_STORE,
                              help="the key store (hashes only)")
    key_actions = keys_command.add_subparsers(dest="action", required=True)
    add = key_actions.add_parser("add", help="make a key for a client and print it, once")
    add.add_argument("client", help="the client's name, recorded with each of its inputs")
    add.add_argument("--admin", action="store_true",
                     help="may also read /logs and each service's own routes")
    revoke = key_actions.add_parser("revoke", help="revoke one key, or every key of a client")
    revoke.add_argument("name", help="a key's name (client.id) or a client's")
    key_actions.add_parser("list", help="the keys' names and when each was made")
    for command in (up_command, config):
        command.add_argument("--predictors", type=int, default=Layout.predictors,
                             help="predictor replicas")
        command.add_argument("--port", type=int, default=Layout.port, help="the gateway's port")
        command.add_argument("--internal-port", type=int, default=Layout.internal_port,
                             help="the gateway's port for the logger's forwards (loopback)")
        command.add_argument("--logger-port", type=int, default=Layout.logger_port)
        command.add_argument("--predictor-base-port", type=int,
                             default=Layout.predictor_base_port, help="the first replica's port")
        command.add_argument("--predictor-workers", type=int, default=Layout.predictor_workers,
                             help="gunicorn workers per replica")
        command.add_argument("--metrics-base-port", type=int, default=Layout.metrics_base_port,
                             help="the logger's metrics port; the replicas' follow it")
        command.add_argument("--gateway-metrics-port", type=int,
                             default=Layout.gateway_metrics_port,
                             help="the gateway's metrics (TCP) and Nginx's lines for them (UDP)")
        command.add_argument("--no-access-metrics", action="store_true",
                             help="no gateway metrics (to measure what they cost)")
        command.add_argument("--monitoring", action="store_true",
                             help="also run Prometheus and Nginx's exporter, scraping everything")
        command.add_argument("--prometheus-port", type=int, default=Layout.prometheus_port)
        command.add_argument("--nginx-exporter-port", type=int,
                             default=Layout.nginx_exporter_port)
        command.add_argument("--run-dir", type=Path, default=Layout.run_dir,
                             help="where the configuration, the logs and the sockets go")
        command.add_argument("--rate-limit", default=Layout.rate_limit,
                             help="per client address")
        command.add_argument("--rate-burst", type=int, default=Layout.rate_burst,
                             help="requests over the rate")
        command.add_argument("--no-rate-limit", action="store_true", help="for benchmarks")
        command.add_argument("--api-keys", type=Path, default=Layout.api_keys,
                             help="the key store: with it, every route but /health needs a key")
        command.add_argument("--public", action="store_true",
                             help="listen on every address, not only 127.0.0.1 (needs keys)")
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    try:
        if args.command == "keys":
            return manage_keys(args)
        if args.command == "restart":
            rolling_restart(Layout(run_dir=args.run_dir.resolve()), args.settle)
            return 0
        if args.predictors < 1:
            arguments.error("--predictors must be at least 1")
        layout = layout_from(args)
        if args.command == "config":
            print(render.render_nginx_main(layout))
            print(render.render_upstreams(layout))
            print(render.render_gateway(layout))
            return 0
        return up(layout)
    except (StackError, keys.KeyStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def manage_keys(args):
    if args.action == "add":
        key = keys.add_key(args.file, args.client, admin=args.admin)
        print(key)
        print(f"(shown once; its hash is in {args.file}, in force from the next request)",
              file=sys.stderr)
    elif args.action == "revoke":
        count = keys.revoke_key(args.file, args.name)
        print(f"revoked {count} key(s) of {args.file}", file=sys.stderr)
    else:
        for stored in keys.read_store(args.file):
            print(f"{stored.name}\t{stored.created}\t{'admin' if stored.admin else 'client'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
