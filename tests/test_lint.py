"""The code passes the linter set up in pyproject.toml ([tool.ruff])."""

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")

    result = subprocess.run(
        [str(ruff), "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT, capture_output=True, text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
