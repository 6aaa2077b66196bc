"""`make run`, the README's first command, end to end: its examples give the documented answers."""

import os
import signal
import subprocess

import pytest

from tests.support import (
    ROOT,
    matches,
    port_is_free,
    readme_examples,
    run_example,
    wait_for_output,
)

DEFAULT_PORTS = [8080, 8000, 8001, 8002, 8003]
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
    assert all(port_is_free(port) for port in DEFAULT_PORTS)
    leftovers = subprocess.run(["pgrep", "-f", str(ROOT / ".run")], capture_output=True, text=True)
    assert leftovers.stdout == ""
