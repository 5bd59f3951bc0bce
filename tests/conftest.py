"""Shared fixtures: tiny images and tables made in tmp_path, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run cnncli in-process: cli("dataset", "info", path) -> Result (exit code, stdout, stderr)."""
    from cnncli.cli.main import app

    def invoke(*args, input=None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke


def write_image(path: Path, array: np.ndarray, mode: str | None = None, **save_kwargs) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if mode is not None:
        img = img.convert(mode)
    img.save(path, **save_kwargs)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
