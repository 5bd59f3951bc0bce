"""`cnncli dataset build | info | preview` as users run them: exit codes, stdout/stderr,
--json, the problems table, sample_data end to end (CliRunner and the installed script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def facade(sample_data):
    """The bundled façade set (sample_data/facade: 40 RGBA PNGs and labels.csv)."""
    folder = sample_data / "facade"
    if not (folder / "labels.csv").exists():
        pytest.skip("sample_data/facade not present")
    return folder


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_build_info_preview_on_sample_facade(cli, tmp_path, facade):
    out = tmp_path / "facade"
    r = cli("dataset", "build", facade, "--labels", facade / "labels.csv", "-o", out)
    assert r.exit_code == 0, r.output
    table = r.stdout
    assert "벽돌" in table and "대리석" in table
    body = [ln.split() for ln in table.splitlines() if ln.startswith("│")]
    assert [row for row in body if "벽돌" in row or "total" in row] == [
        ["│", "0", "│", "벽돌", "│", "16", "│", "4", "│", "20", "│"],
        ["│", "│", "total", "│", "32", "│", "8", "│", "40", "│"],
    ]
    assert "colour: rgba (the mode most images have: rgba 40; --color to choose)" in r.stderr
    assert "size: 128x128 (every image has it; --size to change)" in r.stderr
    assert "40/40" in r.stderr  # the progress bar's count

    r = cli("dataset", "info", out, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["classes"] == ["벽돌", "대리석"] and data["shape"] == [128, 128, 4]
    assert data["counts"] == {"train": {"벽돌": 16, "대리석": 16}, "val": {"벽돌": 4, "대리석": 4}}
    assert data["unbalanced"] is None and data["encoding"] == "raw"

    r = cli("dataset", "preview", out, "-o", tmp_path / "sheet.png", "--per-class", "3")
    assert r.exit_code == 0, r.output
    assert "captions: class names, drawn with the bundled Hangul font" in r.stderr
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 3 * 128


def test_installed_script_builds_sample_data(tmp_path, facade):
    exe = shutil.which("cnncli")
    if exe is None:
        pytest.skip("the cnncli script is not installed (pip install -e .)")
    out = tmp_path / "ds"
    proc = subprocess.run(
        [
            exe,
            "dataset",
            "build",
            str(facade),
            "--labels",
            str(facade / "labels.csv"),
            "-o",
            str(out),
            "--json",
            "--val",
            "0.25",
            "--test",
            "0.25",
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["counts"]["test"] == {"벽돌": 5, "대리석": 5} and data["total"] == 40
    assert (out / "manifest.json").is_file()
    again = subprocess.run(
        [
            exe,
            "dataset",
            "build",
            str(facade),
            "--labels",
            str(facade / "labels.csv"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert again.returncode == 2
    assert lines(again.stderr) == [
        f"error: {out} already exists: choose another output or pass --overwrite"
    ]


def test_build_shapes_folders_json(cli, tmp_path, sample_data):
    r = cli(
        "dataset",
        "build",
        sample_data / "shapes",
        "-o",
        tmp_path / "s",
        "--json",
        "--classes",
        "triangle,circle,square,star",
        "--val",
        "0.25",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["classes"] == ["triangle", "circle", "square", "star"]
    n = {c: len(list((sample_data / "shapes" / c).glob("*.png"))) for c in data["classes"]}
    assert data["counts"]["val"] == {c: max(1, int(k * 0.25 + 0.5)) for c, k in n.items()}
    assert sum(data["counts"]["train"].values()) + sum(data["counts"]["val"].values()) == sum(
        n.values()
    )
    assert data["image"]["channels"] == 3 and data["skipped"] == []


def test_problems_table_then_one_error_line(cli, tmp_path, write_image):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    for i in range(4):
        write_image(folder / f"{i}.png", rng.integers(0, 256, (5, 5, 3), np.uint8))
    (folder / "bad.png").write_bytes(b"")
    table = tmp_path / "t.csv"
    rows = ["0.png,cat", "1.png,dog", "2.png,cat", "3.png,dog", "bad.png,cat", "nope.png,dog"]
    table.write_text("\n".join(["file,label", *rows]) + "\n")
    r = cli("dataset", "build", folder, "--labels", table, "-o", tmp_path / "ds")
    assert r.exit_code == 2  # named inputs missing or unreadable: a usage error (cnncli.errors)
    err = lines(r.stderr)
    assert err[-1] == (
        "error: 2 problems in the inputs; nothing was written: fix them, or pass --skip-bad "
        "to build from the good rows"
    )
    body = "\n".join(err)
    assert "nope.png" in body and "line 7: file not found" in body
    assert "bad.png" in body and "empty file (0 bytes)" in body
    assert "Traceback" not in r.output and r.stdout == ""
    assert not (tmp_path / "ds").exists()

    r = cli(
        "dataset",
        "build",
        folder,
        "--labels",
        table,
        "-o",
        tmp_path / "ds",
        "--skip-bad",
        "--val",
        "0",
    )
    assert r.exit_code == 0, r.output
    assert "warning: 2 bad rows skipped: see" in r.stderr
    assert (tmp_path / "ds" / "skipped.csv").is_file()


def test_usage_errors_exit_2(cli, tmp_path, write_image):
    write_image(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "b" / "y.png", np.zeros((4, 4, 3), np.uint8))
    r = cli("dataset", "build", tmp_path, "-o", tmp_path / "ds", "--size", "big")
    assert r.exit_code == 2
    assert lines(r.stderr) == [
        "error: bad size 'big': write it as HEIGHTxWIDTH, for example 150x150"
    ]
    r = cli("dataset", "build", tmp_path, "-o", tmp_path / "ds", "--color", "cmyk")
    assert r.exit_code == 2 and lines(r.stderr) == [
        "error: unknown colour 'cmyk': use one of rgba, rgb, grayscale"
    ]
    r = cli("dataset", "build", tmp_path / "none", "-o", tmp_path / "ds")
    assert r.exit_code == 2
    assert lines(r.stderr) == [
        f"error: image folder {tmp_path / 'none'} not found: give the folder holding the images"
    ]


def test_info_warns_when_unbalanced_and_missing_dataset(cli, tmp_path, write_image):
    for cls, n in {"many": 6, "few": 3}.items():
        for j in range(n):
            write_image(tmp_path / "src" / cls / f"{j}.png", np.zeros((4, 4, 3), np.uint8))
    assert cli("dataset", "build", tmp_path / "src", "-o", tmp_path / "ds").exit_code == 0
    r = cli("dataset", "info", tmp_path / "ds")
    assert r.exit_code == 0
    assert (
        "warning: classes are unbalanced: 'many' has 6 images, 'few' 3 (warned at 1.5x or more)"
        in r.stderr
    )
    assert "4x4 RGB (stretch)" in r.stderr and "many" in r.stdout
    r = cli("dataset", "info", tmp_path / "nothing")
    assert r.exit_code == 2
    assert lines(r.stderr) == [
        f"error: dataset folder {tmp_path / 'nothing'} not found: build it with cnncli dataset "
        "build IMAGES_DIR -o DIR"
    ]


def test_info_and_preview_do_not_import_tensorflow(tmp_path, write_image):
    for cls in ("a", "b"):
        for j in range(2):
            write_image(tmp_path / "src" / cls / f"{j}.png", np.zeros((4, 4, 3), np.uint8))
    probe = f"""
import sys
from typer.testing import CliRunner
from cnncli.cli.main import app
src, ds = {str(tmp_path / "src")!r}, {str(tmp_path / "ds")!r}
for args in (["dataset", "build", src, "-o", ds], ["dataset", "info", ds],
             ["dataset", "preview", ds, "-o", ds + ".png"]):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
print("HEAVY=" + ",".join(m for m in ("tensorflow", "keras") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("HEAVY="), out.stdout + out.stderr


def test_preview_falls_back_to_indices_and_legend(tmp_path, monkeypatch, write_image):
    """Without a font that draws Hangul, cells show indices and a legend names the classes."""
    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.preview import preview_sheet
    from cnncli.drawing import fonts

    for cls in ("벽돌", "대리석"):
        for j in range(2):
            write_image(tmp_path / "src" / cls / f"{j}.png", np.zeros((4, 4, 3), np.uint8))
    build_dataset(tmp_path / "src", tmp_path / "ds", val=0.0)
    result = preview_sheet(tmp_path / "ds", tmp_path / "a.png", per_class=2)
    assert result["caption_mode"] == "text" and result["legend"] == []
    monkeypatch.setattr(fonts, "FONT_PATH", tmp_path / "no-such-font.ttf")
    fonts.load_font.cache_clear()
    try:
        result = preview_sheet(tmp_path / "ds", tmp_path / "b.png", per_class=2)
    finally:
        fonts.load_font.cache_clear()
    assert result["caption_mode"] == "legend"
    assert result["legend"] == ["0 = 대리석", "1 = 벽돌"]
    assert "cells show indices; 0 = 대리석; 1 = 벽돌" in result["notes"][-1]
    assert result["counts"] == {"대리석": 2, "벽돌": 2}
