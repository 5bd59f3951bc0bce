"""Splits (cnncli.datasets.splits): given by split files (`--split-files train.txt,val.txt,
test.txt`, the lists course folders and Kaggle sets ship), in folder mode and with a table;
unlisted images counted and left out, an image in two lists a bad row naming both, the
manifest saying where the splits came from, and the option combinations refused."""

from __future__ import annotations

import hashlib
import json
import unicodedata

import numpy as np
import pytest

from cnncli.datasets.build import build_dataset
from cnncli.datasets.splits import parse_split_files
from cnncli.datasets.store import open_dataset
from cnncli.errors import DatasetError, InputError, UsageError


@pytest.fixture
def shapes(tmp_path, tiny):
    """Class folders circle/ and square/ with 0.png .. 3.png each (tiny RGB)."""
    return tiny.make_images(tmp_path / "in", ["circle", "square"], per_class=4, size=(4, 4))


def write_list(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def split_of(ds) -> dict[str, str]:
    index = open_dataset(ds).index
    return dict(zip(index["path"], index["split"], strict=True))


def test_folder_mode_reads_the_lists_and_reports_unlisted(tmp_path, shapes):
    train = write_list(
        tmp_path / "train.txt",
        "# course split",
        "circle/0.png",
        "circle/1.png",
        "",
        "square/0.png",
        "square/1.png",
        "square/1.png",
    )
    val = write_list(tmp_path / "val.txt", "circle/2.png", "square/2.png")
    test = write_list(tmp_path / "test.txt", "circle/3.png")
    result = build_dataset(shapes, tmp_path / "ds", split_files=f"{train},{val},{test}")
    assert split_of(tmp_path / "ds") == {
        "circle/0.png": "train",
        "circle/1.png": "train",
        "circle/2.png": "val",
        "circle/3.png": "test",
        "square/0.png": "train",
        "square/1.png": "train",
        "square/2.png": "val",
    }
    assert result.counts == {
        "train": {"circle": 2, "square": 2},
        "val": {"circle": 1, "square": 1},
        "test": {"circle": 1, "square": 0},
    }
    assert "1 images are in no split file and were left out: square/3.png" in result.notes
    assert (
        "splits from files train.txt (train), val.txt (val), test.txt (test) "
        "(--val/--test not used)" in result.notes
    )
    options = open_dataset(tmp_path / "ds").manifest["options"]
    assert options["splits_from"] == "files" and options["val"] is None
    assert options["split_files"]["train"] == {
        "file": "train.txt",
        "sha256": hashlib.sha256(train.read_bytes()).hexdigest(),
        "images": 4,
    }
    assert options["split_files"]["test"]["images"] == 1
    # the same inputs give the same manifest, byte for byte
    build_dataset(shapes, tmp_path / "ds2", split_files=[train, val, test])
    assert (tmp_path / "ds" / "manifest.json").read_bytes() == (
        tmp_path / "ds2" / "manifest.json"
    ).read_bytes()


def test_without_a_train_file_the_unlisted_images_are_train(tmp_path, shapes):
    test = write_list(tmp_path / "test_list.txt", "circle/3.png", "square/3.png")
    result = build_dataset(shapes, tmp_path / "ds", split_files=str(test))
    assert result.counts["train"] == {"circle": 3, "square": 3}
    assert result.counts["test"] == {"circle": 1, "square": 1} and "val" not in result.counts
    assert "train: the images no split file lists" in result.notes
    assert open_dataset(tmp_path / "ds").manifest["options"]["splits_from"] == "files"


def test_with_a_table_paths_are_read_as_its_image_column(tmp_path, write_image):
    folder = tmp_path / "imgs"
    nfd = unicodedata.normalize("NFD", "벽돌")
    names = [f"{nfd}/{i}.png" for i in range(3)] + [f"x/{i}.png" for i in range(3)]
    for name in names:
        write_image(folder / name, np.zeros((4, 4, 3), np.uint8))
    rows = [f"{unicodedata.normalize('NFC', n)},{n[0] == 'x'}" for n in names]
    table = write_list(tmp_path / "t.csv", "image,label", *rows)
    # NFC or NFD, '\\' separators all name the same files; ../ and missing files are bad rows
    train = write_list(
        tmp_path / "train.txt",
        "벽돌/0.png",
        f"{nfd}\\1.png",
        "x/0.png",
        "x/1.png",
        "../t.csv",
        "x/9.png",
    )
    test = write_list(tmp_path / "test.txt", "벽돌/2.png", "x/2.png", "x/1.png")
    with pytest.raises(DatasetError) as e:
        build_dataset(folder, tmp_path / "ds", labels=table, split_files=f"{train},{test}")
    assert e.value.problems == [
        ("../t.csv", "train.txt line 5: path leaves IMAGES_DIR (../) and is refused"),
        ("x/9.png", "train.txt line 6: file not found"),
        ("x/1.png", "listed in train.txt line 4 and test.txt line 3"),
    ]
    assert not (tmp_path / "ds").exists()
    result = build_dataset(
        folder, tmp_path / "ds", labels=table, split_files=f"{train},{test}", skip_bad=True
    )
    assert split_of(tmp_path / "ds") == {
        "벽돌/0.png": "train",
        "벽돌/1.png": "train",
        "x/0.png": "train",
        "벽돌/2.png": "test",
        "x/2.png": "test",
    }
    assert "3 bad rows skipped (listed in skipped.csv)" in result.notes


def test_split_file_names_and_refused_combinations(tmp_path, shapes, write_image):
    train, val = tmp_path / "train.txt", tmp_path / "valid-files.txt"
    assert parse_split_files(f"{val},{train}") == {"train": train, "val": val}
    assert parse_split_files(f"train={tmp_path / 'trainval.txt'}") == {
        "train": tmp_path / "trainval.txt"
    }
    refused = {
        "trainval.txt": "cannot tell from its name which split trainval.txt lists: name it: "
        "train=trainval.txt, val=trainval.txt or test=trainval.txt",
        "train.txt,train=b.txt": "two files for the train split: train.txt and b.txt: "
        "give one file per split",
        "a/train.txt,b/val.txt,c/test.txt,d/test2.txt": "--split-files takes one to three "
        "files, got 4: give them comma-separated: train.txt,val.txt,test.txt",
    }
    for value, message in refused.items():
        with pytest.raises(UsageError) as e:
            parse_split_files(value)
        assert str(e.value) == message
    write_list(train, "circle/0.png")
    for option in ({"test": 0.0}, {"split_col": "part"}):  # --val: carved out of train
        with pytest.raises(UsageError) as e:
            build_dataset(shapes, tmp_path / "ds", split_files=str(train), **option)
        flag = "--" + next(iter(option)).replace("_", "-")
        assert str(e.value) == (
            f"--split-files gives the splits, so {flag} cannot be used with it: "
            f"leave out {flag}, or --split-files"
        )
    png = write_image(tmp_path / "test.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match="test.png is a PNG image, not a split file"):
        build_dataset(shapes, tmp_path / "ds", split_files=str(png))
    assert not (tmp_path / "ds").exists()


def test_cli_split_files(cli, tmp_path, shapes):
    train = write_list(
        tmp_path / "train.txt", *[f"{c}/{i}.png" for c in ("circle", "square") for i in range(3)]
    )
    val = write_list(tmp_path / "val.txt", "circle/3.png", "square/3.png")
    r = cli(
        "dataset",
        "build",
        shapes,
        "-o",
        tmp_path / "ds",
        "--split-files",
        f"{train},{val}",
        "--json",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["counts"] == {
        "train": {"circle": 3, "square": 3},
        "val": {"circle": 1, "square": 1},
    }
    r = cli(
        "dataset",
        "build",
        shapes,
        "-o",
        tmp_path / "ds2",
        "--split-files",
        f"{train},{val}",
        "--val",
        "0.2",
    )
    assert r.exit_code == 2
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        f"error: --split-files gives the val split ({val}), so --val cannot be used with it: "
        "leave out --val, or the val file"
    ]


def test_lines_may_carry_a_label_after_the_path(tmp_path, shapes):
    """Published split lists often read `path label` or `path,label`: the path is used and
    the label must agree with the folder's (or table's) label, else a bad row naming both."""
    train = write_list(
        tmp_path / "train.txt",
        "circle/0.png circle",
        "circle/1.png\tcircle",
        "square/0.png,square",
        "square/1.png square",
    )
    test = write_list(tmp_path / "test.txt", "circle/3.png circle", "square/3.png circle")
    with pytest.raises(DatasetError) as e:
        build_dataset(shapes, tmp_path / "ds", split_files=f"{train},{test}")
    assert e.value.problems == [
        ("square/3.png", "test.txt line 2 gives label 'circle', the labels say 'square'")
    ]
    build_dataset(shapes, tmp_path / "ds", split_files=f"{train},{test}", skip_bad=True)
    assert split_of(tmp_path / "ds") == {
        "circle/0.png": "train",
        "circle/1.png": "train",
        "square/0.png": "train",
        "square/1.png": "train",
        "circle/3.png": "test",
    }
