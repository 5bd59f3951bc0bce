"""Label tables and table options that gave a wrong answer or "unexpected ..." (issue 23,
items 10 and 15): regression targets beyond float32, values too small for it, a column
named twice in a header or an option, and an option that names no column."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("bad_tables") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _table(path, header: str, rows: list[str]):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_targets_beyond_float32_are_bad_rows_naming_their_line(images, tmp_path, cli):
    """3.5e38, 1e308 and -1e300 passed the 'finite' check and ended the build in "unexpected
    OverflowError"; 3.4e38 is float32's and stays."""
    from cnncli.datasets.targets import load_task_table

    values = ["3.5e38", "1e308", "-1e300", "3.4e38"] + [str(i) for i in range(8)]
    table = _table(tmp_path / "t.csv", "image,y", [f"{i}.png,{v}" for i, v in enumerate(values)])
    ls = load_task_table(table, images, "regression", target_cols=["y"])
    assert ls.problems == [
        (
            f"{i}.png",
            f"line {i + 2}: target 'y' value {v!r} is beyond float32's range "
            "(±3.4e38), in which the dataset stores targets",
        )
        for i, v in enumerate(values[:3])
    ]
    assert [r.label for r in ls.rows][0] == [3.4e38] and len(ls.rows) == 9

    r = cli(
        "dataset",
        "build",
        images,
        "--labels",
        table,
        "--task",
        "regression",
        "--target-col",
        "y",
        "-o",
        tmp_path / "ds",
    )
    assert r.exit_code == 2 and "unexpected" not in r.output
    told = " ".join(r.output.split())
    assert "line 3: target 'y' value '1e308' is beyond float32's range" in told
    r = cli(
        "dataset",
        "build",
        images,
        "--labels",
        table,
        "--task",
        "regression",
        "--target-col",
        "y",
        "-o",
        tmp_path / "ds",
        "--skip-bad",
        "--json",
    )
    assert r.exit_code == 0, r.output
    skipped = (tmp_path / "ds" / "skipped.csv").read_text()
    assert "line 2: target 'y' value '3.5e38'" in skipped and "-1e300" in skipped
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["targets"][0]["max"] == 3.4e38 and manifest["skipped"] == 3


def test_targets_nearer_0_than_float32_normal_are_noted(images, tmp_path, cli):
    """1e-40 was flushed to 0 without a word: the build notes the lines and the manifest
    counts them (the rows stay: a rounding below 1.2e-38 changes no loss)."""
    values = ["1e-40", "-2e-39", "1e-46", "0"] + [str(i) for i in range(8)]
    table = _table(tmp_path / "t.csv", "image,y", [f"{i}.png,{v}" for i, v in enumerate(values)])
    r = cli(
        "dataset",
        "build",
        images,
        "--labels",
        table,
        "--task",
        "regression",
        "--target-col",
        "y",
        "-o",
        tmp_path / "ds",
        "--json",
    )
    assert r.exit_code == 0, r.output
    notes = json.loads(r.stdout)["notes"]
    said = [n for n in notes if "float32's smallest normal number" in n]
    assert said == [
        "note: 3 values of target 'y' (lines 2, 3, 4) are nearer 0 than float32's smallest "
        "normal number (1.2e-38): stored with fewer digits or as 0, and TensorFlow computes "
        "with such values as 0; rescale the column if they matter"
    ]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["targets"][0]["below_float32_normal"] == 3


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            ["--task", "regression", "--target-col", "a", "--target-col", "a"],
            "error: --target-col names column 'a' 2 times: name each column once",
        ),
        (
            ["--task", "regression", "--target-col", "a", "--target-col", " a"],
            "error: --target-col names column 'a' 2 times: name each column once",
        ),
        (
            ["--task", "multilabel", "--label-cols", "a,a,b"],
            "error: --label-cols names column 'a' 2 times: name each column once",
        ),
        (
            ["--task", "multilabel", "--label-cols", ","],
            "error: --label-cols ',' names no column: give column names of the table: a,b,c",
        ),
        (
            ["--task", "regression", "--target-col", ","],
            "error: --target-col ',' names no column: give column names of the table: a,b,c",
        ),
    ],
    ids=[
        "target-col twice",
        "target-col twice spaced",
        "label-cols a,a,b",
        "label-cols ,",
        "target-col ,",
    ],
)
def test_an_option_naming_a_column_twice_or_none_is_refused(images, tmp_path, cli, options, line):
    """Accepted before (a model with two outputs for one column), or "unexpected
    IndexError" for ','; now one line, exit 2, before the table is read."""
    table = _table(
        tmp_path / "t.csv", "image,a,b", [f"{i}.png,{i % 2},{(i // 2) % 2}" for i in range(12)]
    )
    r = cli("dataset", "build", images, "--labels", table, *options, "-o", tmp_path / "ds")
    assert (r.exit_code, _errors(r)) == (2, [line]), r.output
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("header", "task", "where"),
    [
        ("image,y,y", [], "columns 2 and 3"),
        ("image,y, y", [], "columns 2 and 3"),
        ("image,y,y", ["--task", "regression", "--target-col", "y"], "columns 2 and 3"),
        ("y,image,y", ["--task", "multilabel", "--label-cols", "y"], "columns 1 and 3"),
    ],
    ids=["classify", "spaced", "regression", "multilabel"],
)
def test_a_header_naming_a_column_twice_is_refused(images, tmp_path, cli, header, task, where):
    """pandas renamed the second 'y' to 'y.1' and the build used the first, silently."""
    cells = header.split(",")
    rows = [",".join(f"{i}.png" if c == "image" else str(i % 2) for c in cells) for i in range(12)]
    table = _table(tmp_path / "t.csv", header, rows)
    r = cli("dataset", "build", images, "--labels", table, *task, "-o", tmp_path / "ds")
    assert (r.exit_code, _errors(r)) == (
        2,
        [
            f"error: label table {table} names column 'y' twice ({where}): rename one of them, "
            "so that each column has its own name"
        ],
    ), r.output


def test_a_header_with_two_unnamed_columns_still_reads(images, tmp_path):
    """Empty names are not duplicates (pandas' 'Unnamed: N'): a trailing separator on every
    line, as spreadsheets write, still reads."""
    from cnncli.datasets.labels import load_label_table

    rows = [f"{i},{i}.png,{i % 2},," for i in range(12)]
    ls = load_label_table(_table(tmp_path / "t.csv", ",image,y,,", rows), images)
    assert ls.columns["image"] == "image" and ls.columns["label"] == "y"
    assert len(ls.rows) + len(ls.problems) == 12


def test_find_lr_warns_when_the_sweep_is_too_short_to_trust():
    """--find-lr on 3 images suggested a rate from 10 steps without a word."""
    from cnncli.training.find_lr import TRUSTED_STEPS, sweep_steps, sweep_warning

    assert sweep_steps(3, 32) == 10
    assert sweep_warning(3, 32, 10) == (
        "the sweep had only 10 steps (3 training images: 1 batch of up to 32 a pass), too few "
        "to trust its suggestion (it wants 50): add training images (at least 10 at "
        "--batch-size 1), or choose --lr yourself"
    )
    said = sweep_warning(100, 32, sweep_steps(100, 32))
    assert said is not None and "only 20 steps" in said and "--batch-size 11 or smaller" in said
    assert sweep_steps(100, 11) >= TRUSTED_STEPS > sweep_steps(100, 12)
    assert sweep_warning(100, 11, sweep_steps(100, 11)) is None
    assert sweep_warning(10**6, 32, sweep_steps(10**6, 32)) is None


def test_a_regression_build_with_no_train_image_is_refused(images, tmp_path, cli):
    """Found by the command-line fuzz: split files that list no image left a regression
    dataset (which has no classes to check) with no rows, and the build ended in
    "unexpected ValueError: zero-size array to reduction operation minimum"."""
    table = _table(tmp_path / "t.csv", "image,y", [f"{i}.png,{i % 3}" for i in range(12)])
    for name in ("train.txt", "val.txt"):
        (tmp_path / name).write_text("# nothing listed\n")
    r = cli(
        "dataset",
        "build",
        images,
        "--labels",
        table,
        "--task",
        "regression",
        "--target-col",
        "y",
        "--split-files",
        f"{tmp_path / 'train.txt'},{tmp_path / 'val.txt'}",
        "-o",
        tmp_path / "ds",
    )
    assert (r.exit_code, _errors(r)) == (
        2,
        [
            "error: no image is in the train split: fix or add images, or put some in train in the "
            "split files"
        ],
    ), r.output
