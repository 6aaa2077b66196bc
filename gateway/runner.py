"""Run the local stack under supervisord: start it, wait until it is ready, stop it.

`up` runs it in the foreground for `python -m gateway up` (and so `make run`);
`LocalStack` runs that same command in a process of its own, for tests and benchmarks.
"""

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from . import keys, render, supervisor
from .layout import ROOT
from .ports import port_is_free

READY_TIMEOUT = 90
READY_MESSAGE = "Stack ready."
STOPPED_MESSAGE = "Stack stopped."


class StackError(Exception):
    """The stack cannot start; the message says why and what to do."""


def answers_ok(url):
    """Tell whether url answers 200 (an HTTP error or no answer at all is a no)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def say(text):
    """Print text for the user; once the terminal has gone (SIGHUP), print nothing more."""
    try:
        print(text, flush=True)
    except OSError:  # EIO from a closed terminal, EPIPE from a closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def clear_stale_stack(layout):
    """Stop what an earlier run of this run folder left running, unless a runner owns it."""
    leftovers = supervisor.find_leftovers(layout)
    if leftovers.runner:
        raise StackError(
            f"another `python -m gateway up` (pid {leftovers.runner}) runs the stack of "
            f"{layout.run_dir}: stop it first (Ctrl-C in its terminal, or kill {leftovers.runner})."
        )
    if leftovers.pids:
        say(f"Stopping a stale stack of {layout.run_dir}: pids "
            f"{' '.join(map(str, leftovers.pids))}")
        supervisor.clear(leftovers)


def check_keys(layout):
    """A gateway that listens beyond this machine must have keys to check."""
    if layout.api_keys is None:
        if layout.public:
            raise StackError(
                "--public needs API keys: make one with `python -m gateway keys add NAME`, "
                "then add `--api-keys secrets/api-keys`."
            )
        return
    try:
        count = len(keys.read_store(layout.api_keys))
    except (OSError, keys.KeyStoreError) as exc:
        raise StackError(f"cannot read the API keys: {exc}") from exc
    if layout.public and count == 0:
        raise StackError(f"--public needs API keys, and {layout.api_keys} holds none: "
                         "make one with `python -m gateway keys add NAME`.")
    if os.geteuid() == 0 and not readable_by_everyone(layout.api_keys):
        raise StackError(f"{layout.api_keys} must be readable by Nginx's workers, which run "
                         "as nobody: every folder above it searchable, the file readable.")


def readable_by_everyone(path):
    path = Path(path)
    return bool(path.stat().st_mode & stat.S_IROTH) and all(
        folder.stat().st_mode & stat.S_IXOTH for folder in path.parents)


def check_can_start(layout):
    check_keys(layout)
    nginx = render.find_nginx()
    if not nginx:
        raise StackError("Nginx is not installed: run `sudo apt-get install -y nginx`, then retry.")
    if layout.monitoring and None in render.find_monitoring():
        raise StackError("--monitoring needs Prometheus and its Nginx exporter: run "
                         "`sudo apt-get install -y prometheus prometheus-nginx-exporter`.")
    clear_stale_stack(layout)
    busy = [port for port in layout.ports() if not port_is_free(port)]
    if busy:
        raise StackError(
            f"port(s) {', '.join(map(str, busy))} already in use (another `make run`?): "
            "stop that, or choose other ports (python -m gateway up --help)."
        )
    return nginx


def wait_until_ready(layout, supervisord, asked_to_stop, timeout=READY_TIMEOUT):
    """Return once every service is ready (True) or a stop was asked for (False).

    With the gateway's metrics, Nginx is started here (render), once their process
    listens, so that it never sends a line where nothing takes it.
    """
    pending = layout.readiness_urls()
    nginx_started = not layout.access_metrics
    started = time.monotonic()
    next_status_check = started + 2
    while pending and time.monotonic() < started + timeout:
        if asked_to_stop.is_set():
            return False
        if supervisord.poll() is not None:
            raise StackError(f"supervisord exited ({supervisord.returncode}): see {layout.run_dir}")
        if not nginx_started and answers_ok(layout.gateway_metrics_url):
            started_nginx = supervisor.supervisorctl(layout, "start", "nginx")
            if started_nginx.returncode != 0:
                raise StackError(f"Nginx did not start: {started_nginx.stdout}"
                                 f"{started_nginx.stderr}logs: {layout.log_dir}")
            nginx_started = True
        pending = [url for url in pending if not answers_ok(url)]
        if pending and time.monotonic() > next_status_check:
            next_status_check += 2
            status = supervisor.supervisorctl(layout, "status").stdout
            if "FATAL" in status:  # supervisord gave up on a program that keeps dying
                raise StackError(f"a program keeps failing:\n{status}logs: {layout.log_dir}")
        if pending:
            time.sleep(0.2)
    if pending:
        status = supervisor.supervisorctl(layout, "status").stdout
        raise StackError(
            f"not ready after {timeout}s: {', '.join(pending)}\n{status}logs: {layout.log_dir}"
        )
    return True


def ready_message(layout):
    replicas = ", ".join(f"http://127.0.0.1:{port}" for port in layout.predictor_ports)
    return (
        f"{READY_MESSAGE}\n"
        f"  gateway     {layout.url}  (POST /process, POST /predict, GET /logs, GET /health)\n"
        f"  docs        {layout.url}/logger/docs  {layout.url}/predictor/docs\n"
        f"  logger      http://127.0.0.1:{layout.logger_port}\n"
        f"  predictors  {replicas}\n"
        + (f"  prometheus  {layout.prometheus_url}  (alerts: {layout.prometheus_url}/alerts)\n"
           if layout.monitoring else "")
        + f"  logs        {layout.log_dir}/\n"
        f"Ctrl-C stops everything."
    )


def up(layout):
    """Run the stack until SIGINT, SIGTERM or SIGHUP; return an exit status."""
    nginx = check_can_start(layout)
    render.write_all(layout, nginx)
    asked_to_stop = threading.Event()
    supervisord = None

    def stop(signum=None, frame=None):
        if signum is not None:
            asked_to_stop.set()
        if supervisord and supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)

    # Set before supervisord starts, so that no signal can leave it running alone.
    # SIGHUP is a closed terminal: the stack goes with it.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    supervisord = supervisor.start(layout)
    if asked_to_stop.is_set():
        stop()
    try:
        if wait_until_ready(layout, supervisord, asked_to_stop):
            say(ready_message(layout))
    except StackError:
        stop()
        supervisord.wait()
        if not asked_to_stop.is_set():  # a stop asked for while starting is no error
            raise
    finally:
        supervisord.wait()
        # supervisord stops its programs before it exits; killed, it cannot.
        leftovers = supervisor.find_leftovers(layout)
        if leftovers.pids:
            supervisor.clear(leftovers)
    say(STOPPED_MESSAGE)
    if supervisord.returncode not in (0, -signal.SIGTERM):
        raise StackError(f"supervisord ended with status {supervisord.returncode}: see "
                         f"{layout.run_dir / 'supervisord.log'}")
    return 0


def wait_for_output(process, path, text, timeout):
    """Wait until a process has written text to its output file; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while text not in (output := path.read_text(errors="replace")):
        if process.poll() is not None:
            raise StackError(f"exited with {process.returncode} before {text!r}:\n{output}")
        if time.monotonic() > deadline:
            raise StackError(f"no {text!r} after {timeout}s:\n{output}")
        time.sleep(0.1)


class LocalStack:
    """The stack of one layout, run by `python -m gateway up` in a process of its own.

    For tests and benchmarks: the logger's database goes into the run folder unless env
    says otherwise; the output of the command goes to gateway-up.log there.
    """

    def __init__(self, layout, env=None):
        self.layout = layout
        database = str(layout.run_dir / "logger.sqlite3")
        self.env = {**os.environ, "LOGGER_DB_PATH": database, **(env or {})}
        self.output_path = layout.run_dir / "gateway-up.log"
        self.process = None

    @property
    def url(self):
        return self.layout.url

    @property
    def port(self):
        return self.layout.port

    @property
    def logger_port(self):
        return self.layout.logger_port

    @property
    def predictor_ports(self):
        return self.layout.predictor_ports

    @property
    def run_dir(self):
        return self.layout.run_dir

    def command(self):
        return [sys.executable, "-m", "gateway", "up", *self.layout.arguments()]

    def launch(self):
        """Start the command and return at once."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def start(self, timeout=READY_TIMEOUT + 30):
        """Start the command and wait until it says the stack is ready."""
        self.launch()
        try:
            wait_for_output(self.process, self.output_path, READY_MESSAGE, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=60):
        """Stop as Ctrl-C would; return the exit status."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def wait_ready(self, timeout=60):
        """Wait until every service of the running stack is ready again."""
        deadline = time.monotonic() + timeout
        pending = self.layout.readiness_urls()
        while pending and time.monotonic() < deadline:
            pending = [url for url in pending if not answers_ok(url)]
            time.sleep(0.1)
        if pending:
            raise StackError(f"not ready: {pending}")

    def output(self):
        return self.output_path.read_text(errors="replace")

    def log(self, program):
        return (self.layout.log_dir / f"{program}.log").read_text(errors="replace")

    def supervisorctl(self, *args):
        return supervisor.supervisorctl(self.layout, *args)

    def replica_pid(self, port):
        """The pid of one replica's gunicorn master (a process group leader)."""
        return int(self.supervisorctl("pid", f"predictor:predictor-{port}").stdout.strip())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
