"""The options of `dataset build`: their defaults and the checks made before any file is read."""

from __future__ import annotations

from cnncli.errors import UsageError
from cnncli.images import COLORS, FITS

RECORD_FORMATS = ("raw", "png")
DEFAULT_RECORD_FORMAT = "raw"  # measured: see docs/FORMAT.md ("Record encoding")
DEFAULT_SHARD_SIZE = "64MB"


def check_options(val, test, color, fit, record_format) -> None:
    for name, v in (("--val", val), ("--test", test)):
        if not 0 <= v < 1:
            raise UsageError(f"{name} must be a fraction from 0 to below 1, got {v}")
    if val + test >= 1:
        raise UsageError(f"--val {val} and --test {test} leave nothing to train on")
    if color is not None and color not in COLORS:
        raise UsageError(f"unknown colour {color!r}", f"use one of {', '.join(COLORS)}")
    if fit not in FITS:
        raise UsageError(f"unknown fit {fit!r}", f"use one of {', '.join(FITS)}")
    if record_format not in RECORD_FORMATS:
        raise UsageError(
            f"unknown record format {record_format!r}", f"use one of {', '.join(RECORD_FORMATS)}"
        )


def check_update(engine: str, split_files, overwrite: bool) -> None:
    if engine != "local":
        raise UsageError("--update is for --engine local", "drop --engine ray")
    if split_files:
        raise UsageError(
            "--update keeps the splits the dataset has; --split-files cannot change them",
            "drop --split-files (a --split-col is read for new rows)",
        )
    if overwrite:
        raise UsageError(
            "--update and --overwrite exclude each other",
            "--update keeps the dataset's unchanged shards; --overwrite rebuilds",
        )
