"""`make run`, the README's first command, end to end: its examples give the documented answers."""

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time

import pytest

from gateway.layout import Layout
from tests.support import (
    ROOT,
    matches,
    port_is_free,
    readme_examples,
    run_example,
    wait_for_output,
    wait_until,
)

DEFAULT_PORTS = Layout().ports()  # what `make run` uses
GATEWAY = "http://localhost:8080"


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    busy = [port for port in DEFAULT_PORTS if not port_is_free(port)]
    assert not busy, f"make run needs ports {busy}: stop what holds them"
    output = tmp_path_factory.mktemp("make-run") / "output.log"
    env = {**os.environ, "LOGGER_DB_PATH": str(output.parent / "logger.sqlite3")}
    with open(output, "wb") as out:
        process = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_output(process, output, "Stack ready.", timeout=180)
        yield process, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
            process.wait(timeout=60)


def test_readme_has_examples_through_the_gateway():
    assert len(readme_examples(GATEWAY)) >= 6


def example_id(value):
    """The test id of an example: the start of its request body."""
    return value.split("-d ")[-1][:40] if isinstance(value, str) else ""


@pytest.mark.parametrize("command, answer", readme_examples(GATEWAY), ids=example_id)
def test_readme_example_gives_the_documented_answer(make_run, command, answer):
    actual = run_example(command, GATEWAY, GATEWAY)

    assert matches(answer, actual), actual


def test_ctrl_c_stops_everything_and_frees_the_ports(make_run):
    process, output = make_run

    os.killpg(process.pid, signal.SIGINT)
    # make dies of the interrupt it received too, once its recipe has finished.
    assert process.wait(timeout=60) in (0, -signal.SIGINT), output.read_text()

    assert "Stack stopped." in output.read_text()
    assert nothing_left()


def nothing_left():
    """Whether every default port is free and no process of ROOT/.run runs."""
    leftovers = subprocess.run(["pgrep", "-f", str(ROOT / ".run")], capture_output=True, text=True)
    return all(port_is_free(port) for port in DEFAULT_PORTS) and leftovers.stdout == ""


def read_until(fd, text, timeout):
    """Read a terminal's output until text appears; return all of it."""
    output, deadline = b"", time.monotonic() + timeout
    while text.encode() not in output:
        assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{output.decode()}"
        if select.select([fd], [], [], 1)[0]:
            output += os.read(fd, 65536)
    return output.decode()


def test_closing_the_terminal_stops_everything_and_frees_the_ports(tmp_path):
    # As in a terminal: a shell leads a session whose controlling terminal is a pty, and
    # runs make run in the foreground. Closing the terminal hangs the shell up, and the
    # kernel sends SIGHUP to the foreground job: make and the runner.
    assert nothing_left(), "make run needs its ports: stop what holds them"
    terminal, terminal_side = pty.openpty()

    def lead_a_session_on_the_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {**os.environ, "LOGGER_DB_PATH": str(tmp_path / "logger.sqlite3")}
    shell = subprocess.Popen(["sh", "-c", "make run; echo make ended"], cwd=ROOT, env=env,
                             stdin=terminal_side, stdout=terminal_side, stderr=terminal_side,
                             preexec_fn=lead_a_session_on_the_terminal)
    os.close(terminal_side)
    try:
        read_until(terminal, "Stack ready.", timeout=180)
    finally:
        os.close(terminal)  # the terminal window closes

    shell.wait(timeout=60)
    wait_until(nothing_left, timeout=60, what="the stack stopping")
