"""The bundled sample data: complete, in the course's formats, small, and reproducible."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import PIL
import pytest
from PIL import Image

EXPECTED_SHAPES = ["circle", "square", "star", "triangle"]


def load_script(sample_data):
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", sample_data / "make_sample_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, sample_data):
    """The script run as a user runs it, into a fresh folder."""
    out = tmp_path_factory.mktemp("sample")
    subprocess.run(
        [sys.executable, str(sample_data / "make_sample_data.py"), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_labels_csv_is_the_course_table(sample_data):
    path = sample_data / "facade" / "labels.csv"
    raw = path.read_bytes()
    assert raw.startswith(b",image,type,y\n")  # unnamed index column first, no BOM
    assert "대리석".encode() in raw and "벽돌".encode() in raw  # UTF-8
    table = pd.read_csv(path, index_col=0)
    assert table.columns.tolist() == ["image", "type", "y"]
    assert table.index.tolist() == list(range(40))
    assert table["type"].value_counts().to_dict() == {"대리석": 20, "벽돌": 20}
    assert dict(zip(table["type"], table["y"], strict=True)) == {"대리석": 1, "벽돌": 0}
    assert table["image"].is_unique
    assert all(re.fullmatch(r"BV\d{19}\.png", name) for name in table["image"])
    assert table["image"].tolist() == sorted(table["image"])
    assert set(table["type"][:10]) == {"대리석", "벽돌"}  # classes interleaved, not in blocks


def test_facade_files_present_and_rgba(sample_data):
    folder = sample_data / "facade"
    table = pd.read_csv(folder / "labels.csv", index_col=0)
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(table["image"])
    for name in table["image"]:
        with Image.open(folder / name) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGBA", (128, 128))
            alpha = np.asarray(img)[..., 3]
            rgb = np.asarray(img)[..., :3]
        # a cut-out: opaque wall, a transparent surround with black RGB, a soft edge between
        assert 0.4 < (alpha == 255).mean() < 0.99
        assert (alpha == 0).any() and ((alpha > 0) & (alpha < 255)).any()
        assert (rgb[alpha == 0] == 0).all()


def test_classes_differ_as_described(sample_data):
    folder = sample_data / "facade"
    table = pd.read_csv(folder / "labels.csv", index_col=0)
    for name, kind in zip(table["image"], table["type"], strict=True):
        arr = np.asarray(Image.open(folder / name)).astype(float)
        wall = arr[arr[..., 3] == 255][:, :3]
        red_excess = (wall[:, 0] - wall[:, 2]).mean()
        if kind == "벽돌":  # reddish bricks
            assert red_excess > 40, name
        else:  # light marble
            assert wall.mean() > 150 and red_excess < 40, name


def test_shapes_folders(sample_data):
    root = sample_data / "shapes"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == EXPECTED_SHAPES
    for kind in EXPECTED_SHAPES:
        files = sorted((root / kind).iterdir())
        assert [f.name for f in files] == [f"{kind}_{i:02d}.png" for i in range(20)]
        for f in files:
            with Image.open(f) as img:
                assert (img.mode, img.size) == ("RGB", (32, 32))
                arr = np.asarray(img)
            # a bright shape inside its circle, never reaching the dark corners
            corners = arr[[0, 0, -1, -1], [0, -1, 0, -1]]
            assert (corners < 90).all(), f
            assert (arr.min(axis=2) >= 130).sum() > 32, f  # plenty of fully bright pixels


def test_facade_measures_are_measured_on_the_pixels(sample_data):
    """measures.csv (regression targets): brightness = mean RGB over the opaque wall, wall =
    the fraction with alpha >= 128, as the README says; marble is the brighter class."""
    folder = sample_data / "facade"
    measures = pd.read_csv(folder / "measures.csv")
    labels = pd.read_csv(folder / "labels.csv", index_col=0)
    assert measures.columns.tolist() == ["image", "brightness", "wall"]
    assert measures["image"].tolist() == labels["image"].tolist()
    for name, brightness, wall in measures.itertuples(index=False):
        arr = np.asarray(Image.open(folder / name)).astype(float)
        assert brightness == pytest.approx(arr[arr[..., 3] == 255][:, :3].mean(), abs=0.051)
        assert wall == pytest.approx((arr[..., 3] >= 128).mean(), abs=0.0006)
    both = measures.merge(labels, on="image")
    assert both[both["type"] == "벽돌"]["brightness"].max() < 150
    assert both[both["type"] == "대리석"]["brightness"].min() > 180
    assert 0.5 <= measures["wall"].min() and measures["wall"].max() <= 0.8


def test_multishapes_table_names_the_shapes_two_ways(sample_data):
    folder = sample_data / "multishapes"
    table = pd.read_csv(folder / "labels.csv", keep_default_na=False)
    shapes = ["circle", "square", "triangle"]
    assert table.columns.tolist() == ["image", "tags", *shapes]
    assert table["image"].tolist() == [f"multi_{i:03d}.png" for i in range(100)]
    assert sorted(p.name for p in folder.glob("*.png")) == table["image"].tolist()
    for row in table.itertuples(index=False):
        assert row.tags == ";".join(s for s in shapes if getattr(row, s) == 1)
    assert table[shapes].sum().to_dict() == {"circle": 60, "square": 61, "triangle": 61}
    assert table[shapes].sum(axis=1).value_counts().sort_index().tolist() == [4, 29, 48, 19]
    for name in table["image"][:10]:
        with Image.open(folder / name) as img:
            assert (img.mode, img.size) == ("RGB", (48, 48))


def test_total_size_under_5_mb(sample_data):
    total = sum(p.stat().st_size for p in sample_data.rglob("*") if p.is_file())
    assert total < 5_000_000


def test_readme_describes_the_script_and_seed(sample_data):
    readme = (sample_data / "README.md").read_text(encoding="utf-8")
    script = load_script(sample_data)
    assert "make_sample_data.py" in readme
    assert str(script.SEED) in readme
    assert "128x128" in readme and "32x32" in readme


def test_regeneration_is_deterministic(sample_data, regenerated):
    committed = [
        f for f in files_under(sample_data) if f.startswith(("facade/", "shapes/", "multishapes/"))
    ]
    assert files_under(regenerated) == committed
    for rel in committed:
        new, old = regenerated / rel, sample_data / rel
        if rel.endswith(".png"):
            # the pixels always match; the bytes match with the Pillow (zlib) that made them
            with Image.open(new) as a, Image.open(old) as b:
                assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), rel
            if PIL.__version__ == "13.0.0":
                assert new.read_bytes() == old.read_bytes(), rel
        else:
            assert new.read_bytes() == old.read_bytes(), rel


def test_two_runs_are_byte_identical(sample_data, regenerated, tmp_path):
    script = load_script(sample_data)
    script.make_sample_data(tmp_path)
    assert files_under(tmp_path) == files_under(regenerated)
    for rel in files_under(tmp_path):
        assert (tmp_path / rel).read_bytes() == (regenerated / rel).read_bytes(), rel
