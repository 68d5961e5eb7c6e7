"""The code stays readable and typed: ruff and mypy (strict) pass on the package, as configured in pyproject,
and no module grows past 400 lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([str(BIN / "ruff"), "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = subprocess.run([str(BIN / "mypy"), "src"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


MODULE_MAX_LINES = 400


def test_no_module_of_the_package_is_over_400_lines() -> None:
    """A module that grows past this holds more than one job: it is split, not let grow."""
    over = {str(path.relative_to(ROOT)): lines for path in sorted((ROOT / "src").rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > MODULE_MAX_LINES}
    assert over == {}
