"""Manage the model repository's versions: train, list, check, stage, promote, roll back.

    python -m predictor_service.lifecycle list
    python -m predictor_service.lifecycle train 1.2.0 --recipe 1.1.0 [--data CSV]
    python -m predictor_service.lifecycle check 1.1.0
    python -m predictor_service.lifecycle stage 1.1.0      # the candidate (--none: no candidate)
    python -m predictor_service.lifecycle promote [1.1.0]  # default: the candidate
    python -m predictor_service.lifecycle rollback

Running predictors follow the aliases within a second (serving.py); the gateway's
canary and shadow follow them with `python -m gateway rollout` (docs/models.md).
"""

import argparse
import sys
from pathlib import Path

from . import train
from .config import Config
from .repository import CANDIDATE, PRODUCTION, LifecycleError, Repository, UnknownVersion


def list_versions(repository, args):
    aliases = repository.aliases()
    named = {aliases[PRODUCTION]: PRODUCTION, aliases[CANDIDATE]: CANDIDATE}
    print(f"{'version':<9} {'alias':<11} {'accuracy':>8} {'macro F1':>8} {'confidence':>10} "
          f"{'CV accuracy':>13}  trained")
    for version in repository.versions():
        metadata = version.metadata
        metrics = metadata["metrics"]
        print(f"{version.version:<9} {named.get(version.version, ''):<11} "
              f"{metrics['test_accuracy']:>8.3f} {metrics['test_macro_f1']:>8.3f} "
              f"{metrics['test_mean_confidence']:>10.3f} "
              f"{metrics['cv_accuracy_mean']:>7.3f} ± {metrics['cv_accuracy_std']:.3f}  "
              f"{metadata['training']['trained_at']}")
    if aliases["previous"]:
        print(f"rollback goes to {aliases['previous'][-1]}")


def train_version(repository, args):
    recipe = args.recipe or args.version
    if recipe not in train.RECIPES:
        raise LifecycleError(f"{args.version} is no shipped recipe: name one with --recipe "
                             f"({', '.join(train.RECIPES)})")
    metadata = train.train_into(repository, args.version, args.data, train.RECIPES[recipe])
    print(f"trained {train.summary(metadata)}")
    problems = repository.check(args.version, args.min_accuracy)
    print("it may serve" if not problems else f"it cannot serve: {'; '.join(problems)}")


def check_version(repository, args):
    problems = repository.check(args.version, args.min_accuracy)
    for problem in problems:
        print(f"{args.version}: {problem}")
    if problems:
        return 1
    print(f"{args.version} may serve as production or candidate")
    return 0


def stage(repository, args):
    show(repository.stage(None if args.none else args.version, args.min_accuracy))


def promote(repository, args):
    show(repository.promote(args.version, args.min_accuracy))


def rollback(repository, args):
    show(repository.rollback())


def show(aliases):
    print(f"production: {aliases[PRODUCTION]}, candidate: {aliases[CANDIDATE]}")


def parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=Config.MODEL_REPOSITORY,
                        help="the model repository (default: PREDICTOR_MODEL_REPOSITORY or "
                             "%(default)s)")
    parser.add_argument("--min-accuracy", type=float, default=Config.MIN_ACCURACY,
                        help="the least held-out accuracy to serve (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    lister = commands.add_parser("list", help="versions, aliases and metrics")
    lister.set_defaults(run=list_versions)
    trainer = commands.add_parser("train", help="train a new version")
    trainer.add_argument("version")
    trainer.add_argument("--recipe", choices=train.RECIPES,
                         help="a shipped version's recipe (default: the version's own)")
    trainer.add_argument("--data", type=Path, default=train.DEFAULT_DATA, help="labelled CSV")
    trainer.set_defaults(run=train_version)
    checker = commands.add_parser("check", help="may this version serve?")
    checker.add_argument("version")
    checker.set_defaults(run=check_version)
    stager = commands.add_parser("stage", help="name the candidate")
    stager.add_argument("version", nargs="?")
    stager.add_argument("--none", action="store_true", help="no candidate")
    stager.set_defaults(run=stage)
    promoter = commands.add_parser("promote", help="make a version (the candidate) production")
    promoter.add_argument("version", nargs="?")
    promoter.set_defaults(run=promote)
    commands.add_parser("rollback", help="production goes back one version").set_defaults(
        run=rollback)
    return parser


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "stage" and (args.version is None) == (not args.none):
        parser().error("stage takes a version or --none")
    try:
        return args.run(Repository(args.repository), args) or 0
    except (LifecycleError, UnknownVersion) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
