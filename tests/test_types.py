"""The type check CI runs: mypy on the package with the configuration in pyproject.toml
([tool.mypy]: python_version, packages, the untyped third-party modules), at 0 errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_reports_no_errors():
    env = {**os.environ, "MYPY_FORCE_COLOR": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert done.returncode == 0 and not errors, (
        f"mypy exited {done.returncode} with {len(errors)} errors:\n{done.stdout}{done.stderr}"
    )
    assert "Success: no issues found" in done.stdout
