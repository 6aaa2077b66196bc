"""Command line of the local stack: `python -m gateway up|config|restart|rollout|keys`."""

import argparse
import sys
from pathlib import Path

from . import keys, render, rollout
from .layout import Layout
from .restart import rolling_restart
from .runner import StackError, up


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
    rollout_command = commands.add_parser(
        "rollout", help="move model versions through a running stack: canary, promote, rollback",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    rollout_command.add_argument("--run-dir", type=Path, default=Layout.run_dir)
    steps = rollout_command.add_subparsers(dest="step", required=True)
    steps.add_parser("status", help="the aliases, the gateway's split, what each replica serves")
    canary = steps.add_parser("canary", help="send a share of the clients to the candidate")
    canary.add_argument("percent", type=float, help="of the clients, 0 to 100 (0: no canary)")
    canary.add_argument("--version", help="name this version the candidate first")
    shadow = steps.add_parser("shadow", help="mirror a share of production's predictions to "
                                             "the candidate, recorded beside production's")
    shadow.add_argument("percent", type=float, help="of the predictions, 0 to 100 (0: none)")
    steps.add_parser("promote", help="make the candidate production, and end the canary")
    steps.add_parser("rollback", help="make the production version before this one production")
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
        Layout.add_arguments(command)
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    try:
        if args.command == "keys":
            return manage_keys(args)
        if args.command == "rollout":
            rollout.run(args)
            return 0
        if args.command == "restart":
            rolling_restart(Layout(run_dir=args.run_dir.resolve()), args.settle)
            return 0
        if args.predictors < 1:
            arguments.error("--predictors must be at least 1")
        try:
            layout = Layout.from_arguments(args)
        except ValueError as exc:
            arguments.error(str(exc))
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
