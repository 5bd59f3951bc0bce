"""Shell completion offers option values (--format, --arch, --task, --fit, --precision,
--lr-schedule, --backbone, --monitor, --kernel, ...), each list from its one home in the
library, and completing never imports TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cnncli.filters.kernels import NAMED_KERNELS
from cnncli.images.spec import FITS
from cnncli.models.backbones import BACKBONES
from cnncli.models.formats import FORMATS
from cnncli.models.head import TASKS
from cnncli.models.presets import ARCHITECTURES
from cnncli.training.precision import PRECISIONS
from cnncli.training.transfer import SCHEDULES

_COMPLETE = """
import json, sys
sys.argv = ["cnncli"]
from cnncli.cli.main import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(m for m in ("tensorflow", "keras") if m in sys.modules)))
"""


def complete(repo, line: str) -> tuple[list[str], list[str]]:
    """What bash completion offers for the last word of `line` (typer's protocol), and the
    heavy modules that completing loaded."""
    words = line.split(" ")
    env = {
        **os.environ,
        "_CNNCLI_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
        "_TYPER_COMPLETE_ARGS": line,
        "PYTHONPATH": str(repo),
    }
    out = subprocess.run(
        [sys.executable, "-c", _COMPLETE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=repo,
    )
    return out.stdout.split(), json.loads(out.stderr.strip().splitlines()[-1])


def test_option_values_complete_without_tensorflow(repo):
    cases = {
        "cnncli export m.keras --format ": list(FORMATS),
        "cnncli train data --arch ": list(ARCHITECTURES),
        "cnncli summary --arch ": list(ARCHITECTURES),
        "cnncli dataset build imgs --task ": list(TASKS),
        "cnncli dataset build imgs --fit ": list(FITS),
        "cnncli train data --precision ": list(PRECISIONS),
        "cnncli train data --lr-schedule ": list(SCHEDULES),
        "cnncli train data --backbone ": list(BACKBONES),
        "cnncli summary --backbone mobilenet": [b for b in BACKBONES if b.startswith("mobilenet")],
        "cnncli filter img.png --kernel sobel": [k for k in NAMED_KERNELS if k.startswith("sobel")],
        "cnncli train data --monitor val_": [
            "val_loss",
            "val_accuracy",
            "val_f1_micro",
            "val_f1_macro",
            "val_auc",
            "val_mae",
            "val_rmse",
            "val_r2",
        ],
    }
    for line, want in cases.items():
        got, heavy = complete(repo, line)
        assert got == want, line
        assert heavy == [], line
