"""gateway.jsonlines: a program's plain lines, each written as a JSON object."""

import json
import subprocess
import sys

from tests.support import ROOT


def test_each_line_of_the_program_becomes_a_json_object_and_its_status_is_kept():
    result = subprocess.run(
        [sys.executable, "-m", "gateway.jsonlines", "exporter", "--",
         "sh", "-c", 'echo "2026/12/03 Starting exporter"; echo "oops" >&2; exit 3'],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )

    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [entry["message"] for entry in entries] == ["2026/12/03 Starting exporter", "oops"]
    assert {(entry["service"], entry["logger"]) for entry in entries} == {("exporter",
                                                                            "exporter")}
    assert result.returncode == 3
    assert result.stderr == ""


def test_without_a_command_it_says_how_to_use_it():
    result = subprocess.run([sys.executable, "-m", "gateway.jsonlines", "exporter"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    assert "usage:" in result.stderr
