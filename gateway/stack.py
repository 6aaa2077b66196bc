"""Start, watch and stop the local stack under supervisord."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from . import render

READY_TIMEOUT = 90


class StackError(Exception):
    """The stack cannot start; the message says why and what to do."""


def port_in_use(port):
    """Tell whether something listens on the loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def answers_ok(url):
    """Tell whether url answers 200 (an HTTP error or no answer at all is a no)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def readiness_urls(layout):
    """Every URL that must answer 200 before the stack is ready."""
    return [
        *(f"http://127.0.0.1:{port}/ready" for port in layout.predictor_ports),
        f"http://127.0.0.1:{layout.logger_port}/ready",
        f"http://127.0.0.1:{layout.port}/health",
    ]


def supervisorctl(layout, *args):
    """Run supervisorctl against this run's supervisord; return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(layout.supervisord_conf),
         *args],
        capture_output=True,
        text=True,
    )


def check_can_start(layout):
    nginx = render.find_nginx()
    if not nginx:
        raise StackError("Nginx is not installed: run `sudo apt-get install -y nginx`, then retry.")
    busy = [port for port in layout.ports() if port_in_use(port)]
    if busy:
        raise StackError(
            f"port(s) {', '.join(map(str, busy))} already in use (another `make run`?): "
            "stop that, or choose other ports (python -m gateway up --help)."
        )
    return nginx


def wait_until_ready(layout, supervisord, asked_to_stop):
    """Return once every service is ready (True) or a stop was asked for (False)."""
    pending = readiness_urls(layout)
    started = time.monotonic()
    next_status_check = started + 2
    while pending and time.monotonic() < started + READY_TIMEOUT:
        if asked_to_stop.is_set():
            return False
        if supervisord.poll() is not None:
            raise StackError(f"supervisord exited ({supervisord.returncode}): see {layout.run_dir}")
        pending = [url for url in pending if not answers_ok(url)]
        if pending and time.monotonic() > next_status_check:
            next_status_check += 2
            status = supervisorctl(layout, "status").stdout
            if "FATAL" in status:  # supervisord gave up on a program that keeps dying
                raise StackError(f"a program keeps failing:\n{status}logs: {layout.log_dir}")
        if pending:
            time.sleep(0.2)
    if pending:
        status = supervisorctl(layout, "status").stdout
        raise StackError(
            f"not ready after {READY_TIMEOUT}s: {', '.join(pending)}\n{status}"
            f"logs: {layout.log_dir}"
        )
    return True


def print_urls(layout):
    gateway = f"http://127.0.0.1:{layout.port}"
    replicas = ", ".join(f"http://127.0.0.1:{port}" for port in layout.predictor_ports)
    print(
        f"Stack ready.\n"
        f"  gateway     {gateway}  (POST /process, POST /predict, GET /logs, GET /health)\n"
        f"  docs        {gateway}/logger/docs  {gateway}/predictor/docs\n"
        f"  logger      http://127.0.0.1:{layout.logger_port}\n"
        f"  predictors  {replicas}\n"
        f"  logs        {layout.log_dir}/\n"
        f"Ctrl-C stops everything.",
        flush=True,
    )


def up(layout):
    """Run the stack until SIGINT or SIGTERM; return an exit status."""
    nginx = check_can_start(layout)
    render.write_all(layout, nginx)
    asked_to_stop = threading.Event()
    supervisord = None

    def stop(signum=None, frame=None):
        if signum is not None:
            asked_to_stop.set()
        if supervisord and supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)

    # Set before supervisord starts, so that no Ctrl-C can leave it running alone.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Its own session: a Ctrl-C reaches this process only, which then stops the
    # stack in order (Nginx first, gracefully) instead of every process at once.
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(layout.supervisord_conf)],
        start_new_session=True,
    )
    if asked_to_stop.is_set():
        stop()
    try:
        if wait_until_ready(layout, supervisord, asked_to_stop):
            print_urls(layout)
    except StackError:
        stop()
        supervisord.wait()
        if not asked_to_stop.is_set():  # a Ctrl-C while starting is no error
            raise
    supervisord.wait()
    print("Stack stopped.", flush=True)
    return 0 if supervisord.returncode in (0, -signal.SIGTERM) else supervisord.returncode


def replica_ports(layout):
    """The ports of the predictor replicas that this run's supervisord manages."""
    result = supervisorctl(layout, "status", "predictor:*")
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
        result = supervisorctl(layout, "restart", name)
        if result.returncode != 0:
            raise StackError(f"could not restart {name}: {result.stdout}{result.stderr}")
        deadline = time.monotonic() + READY_TIMEOUT
        while not answers_ok(f"http://127.0.0.1:{port}/ready"):
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready after {READY_TIMEOUT}s: see {layout.log_dir}")
            time.sleep(0.2)
        print(f"restarted {name}", flush=True)
        time.sleep(settle)
