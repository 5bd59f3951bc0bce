"""Start-up stays light: help, version and the NumPy/Pillow commands never load TensorFlow."""

import subprocess
import sys

import pytest

PROBE = """
import sys
from cnncli.cli.main import app
from typer.testing import CliRunner
result = CliRunner().invoke(app, {args!r})
assert result.exit_code in (0, 2), (result.exit_code, result.output)
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["dataset", "--help"]],
    ids=lambda a: " ".join(a),
)
def test_no_tensorflow_at_startup(args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY=\n" in out or out.strip().endswith("HEAVY="), out


def test_usage_error_is_one_line_exit_2(cli):
    result = cli("--no-such-option")
    assert result.exit_code == 2
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: No such option"), result.stderr
    assert "Traceback" not in result.output


def test_version(cli):
    from cnncli import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cnncli {__version__}"
