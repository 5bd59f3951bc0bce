"""The wheel carries every subpackage and the sample data (`pip install . && cnncli demo`)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "cnncli").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject [tool.setuptools] packages: {found - listed}"
    assert config["tool"]["setuptools"]["package-dir"]["cnncli.sample_data"] == "sample_data"


def test_sample_data_files_match_the_package_data_patterns():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["cnncli.sample_data"]
    root = REPO / "sample_data"
    files = {p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    covered = {p for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    assert files == covered, f"not shipped: {sorted(str(p) for p in files - covered)}"
