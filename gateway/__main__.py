"""Command line of the local stack: `python -m gateway up|config`."""

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
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run Nginx, the logger and the predictor pool")
    config = commands.add_parser("config", help="print the rendered Nginx configuration")
    for command in (up, config):
        command.add_argument("--predictors", type=int, default=3, help="replicas (default 3)")
        command.add_argument("--port", type=int, default=8080, help="gateway port")
        command.add_argument("--logger-port", type=int, default=8000)
        command.add_argument(
            "--predictor-base-port", type=int, default=8001, help="first replica's port"
        )
        command.add_argument("--predictor-workers", type=int, default=1, help="per replica")
        command.add_argument("--run-dir", type=Path, default=render.ROOT / ".run")
    args = parser.parse_args(argv)
    if args.predictors < 1:
        parser.error("--predictors must be at least 1")
    layout = layout_from(args)

    if args.command == "config":
        print(render.render_nginx_main(layout))
        print(render.render_upstreams(layout))
        print(render.render_gateway(layout.port))
        return 0
    try:
        return stack.up(layout)
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
