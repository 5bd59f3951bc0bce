"""Every problem of a build in one run (issue 13, items 4, 9 and 13): a label column of
numbers with a typo is still numbers (the typo is a bad row); a problem that stops the whole
build does not hide the others (the decode of every image included); messages name the file
and say what is wrong; thousands of problems are counted by kind, the first 20 shown and the
whole list written to a file."""

from __future__ import annotations

import errno
import io
import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from cnncli.datasets.build import build_dataset
from cnncli.datasets.problems import count_kinds, problem_kind
from cnncli.datasets.store import open_dataset
from cnncli.datasets.tables import is_numeric_column
from cnncli.errors import DatasetError, UsageError


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def table_set(write_image):
    """table_set(root, labels, n=None, size=(6, 5)) -> (folder, table): images 0.png... and a
    table 'image,y' giving image i the label labels[i] (a str, written as it is)."""

    def make(tmp_path, labels, size=(6, 5), encoding="utf-8"):
        rng = np.random.default_rng(0)
        folder = tmp_path / "imgs"
        for i in range(len(labels)):
            write_image(folder / f"{i}.png", rng.integers(0, 256, (*size, 3), np.uint8))
        table = tmp_path / "t.csv"
        rows = [f"{i}.png,{lab}" for i, lab in enumerate(labels)]
        table.write_bytes(("\n".join(["image,y", *rows]) + "\n").encode(encoding))
        return folder, table

    return make


def truncated(path, fmt: str, shape=(6, 5), **save) -> str:
    """Write an image in `fmt`, cut at 60% of its bytes, to `path`; return its name."""
    buf = io.BytesIO()
    arr = np.random.default_rng(1).integers(0, 256, (*shape, 3), np.uint8)
    Image.fromarray(arr).save(buf, fmt, **save)
    data = buf.getvalue()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path.name


# ------------------------------------------------------------------ item 4: numbers stay numbers
def test_numeric_column_rule():
    assert is_numeric_column(["0", "1", "1", "O", "0"])  # all but one
    assert is_numeric_column(["0", "1"] * 9 + ["O", "l"])  # 18 of 20: one in ten may be off
    assert not is_numeric_column(["0", "1"] * 9 + ["O", "l", "x"])  # 18 of 21
    assert not is_numeric_column(["0", "O"])  # as many words as numbers: text
    assert not is_numeric_column(["cat", "dog", "7"])
    assert is_numeric_column(["0", "1", "", "1"])  # empty cells are rows without a label


def test_one_typo_in_a_numeric_column_is_a_bad_row_not_a_class(tmp_path, table_set, cli):
    folder, table = table_set(tmp_path, ["0", "1", "1", "O", "0", "1"])
    with pytest.raises(DatasetError) as e:
        build_dataset(folder, tmp_path / "ds", labels=table)
    assert e.value.problems == [
        (
            "3.png",
            "line 5: label 'O' is not a whole number (column 'y' holds class indices: 5 of 6 "
            "labels are whole numbers, and all but one in ten make a column of numbers)",
        )
    ]
    r = cli("dataset", "build", folder, "--labels", table, "-o", tmp_path / "ds")
    assert r.exit_code == 2 and r.stdout == "" and "Traceback" not in r.output
    assert lines(r.stderr)[-1].startswith(
        "error: 1 problem in the inputs; nothing was written "
        "(3.png: line 5: label 'O' is not a whole number"
    )
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
    assert "3.png" in r.stderr and "line 5: label 'O' is not a whole number" in r.stderr
    ds = open_dataset(tmp_path / "ds")
    assert ds.class_names == ["0", "1"] and ds.count("train") == 5


def test_nul_byte_in_a_label_is_a_bad_row(tmp_path, table_set):
    folder, table = table_set(tmp_path, ["0", "1", "0\x00", "1", "0"])
    r = build_dataset(
        folder, tmp_path / "ds", labels=table, encoding="utf-8", skip_bad=True, val=0.0
    )
    assert r.skipped == [
        (
            "2.png",
            "line 4: label '0\\x00' is not a whole number (column 'y' holds class indices: 4 of "
            "5 labels are whole numbers, and all but one in ten make a column of numbers)",
        )
    ]
    assert open_dataset(tmp_path / "ds").class_names == ["0", "1"]


def test_huge_label_is_a_bad_row(tmp_path, table_set):
    folder, table = table_set(tmp_path, ["0", "1", "9" * 400, "1", "0"])
    r = build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True, val=0.0)
    [(name, reason)] = r.skipped
    assert name == "2.png" and reason.endswith("... is too large for a class index")


# ------------------------------------------------------------------ item 9: every problem at once
@pytest.mark.parametrize("blocker", ["index gap", "long name", "odd size", "class too small"])
def test_a_blocker_does_not_hide_the_other_problems(tmp_path, table_set, write_image, blocker):
    labels = ["0", "1"] * 4
    if blocker == "index gap":
        labels = ["0", "2"] * 4
    folder, table = table_set(tmp_path, labels)
    rows = table.read_text().splitlines()
    if blocker == "long name":
        rows.append("x" * 300 + ".png,1")
    if blocker == "odd size":
        write_image(folder / "odd.png", np.zeros((9, 9, 3), np.uint8))
        rows.append("odd.png,1")
    if blocker == "class too small":
        write_image(folder / "only.png", np.zeros((6, 5, 3), np.uint8))
        rows.append("only.png,2")
    truncated(folder / "3.png", "PNG")
    table.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError) as e:
        build_dataset(folder, tmp_path / "ds", labels=table, val=0.2)
    problems = dict(e.value.problems)
    assert problems.pop("3.png") == "truncated or corrupt image data (image file is truncated)"
    [(where, reason)] = problems.items()
    expected = {
        "index gap": (
            "t.csv",
            r"class indices in column 'y' of .*t.csv must run 0..K-1; found 0, 2",
        ),
        "long name": ("x" * 300 + ".png", r"line 10: cannot read \(file name too long\)"),
        "odd size": (
            "(sizes)",
            r"the images differ in size: 6x5 in 8 images \(first 0.png\), "
            r"9x9 in 1 \(odd.png\)",
        ),
        "class too small": ("(split)", r"class '2' has 1 image, too few for --val 0.2"),
    }[blocker]
    assert where == expected[0] and re.fullmatch(expected[1] + ".*", reason)
    assert not (tmp_path / "ds").exists()


def test_truncated_images_of_every_format_listed_with_a_blocker(tmp_path, table_set):
    folder, table = table_set(tmp_path, ["0", "2"] * 3)  # a gap: 0 and 2
    big = (32, 24)  # headers whole, pixel data cut: found by the decode pass
    cut = [
        truncated(folder / "a.png", "PNG", big),
        truncated(folder / "b.jpg", "JPEG", big),
        truncated(folder / "c.gif", "GIF", big),
        truncated(folder / "d.tif", "TIFF", big),
        truncated(folder / "e.bmp", "BMP", big),
        truncated(folder / "f.webp", "WEBP", big, lossless=True),
    ]
    with table.open("a") as f:
        f.writelines(f"{name},0\n" for name in cut)
    with pytest.raises(DatasetError) as e:
        build_dataset(folder, tmp_path / "ds", labels=table, size="6x5")
    problems = dict(e.value.problems)
    assert sorted(problems) == sorted(["t.csv", *cut])
    for name in cut:
        assert problems[name].startswith("truncated or corrupt image data"), name
    assert e.value.message.startswith("class indices in column 'y' of ")
    assert e.value.message.endswith("; 6 other problems in the inputs; nothing was written")


def test_skip_bad_does_not_skip_a_blocker(tmp_path, table_set):
    folder, table = table_set(tmp_path, ["0", "2", "0", "2"])
    truncated(folder / "1.png", "PNG")
    with pytest.raises(DatasetError, match=r"must run 0..K-1; found 0, 2; 1 other problem"):
        build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True)
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------ item 13: messages
def test_a_folder_named_like_an_image(tmp_path, table_set):
    folder, table = table_set(tmp_path, ["0", "1", "0", "1"])
    (folder / "dir.png").mkdir()
    with table.open("a") as f:
        f.write("dir.png,1\n")
    r = build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True, val=0.0)
    assert r.skipped == [("dir.png", "line 6: is a folder, not an image")]


def test_permission_denied_says_so(tmp_path, table_set, monkeypatch):
    folder, table = table_set(tmp_path, ["0", "1", "0", "1", "0"])
    locked = folder / "2.png"
    locked.chmod(0)
    import PIL.Image

    real_open = PIL.Image.open

    def open_as_a_user(fp, *args, **kwargs):  # root reads anything: act as a user would
        if str(fp) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", open_as_a_user)
    r = build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True, val=0.0)
    assert r.skipped == [("2.png", "cannot read (permission denied)")]


def test_decoder_warnings_are_attached_to_their_file(tmp_path, table_set, capfd):
    folder, table = table_set(tmp_path, ["0", "1", "0", "1"])
    img = Image.fromarray(np.zeros((6, 5, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 1
    img.save(folder / "exif.jpg", exif=exif.tobytes())
    data = bytearray((folder / "exif.jpg").read_bytes())
    at = data.find(b"Exif\x00\x00") + 6
    data[at + 4 : at + 8] = b"\xff\xff\xff\x00"  # the first directory's offset: past the end
    (folder / "exif.jpg").write_bytes(bytes(data))
    lzw = io.BytesIO()
    arr = np.random.default_rng(0).integers(0, 256, (32, 24, 3), np.uint8)
    Image.fromarray(arr).save(lzw, "TIFF", compression="tiff_lzw")
    damaged = bytearray(lzw.getvalue())
    damaged[20:60] = b"\xff" * 40  # LZW codes libtiff cannot follow: it prints, Pillow fails
    (folder / "bad.tif").write_bytes(bytes(damaged))
    with table.open("a") as f:
        f.write("exif.jpg,0\nbad.tif,1\n")
    capfd.readouterr()
    r = build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True, val=0.0, size="6x5")
    out = capfd.readouterr()
    assert "EXIF" not in out.err and "table" not in out.err  # nothing without its file name
    assert ("exif.jpg", "Corrupt EXIF data. Expecting to read 2 bytes but only got 0") in (
        r.warnings
    )
    assert any(
        n.startswith("1 image decoded with warnings (kept): exif.jpg: Corrupt") for n in r.notes
    )
    [(name, reason)] = r.skipped
    assert name == "bad.tif" and reason.startswith("truncated or corrupt image data")
    assert "libtiff: Using code not yet in table" in reason


def test_format_version_must_be_a_whole_number(tmp_path, table_set):
    folder, table = table_set(tmp_path, ["0", "1", "0", "1"])
    build_dataset(folder, tmp_path / "ds", labels=table, val=0.0)
    mpath = tmp_path / "ds" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["format_version"] = "1"
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="format_version must be a whole number, got '1'"):
        open_dataset(tmp_path / "ds")


def test_problem_kinds():
    assert problem_kind("line 13: file not found") == "file not found"
    assert problem_kind("val.txt line 4: file not found") == "file not found"
    assert problem_kind("truncated or corrupt image data (broken data stream (3 bytes))") == (
        "truncated or corrupt image data (broken data stream)"
    )
    assert problem_kind("refused (Image size (3 pixels) exceeds limit of 1)") == "refused"
    assert problem_kind("truncated or corrupt image data (image file is truncated)") == (
        "truncated or corrupt image data (image file is truncated)"
    )
    assert problem_kind("cannot read (permission denied)") == "cannot read (permission denied)"
    assert problem_kind("line 9: split 'oops' is not train, val or test") == (
        "split '…' is not train, val or test"
    )
    problems = [
        ("a", "line 2: file not found"),
        ("b", "empty file (0 bytes)"),
        ("c", "line 9: file not found"),
    ]
    assert count_kinds(problems) == [("file not found", 2), ("empty file", 1)]


def test_twenty_thousand_missing_rows(tmp_path, table_set, cli):
    folder, table = table_set(tmp_path, ["0", "1", "0", "1"])
    with table.open("a") as f:
        f.writelines(f"gone{i}.png,{i % 2}\n" for i in range(20_000))
    (tmp_path / "out").mkdir()
    start = time.perf_counter()
    r = cli("dataset", "build", folder, "--labels", table, "-o", tmp_path / "out" / "ds")
    took = time.perf_counter() - start
    assert r.exit_code == 2
    err = r.stderr
    assert took < 10, took  # measured about 1.5 s (it took 25 s for 100,000 before)
    assert len(err.splitlines()) < 50
    assert re.search(r"│ file not found\s*│\s*20,000 │", err)  # the count by kind
    assert "Problems: the first 20 of 20,000" in err and "gone19.png" in err
    assert "gone20.png" not in err
    listed = tmp_path / "out" / "ds.problems.csv"
    assert f"all 20,000 problems are listed in {listed}" in err
    assert lines(err)[-1] == (
        "error: 20,000 problems in the inputs; nothing was written: fix them, or pass "
        "--skip-bad to build from the good rows"
    )
    rows = listed.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "path,kind,reason" and len(rows) == 20_001
    assert rows[-1] == "gone19999.png,file not found,line 20005: file not found"


def test_problem_list_goes_beside_the_output_else_here(tmp_path, monkeypatch):
    from cnncli.datasets.problems import problem_file_for

    monkeypatch.chdir(tmp_path)
    assert problem_file_for(tmp_path / "data" / "ds") == tmp_path / "ds.problems.csv"
    (tmp_path / "data").mkdir()
    assert problem_file_for(tmp_path / "data" / "ds") == tmp_path / "data" / "ds.problems.csv"


def test_usage_error_alone_keeps_its_exit_code(tmp_path, write_image):
    for cls, shape in (("a", (5, 5, 3)), ("b", (7, 5, 3))):
        for i in range(2):
            write_image(tmp_path / "in" / cls / f"{i}.png", np.zeros(shape, np.uint8))
    with pytest.raises(UsageError, match=r"5x5 in 2 images \(first a/0.png\), 7x5 in 2 \(first"):
        build_dataset(tmp_path / "in", tmp_path / "ds")
