"""supervisord, the local stack's process manager: start it, ask it, and clear what a
stack of the same run folder left behind."""

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True)


def start(layout):
    """Start supervisord for the layout, as a child that dies with this process.

    It gets a session of its own, so that a Ctrl-C reaches this process only, which then
    stops the stack in order (Nginx first, gracefully) instead of every process at once.
    The kernel sends it SIGTERM, its own graceful stop, when this process dies however
    it dies (PR_SET_PDEATHSIG): a killed `python -m gateway up` leaves no stack behind.
    """
    parent = os.getpid()

    def die_with_parent():  # runs in the child, between fork and exec
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(layout.supervisord_conf)],
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def supervisorctl(layout, *args, timeout=120):
    """Run supervisorctl against this run's supervisord; return the completed process.

    Bounded: a restart waits for the program to stop (stopwaitsecs, 30 s at most) and
    to start again. Past timeout, the result is a failure (status -1) that says so.
    """
    command = [sys.executable, "-m", "supervisor.supervisorctl",
               "-c", str(layout.supervisord_conf), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, -1, "", f"no answer within {timeout} s\n")


@dataclass
class Leftovers:
    """The processes of a stack of one run folder that are still there."""

    supervisord: int | None  # its pid, when it runs
    runner: int | None  # the live process that supervisord belongs to, if any
    pids: list  # every process of the stack, supervisord included


def find_leftovers(layout):
    """Find the processes of a stack of this run folder, if any run.

    supervisord gives each program the URL of its socket in the environment
    (SUPERVISOR_SERVER_URL), which every gunicorn and its workers keep, even when
    supervisord itself was killed and they were left behind; Nginx rewrites its own
    environment, so its master is known by its pid file and its workers as its children.
    """
    table = processes()
    marker = f"SUPERVISOR_SERVER_URL=unix://{layout.supervisor_socket}".encode()
    nginx_dir = str(layout.nginx_dir).encode()
    supervisord = read_pid(layout.supervisord_pidfile)
    if supervisord not in table or str(layout.supervisord_conf).encode() not in (
        table[supervisord].cmdline
    ):
        supervisord = None
    nginx = read_pid(layout.nginx_dir / "nginx.pid")
    roots = {
        pid for pid, process in table.items()
        if marker in process.environ or (pid == nginx and nginx_dir in process.cmdline)
    } | ({supervisord} if supervisord else set())
    pids = sorted(pid for pid in table if roots & {pid, *ancestors(table, pid)})
    runner = table[supervisord].ppid if supervisord else None
    if runner is not None and not is_runner(table.get(runner)):
        runner = None  # supervisord outlived the runner that started it
    return Leftovers(supervisord, runner, pids)


def clear(leftovers, timeout=40):
    """Stop the processes of a stale stack: supervisord first (it stops its programs
    gracefully), then what is left, by force after timeout seconds."""
    if leftovers.supervisord:
        signal_each([leftovers.supervisord], signal.SIGTERM)
        wait_gone([leftovers.supervisord], timeout)
    signal_each(leftovers.pids, signal.SIGTERM)
    if not wait_gone(leftovers.pids, timeout):
        signal_each(leftovers.pids, signal.SIGKILL)
        wait_gone(leftovers.pids, 5)


@dataclass
class Process:
    ppid: int = 0
    cmdline: bytes = b""
    environ: tuple = ()


def processes():
    """This user's processes by pid (those of others cannot be read, and are no concern)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # "pid (command) state ppid ...": the command may hold spaces and parentheses.
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except (OSError, IndexError, ValueError):  # gone meanwhile, or not ours
            continue
        table[int(entry)] = Process(ppid, command, tuple(variables))
    return table


def is_runner(process):
    """Tell whether a process is a `python -m gateway up`."""
    return process is not None and b"\0-m\0gateway\0up\0" in b"\0" + process.cmdline


def ancestors(table, pid):
    seen = []
    while pid in table and table[pid].ppid not in (0, 1) and table[pid].ppid not in seen:
        pid = table[pid].ppid
        seen.append(pid)
    return seen


def read_pid(path):
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def signal_each(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie has ended
    except OSError:
        return False


def wait_gone(pids, timeout):
    """Wait until none of pids runs; return whether that happened within timeout."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
