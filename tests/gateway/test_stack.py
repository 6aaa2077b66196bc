"""`python -m gateway up` refuses to start, with a clear message, when it cannot."""

import socket
import subprocess
import sys

import pytest

from gateway import render, stack
from tests.support import ROOT, free_port, free_port_range


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
    layout = render.Layout(run_dir=tmp_path)

    with pytest.raises(stack.StackError, match="apt-get install -y nginx"):
        stack.check_can_start(layout)


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


def test_predictors_must_be_at_least_one():
    result = run_up("--predictors", "0")

    assert result.returncode == 2
    assert "--predictors must be at least 1" in result.stderr
