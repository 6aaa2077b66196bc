"""`python -m gateway up`: it refuses to start, with a clear message, when it cannot, and
whatever stops it (a signal, a closed terminal, a kill), it leaves no process behind."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from gateway import render, runner
from gateway.__main__ import parser
from gateway.layout import Layout
from gateway.runner import LocalStack
from gateway.supervisor import find_leftovers
from tests.support import ROOT, StackUnderTest, free_port, free_port_range, port_is_free, wait_until


def run_up(*args):
    return subprocess.run(
        [sys.executable, "-m", "gateway", "up", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def test_port_in_use_is_reported_and_nothing_starts(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_up(
            "--port", str(port), "--logger-port", str(free_port()),
            "--predictor-base-port", str(free_port_range(3)), "--run-dir", str(tmp_path),
        )

    assert result.returncode == 1
    assert f"port(s) {port} already in use" in result.stderr
    assert not (tmp_path / "supervisord.conf").exists()


def test_missing_nginx_is_reported_with_the_command_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(render, "find_nginx", lambda: None)
    layout = Layout(run_dir=tmp_path)

    with pytest.raises(runner.StackError, match="apt-get install -y nginx"):
        runner.check_can_start(layout)


def test_without_root_the_setup_prints_the_one_command_that_installs_what_is_missing(tmp_path):
    # A machine without Nginx or Python's venv module, seen by a user who is not root:
    # an empty /usr/sbin in a mount namespace of its own, a python3 without venv first on
    # the PATH, and the user mapped to nobody.
    (tmp_path / "python3").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "python3").chmod(0o755)
    script = (ROOT / "gateway" / "install-system-packages.sh").read_text()

    result = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c",
         "mount -t tmpfs tmpfs /usr/sbin && exec unshare --user --map-user=65534 bash -s"],
        input=script, env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "Missing: nginx python3-venv. Install with:  sudo apt-get install -y nginx python3-venv\n"
    )


@pytest.mark.parametrize("percent", ["-1", "100.5", "10.125"])
def test_the_canarys_share_must_be_a_percentage_with_at_most_two_decimals(percent):
    result = run_up("--canary-percent", percent)

    assert result.returncode == 2
    assert "the canary's share must be a percentage from 0 to 100" in result.stderr


def test_predictors_must_be_at_least_one():
    result = run_up("--predictors", "0")

    assert result.returncode == 2
    assert "--predictors must be at least 1" in result.stderr


def test_the_command_line_gives_back_the_layout_it_was_given(tmp_path):
    layout = Layout(predictors=5, port=1, logger_port=2, predictor_base_port=3,
                    predictor_workers=4, run_dir=tmp_path, rate_limit="7r/s", rate_burst=9,
                    rate_limit_enabled=False, access_metrics=False, monitoring=True,
                    api_keys=tmp_path / "keys", public=True, canary_percent=12.5,
                    shadow_percent=5,
                    model_repository=tmp_path / "models")

    assert Layout.from_arguments(parser().parse_args(["up", *layout.arguments()])) == layout
    assert Layout.from_arguments(parser().parse_args(["up"])) == Layout()


def gone(stack):
    """Whether every process of the stack has ended and every port of it is free."""
    return (find_leftovers(stack.layout).pids == []
            and all(port_is_free(port) for port in stack.layout.ports()))


def test_sigterm_stops_the_stack_and_leaves_no_process(tmp_path):
    stack = StackUnderTest(tmp_path, predictors=1).start()
    supervisord_pid = int(stack.layout.supervisord_pidfile.read_text())

    stack.process.send_signal(signal.SIGTERM)

    assert stack.process.wait(timeout=60) == 0
    assert "Stack stopped." in stack.output()
    assert gone(stack)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout == ""
    assert not os.path.exists(f"/proc/{supervisord_pid}")


def test_ctrl_c_while_starting_stops_everything_without_an_error(tmp_path):
    stack = StackUnderTest(tmp_path, predictors=1).launch()
    # supervisord has started the replica, which loads its model before it listens.
    wait_until(lambda: "spawned: 'predictor-" in stack.output(), what="the replica starting")

    stack.process.send_signal(signal.SIGINT)

    assert stack.process.wait(timeout=60) == 0
    assert "Stack ready." not in stack.output()  # it was stopped while starting
    assert "Stack stopped." in stack.output() and "error" not in stack.output()
    assert gone(stack)


def test_a_killed_runner_takes_the_stack_with_it(tmp_path):
    stack = StackUnderTest(tmp_path, predictors=1).start()
    assert not gone(stack)

    stack.process.kill()  # SIGKILL: no handler runs; supervisord is told by the kernel
    stack.process.wait()

    wait_until(lambda: gone(stack), timeout=60, what="the stack stopping")


def test_a_killed_supervisord_is_cleared_up_by_the_runner(tmp_path):
    stack = StackUnderTest(tmp_path, predictors=1).start()
    supervisord_pid = int(stack.layout.supervisord_pidfile.read_text())

    os.kill(supervisord_pid, signal.SIGKILL)  # its programs are left behind, orphans

    assert stack.process.wait(timeout=60) == 1
    assert f"error: supervisord ended with status {-signal.SIGKILL}" in stack.output()
    assert gone(stack)


def test_a_stale_stack_of_the_same_run_folder_is_stopped_by_the_next_up(tmp_path):
    first = StackUnderTest(tmp_path, predictors=1).start()
    supervisord_pid = int(first.layout.supervisord_pidfile.read_text())
    # Runner and supervisord both killed, so that nobody stops the programs: they go
    # on running, holding the ports, as after a crash.
    os.kill(first.process.pid, signal.SIGSTOP)
    os.kill(supervisord_pid, signal.SIGKILL)
    first.process.kill()
    first.process.wait()
    stale = find_leftovers(first.layout).pids
    assert stale and not port_is_free(first.port)

    second = LocalStack(first.layout).start()
    try:
        assert f"Stopping a stale stack of {tmp_path}" in second.output()
        assert not set(stale) & set(find_leftovers(first.layout).pids)
        assert runner.answers_ok(f"{second.url}/health")
    finally:
        assert second.stop() == 0
    assert gone(second)


def test_a_second_up_of_a_running_stack_refuses_and_leaves_it_running(tmp_path):
    with StackUnderTest(tmp_path, predictors=1) as first:
        second = LocalStack(first.layout).launch()

        assert second.process.wait(timeout=60) == 1
        assert f"another `python -m gateway up` (pid {first.process.pid})" in second.output()
        assert runner.answers_ok(f"{first.url}/health")
