"""The rolling restart of a running local stack's predictor replicas."""

import re
import time

from . import supervisor
from .runner import READY_TIMEOUT, StackError, answers_ok, say


def replica_ports(layout):
    """The ports of the predictor replicas that this run's supervisord manages."""
    result = supervisor.supervisorctl(layout, "status", "predictor:*")
    names = re.findall(r"^predictor:predictor-(\d+)\s", result.stdout, re.MULTILINE)
    ports = sorted(int(port) for port in names)
    if not ports:
        raise StackError(f"no running stack in {layout.run_dir}: {result.stdout or result.stderr}")
    return ports


def rolling_restart(layout, settle=5.0):
    """Restart the predictor replicas one after another, each ready before the next goes.

    supervisord stops a replica with SIGTERM (gunicorn finishes its requests in flight)
    and starts it again; while it is away the gateway retries its requests on the others.
    After it answers /ready, `settle` seconds pass (the gateway's fail_timeout) so that
    the gateway has it back in rotation before the next replica leaves.
    """
    for port in replica_ports(layout):
        name = f"predictor:predictor-{port}"
        result = supervisor.supervisorctl(layout, "restart", name)
        if result.returncode != 0:
            raise StackError(f"could not restart {name}: {result.stdout}{result.stderr}")
        deadline = time.monotonic() + READY_TIMEOUT
        while not answers_ok(f"http://127.0.0.1:{port}/ready"):
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready after {READY_TIMEOUT}s: see {layout.log_dir}")
            time.sleep(0.2)
        say(f"restarted {name}")
        time.sleep(settle)
