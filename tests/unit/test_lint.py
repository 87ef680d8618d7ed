"""The code passes ruff with ruff.toml, as the lint job of .github/workflows/ci.yml checks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import require

REPO = Path(__file__).resolve().parents[2]
FIX = "ruff check --fix . && ruff format ."


def _ruff() -> str:
    beside_python = Path(sys.executable).with_name("ruff")
    found = str(beside_python) if beside_python.exists() else shutil.which("ruff")
    require(found is not None, "ruff is not installed (it is in the test extra: pip install -c constraints.txt -e '.[test]')")
    return str(found)


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff_passes(command):
    proc = subprocess.run([_ruff(), *command], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, f"ruff {' '.join(command)} found problems (fix them with: {FIX}):\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"


def test_ruff_reads_our_configuration():
    # A ruff that ignored ruff.toml would pass on its defaults and check nothing we chose.
    proc = subprocess.run([_ruff(), "check", "--show-settings", "pipelines/cli.py"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f'Settings path: "{REPO / "ruff.toml"}"' in proc.stdout
    assert "linter.line_length = 200" in proc.stdout
