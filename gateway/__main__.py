"""Command line of the local stack: `python -m gateway up|config|restart`."""

import argparse
import sys
from pathlib import Path

from . import render, stack


def layout_from(args):
    return render.Layout(
        predictors=args.predictors,
        port=args.port,
        logger_port=args.logger_port,
        predictor_base_port=args.predictor_base_port,
        predictor_workers=args.predictor_workers,
        run_dir=args.run_dir.resolve(),
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        rate_limit_enabled=not args.no_rate_limit,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run Nginx, the logger and the predictor pool")
    config = commands.add_parser("config", help="print the rendered Nginx configuration")
    restart = commands.add_parser(
        "restart", help="restart the predictor replicas of a running stack, one at a time"
    )
    restart.add_argument("program", choices=["predictor"])
    restart.add_argument("--run-dir", type=Path, default=render.ROOT / ".run")
    restart.add_argument(
        "--settle", type=float, default=5.0,
        help="seconds to wait after each replica is ready (the gateway's fail_timeout)",
    )
    for command in (up, config):
        command.add_argument("--predictors", type=int, default=3, help="replicas (default 3)")
        command.add_argument("--port", type=int, default=8080, help="gateway port")
        command.add_argument("--logger-port", type=int, default=8000)
        command.add_argument(
            "--predictor-base-port", type=int, default=8001, help="first replica's port"
        )
        command.add_argument("--predictor-workers", type=int, default=1, help="per replica")
        command.add_argument("--run-dir", type=Path, default=render.ROOT / ".run")
        command.add_argument("--rate-limit", default="100r/s", help="per client address")
        command.add_argument("--rate-burst", type=int, default=200, help="requests over the rate")
        command.add_argument("--no-rate-limit", action="store_true", help="for benchmarks")
    args = parser.parse_args(argv)
    if args.command == "restart":
        try:
            stack.rolling_restart(render.Layout(run_dir=args.run_dir.resolve()), args.settle)
        except stack.StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.predictors < 1:
        parser.error("--predictors must be at least 1")
    layout = layout_from(args)

    if args.command == "config":
        print(render.render_nginx_main(layout))
        print(render.render_upstreams(layout))
        print(render.render_gateway(layout))
        return 0
    try:
        return stack.up(layout)
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
