"""Ship a model version through a running local stack: canary, promote, roll back.

    python -m gateway rollout status
    python -m gateway rollout canary 10 --version 1.1.0  # stage 1.1.0, then 10 % of clients
    python -m gateway rollout shadow 20                  # mirror 20 % of production's
    python -m gateway rollout promote                    # the candidate becomes production
    python -m gateway rollout rollback                   # production goes back one version

The model repository's aliases say which version is production and which the candidate
(predictor_service/repository.py); every predictor worker follows them, and serves a
version under its alias only once it has loaded and warmed it up (serving.py). The
gateway says which alias each request asks for (the canary's split_clients). So each
step moves the aliases, waits until every worker of every replica serves the new
version (their metrics say so), and only then changes the gateway's split, by a graceful
reload of Nginx, checked by asking the reloaded gateway what it does.
"""

import contextlib
import dataclasses
import json
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from . import render, supervisor
from .layout import Layout
from .runner import StackError, say

# Loading and warming a version takes about a second; a replica that has not done so in
# this long is not going to.
SERVE_TIMEOUT = 60
RELOAD_TIMEOUT = 30


def predictor_config():
    """The predictor's settings; imported here, not at the top, so that `python -m gateway
    up` does not load scikit-learn for a command that never rolls out."""
    from predictor_service.config import Config

    return Config


def repository_of(layout):
    """The model repository the stack's replicas serve."""
    from predictor_service.repository import Repository

    return Repository(layout.model_repository or predictor_config().MODEL_REPOSITORY)


def min_accuracy():
    return predictor_config().MIN_ACCURACY


def alias_workers(metrics_url):
    """{(alias, version): workers serving it} and the replica's live workers, from its metrics."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    serving, workers = {}, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "predictor_model_alias_workers":
                key = (sample.labels["alias"], sample.labels["version"])
                serving[key] = serving.get(key, 0) + sample.value
            elif sample.name == "predictor_workers":
                workers += sample.value
    return serving, workers


def replica_metrics_urls(layout):
    return [f"http://127.0.0.1:{port}/metrics" for port in layout.predictor_metrics_ports]


def wait_until_served(layout, alias, version, timeout=SERVE_TIMEOUT):
    """Return once every worker of every replica serves version under alias."""
    deadline = time.monotonic() + timeout
    for url in replica_metrics_urls(layout):
        while True:
            try:
                serving, workers = alias_workers(url)
            except OSError:  # a replica restarting: its master answers again shortly
                serving, workers = {}, 0
            if workers and serving.get((alias, version), 0) == workers:
                break
            if time.monotonic() > deadline:
                raise StackError(f"{url.removesuffix('/metrics')} does not serve {version} as "
                                 f"{alias} after {timeout} s: see its log in {layout.log_dir}")
            time.sleep(0.1)
    say(f"every replica serves {version} as {alias}")


def gateway_routing(layout):
    """What the running gateway does now (its /_gateway_routing, on the internal listener)."""
    with urllib.request.urlopen(f"{layout.internal_url}/_gateway_routing", timeout=5) as response:
        return json.load(response)


def set_canary(layout, percent):
    """Send percent of the clients to the candidate (see set_split)."""
    return set_split(layout, canary_percent=percent)


def set_shadow(layout, percent):
    """Mirror percent of production's predictions to the candidate (see set_split)."""
    return set_split(layout, shadow_percent=percent)


def describe_split(routing):
    return (f"the gateway sends {routing['canary_percent']:g} % of the clients to the "
            f"candidate and mirrors {routing['shadow_percent']:g} % of production's "
            "predictions to it")


def accepting_nginx_workers(layout):
    """The pids of the gateway's Nginx workers that still take new connections.

    A worker that a reload stops renames itself "worker process is shutting down" as it
    closes its listening sockets, then ends once its requests in flight have.
    """
    # The master's children alone, read at each poll of a split change: not every
    # process's stat, command line and environment, as supervisor.processes() reads.
    master = supervisor.read_pid(layout.nginx_dir / "nginx.pid")
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:  # no master, or not any more
        return set()
    accepting = set()
    for pid in children:
        with contextlib.suppress(OSError):  # a worker that ended meanwhile
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
            if title.startswith(b"nginx: worker process") and b"shutting down" not in title:
                accepting.add(int(pid))
    return accepting


def set_split(layout, **percents):
    """Change the gateway's split (canary_percent, shadow_percent): rewrite its
    configuration, check it, reload Nginx gracefully, and wait until the gateway does
    so. Return the changed layout."""
    changed = dataclasses.replace(layout, **percents)
    wanted = {"canary_percent": changed.canary_percent,
              "shadow_percent": changed.shadow_percent}
    if gateway_routing(layout) == wanted:
        say(f"{describe_split(wanted)} already")
        changed.save()
        return changed
    conf = layout.nginx_dir / "conf.d" / "gateway.conf"
    previous = conf.read_text()
    conf.write_text(render.render_gateway(changed))
    nginx = render.find_nginx()
    check = subprocess.run([nginx, "-t", "-q", "-p", str(layout.nginx_dir), "-c",
                            str(layout.nginx_dir / "nginx.conf"), "-e", "stderr"],
                           capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        conf.write_text(previous)
        raise StackError(f"the new gateway configuration is refused: {check.stderr.strip()}")
    old_workers = accepting_nginx_workers(layout)
    result = supervisor.supervisorctl(layout, "signal", "HUP", "nginx")
    if result.returncode != 0:
        conf.write_text(previous)
        raise StackError(f"could not reload Nginx: {result.stdout}{result.stderr}")
    # Done once the new workers answer with the new split and the old ones take no more
    # connections: for a moment after the reload both accept, and a new connection that an
    # old worker takes is routed by the old split.
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while gateway_routing(layout) != wanted or accepting_nginx_workers(layout) & old_workers:
        if time.monotonic() > deadline:
            raise StackError(f"the gateway did not take the new split within {RELOAD_TIMEOUT} s: "
                             f"see {layout.log_dir}/nginx.log")
        time.sleep(0.05)
    changed.save()
    say(describe_split(wanted))
    return changed


def canary(layout, percent, version=None):
    """Name version the candidate (if given), wait until every replica serves it, then
    send percent of the clients to it."""
    if not percent and version is None:
        set_canary(layout, 0)
        return
    repository = repository_of(layout)
    if version is not None and repository.aliases()["candidate"] != version:
        repository.stage(version, min_accuracy())
        say(f"{version} is the candidate")
    candidate = repository.aliases()["candidate"]
    if candidate is None:
        raise StackError("no candidate: name one with --version")
    wait_until_served(layout, "candidate", candidate)
    set_canary(layout, percent)


def promote(layout):
    """Make the candidate production everywhere, then end the canary and the shadow
    (there is no candidate left for them)."""
    repository = repository_of(layout)
    candidate = repository.aliases()["candidate"]
    if candidate is None:
        raise StackError("no candidate to promote: start one with `rollout canary`")
    wait_until_served(layout, "candidate", candidate)
    repository.promote(candidate, min_accuracy())
    say(f"{candidate} is production")
    wait_until_served(layout, "production", candidate)
    set_split(layout, canary_percent=0, shadow_percent=0)


def rollback(layout):
    """Make the production version before this one production again everywhere, with
    no candidate, no canary and no shadow."""
    repository = repository_of(layout)
    aliases = repository.rollback()
    say(f"{aliases['production']} is production again")
    set_split(layout, canary_percent=0, shadow_percent=0)
    wait_until_served(layout, "production", aliases["production"])


def shadow(layout, percent):
    """Mirror percent of production's predictions to the candidate, once every replica
    serves one."""
    if percent:
        candidate = repository_of(layout).aliases()["candidate"]
        if candidate is None:
            raise StackError("no candidate to mirror to: start one with `rollout canary 0 "
                             "--version V`")
        wait_until_served(layout, "candidate", candidate)
    set_shadow(layout, percent)


def status(layout):
    aliases = repository_of(layout).aliases()
    say(f"production: {aliases['production']}, candidate: {aliases['candidate']}, "
        f"rollback to: {(aliases['previous'] or [None])[-1]}")
    say(describe_split(gateway_routing(layout)))
    for url in replica_metrics_urls(layout):
        serving, workers = alias_workers(url)
        described = ", ".join(f"{alias} {version} in {count:g}"
                              for (alias, version), count in sorted(serving.items()) if count)
        say(f"{url.removesuffix('/metrics')}: {workers:g} worker(s): {described}")


def run(args):
    """Run one rollout command for `python -m gateway rollout`."""
    try:
        layout = Layout.saved(args.run_dir.resolve())
    except FileNotFoundError as exc:
        raise StackError(f"{exc}: start it with `make run` (or `python -m gateway up`)") from None
    from predictor_service.repository import LifecycleError, UnknownVersion

    try:
        if args.step == "canary":
            canary(layout, args.percent, args.version)
        elif args.step == "shadow":
            shadow(layout, args.percent)
        elif args.step == "promote":
            promote(layout)
        elif args.step == "rollback":
            rollback(layout)
        else:
            status(layout)
    except (LifecycleError, UnknownVersion, ValueError) as exc:  # ValueError: a bad percent
        raise StackError(str(exc)) from None
    except OSError as exc:
        raise StackError(f"the stack of {layout.run_dir} does not answer ({exc}): is it "
                         "running?") from None
