"""Label tables and class folders (cnncli.datasets.labels): encodings, column detection, index/name
agreement, NFC names, path escapes, unused files, duplicates, rows without labels."""

from __future__ import annotations

import os
import re
import unicodedata

import numpy as np
import pytest

from cnncli.datasets.class_folders import scan_class_folders
from cnncli.datasets.labels import load_label_table
from cnncli.datasets.tables import read_table
from cnncli.errors import DatasetError, InputError, UsageError
from cnncli.images import natural_key

KOREAN = ["벽돌", "대리석"]


@pytest.fixture
def facade(write_image):
    """facade(root, n=6, encoding, sep, header, rows) -> (folder, table): n tiny PNGs and a
    course-style table ',image,type,y' with Korean names."""

    def make(tmp_path, n=6, encoding="utf-8", sep=",", header=",image,type,y", rows=None):
        folder = tmp_path / "imgs"
        for i in range(n):
            write_image(folder / f"BV{i:03d}.png", np.full((4, 4, 4), i * 10, np.uint8))
        if rows is None:
            rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2}" for i in range(n)]
        text = "\n".join([header, *rows]) + "\n"
        table = tmp_path / "labels.csv"
        table.write_bytes(text.replace(",", sep).encode(encoding))
        return folder, table

    return make


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949", "euc-kr"])
def test_encodings_read_without_flag(tmp_path, encoding, facade):
    folder, table = facade(tmp_path, encoding=encoding)
    ls = load_label_table(table, folder)
    assert ls.class_names == ["벽돌", "대리석"]
    assert [r.label for r in ls.rows] == [0, 1, 0, 1, 0, 1]
    assert ls.problems == [] and ls.unused == []
    assert ls.columns["image"] == "image" and ls.columns["label"] == "y"
    assert ls.columns["name"] == "type"
    assert ls.columns["ignored"] == ["Unnamed: 0"]  # the unnamed pandas index column


def test_tab_separated_and_encoding_override(tmp_path, facade):
    folder, table = facade(tmp_path, sep="\t", encoding="cp949")
    df, used, sep = read_table(table)
    assert sep == "\t" and used == "cp949"
    assert list(df.columns) == ["Unnamed: 0", "image", "type", "y"]
    # a wrong explicit encoding is a clear failure, not mojibake
    with pytest.raises(InputError, match="is not valid utf-8"):
        read_table(table, encoding="utf-8")


def _zip(path, names):
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, "{}")
    return path


def test_an_image_or_binary_file_as_the_table_is_named(tmp_path, facade, write_image):
    folder, _ = facade(tmp_path)
    png = write_image(tmp_path / "LABELS.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError) as e:
        load_label_table(png, folder)
    assert str(e.value) == (
        f"{png} is a PNG image, not a label table: give the CSV/TSV file (--labels TABLE.csv)"
    )
    made = {
        "x.jpg": write_image(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint8)),
        "x.bmp": write_image(tmp_path / "x.bmp", np.zeros((4, 4, 3), np.uint8)),
        "x.webp": write_image(tmp_path / "x.webp", np.zeros((4, 4, 3), np.uint8)),
        "x.gif": write_image(tmp_path / "x.gif", np.zeros((4, 4, 3), np.uint8)),
        "x.tif": write_image(tmp_path / "x.tif", np.zeros((4, 4, 3), np.uint8)),
        "x.xlsx": _zip(tmp_path / "x.xlsx", ["[Content_Types].xml", "xl/workbook.xml"]),
        "x.keras": _zip(tmp_path / "x.keras", ["metadata.json", "config.json", "model.weights.h5"]),
    }
    (tmp_path / "x.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (tmp_path / "x.bin").write_bytes(b"image,y\n\x00\x01\x02")
    expected = {
        "x.jpg": "a JPEG image",
        "x.bmp": "a BMP image",
        "x.webp": "a WebP image",
        "x.gif": "a GIF image",
        "x.tif": "a TIFF image",
        "x.xlsx": "an Excel workbook (.xlsx; save it as CSV)",
        "x.keras": "a Keras model (.keras)",
        "x.h5": "an HDF5 file (a Keras .h5 model?)",
        "x.bin": "a binary file (it holds NUL bytes)",
    }
    assert set(made) < set(expected)
    for name, kind in expected.items():
        with pytest.raises(InputError, match=rf"x\.\w+ is {re.escape(kind)}, not a label table"):
            read_table(tmp_path / name)
    # UTF-16 without a BOM holds NUL bytes, but is text when its encoding is given
    (tmp_path / "u16.csv").write_bytes("image,y\nBV000.png,0\n".encode("utf-16-le"))
    df, used, _ = read_table(tmp_path / "u16.csv", encoding="utf-16-le")
    assert used == "utf-16-le" and list(df["image"]) == ["BV000.png"]


def test_column_detection_by_content_and_overrides(tmp_path, facade):
    rows = [f"{i},x{i},BV{i:03d}.png,{KOREAN[i % 2]}" for i in range(4)]
    folder, table = facade(tmp_path, n=4, header="Index,note,file,label", rows=rows)
    ls = load_label_table(table, folder)
    assert ls.columns["image"] == "file"  # the column whose values name files
    assert ls.columns["label"] == "label" and ls.columns["name"] is None
    assert ls.class_names == ["대리석", "벽돌"]  # text labels: natural (code point) order
    assert "Index" in ls.columns["ignored"]
    ls = load_label_table(table, folder, image_col="file", label_col="note")
    assert ls.class_names == ["x0", "x1", "x2", "x3"]
    with pytest.raises(UsageError, match="--label-col 'nope' is not a column"):
        load_label_table(table, folder, label_col="nope")


def test_no_label_column_found(tmp_path, facade):
    rows = [f"BV{i:03d}.png,a{i},b{i}" for i in range(2)]
    folder, table = facade(tmp_path, n=2, header="image,foo,bar", rows=rows)
    with pytest.raises(UsageError, match="cannot tell which column .* holds the labels"):
        load_label_table(table, folder)


def test_index_and_name_must_agree(tmp_path, facade):
    rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2}" for i in range(5)]
    rows.append("5,BV005.png,벽돌,1")  # 벽돌 is 0 everywhere else
    folder, table = facade(tmp_path, n=6, rows=rows)
    ls = load_label_table(table, folder)
    assert ls.problems == [
        (
            "BV005.png",
            "line 7: label 1 contradicts its name '벽돌' (elsewhere '벽돌' is 0 and 1 is '대리석')",
        )
    ]
    assert len(ls.rows) == 5


def test_indices_must_run_from_zero(tmp_path, facade):
    """A gap stops the build, but only after every row was read (the build goes on to
    check the images, to list every problem at once)."""
    rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2 + 1}" for i in range(4)]
    folder, table = facade(tmp_path, n=4, rows=rows)
    ls = load_label_table(table, folder)
    [(where, error)] = ls.blockers
    assert where == "labels.csv" and isinstance(error, DatasetError)
    assert re.search(r"must run 0..K-1; found 1, 2: renumber them from 0", str(error))
    assert [r.label for r in ls.rows] == [0, 1, 0, 1]  # their places, to check the images


def test_nfc_normalization_of_file_and_class_names(tmp_path, write_image):
    folder = tmp_path / "imgs"
    nfd_name = unicodedata.normalize("NFD", "벽돌사진.png")  # as macOS stores it
    write_image(folder / nfd_name, np.zeros((4, 4, 3), np.uint8))
    write_image(folder / "b.png", np.zeros((4, 4, 3), np.uint8))
    table = tmp_path / "t.csv"
    nfd_class = unicodedata.normalize("NFD", "대리석")
    table.write_text(f"image,type,y\n벽돌사진.png,벽돌,0\nb.png,{nfd_class},1\n", encoding="utf-8")
    ls = load_label_table(table, folder)
    assert ls.problems == []
    assert ls.rows[0].path == nfd_name  # opened as it is on disk
    assert ls.rows[0].name == "벽돌사진.png"  # stored NFC
    assert ls.class_names == ["벽돌", "대리석"]


def test_path_escapes_are_refused(tmp_path, facade, write_image):
    folder, table = facade(tmp_path, n=2)
    outside = tmp_path / "outside.png"
    write_image(outside, np.zeros((4, 4, 3), np.uint8))
    (folder / "sub").mkdir()
    write_image(folder / "sub" / "ok.png", np.zeros((4, 4, 3), np.uint8))
    os.symlink(outside, folder / "link.png")
    rows = [
        "0,BV000.png,벽돌,0",
        "1,sub/ok.png,대리석,1",
        "2,../outside.png,벽돌,0",
        f"3,{outside},벽돌,0",
        "4,link.png,대리석,1",
        "5,missing.png,대리석,1",
    ]
    table.write_text("\n".join([",image,type,y", *rows]) + "\n", encoding="utf-8")
    ls = load_label_table(table, folder)
    reasons = dict(ls.problems)
    assert reasons["../outside.png"] == "line 4: path leaves IMAGES_DIR (../) and is refused"
    assert reasons[str(outside)].startswith("line 5: absolute path refused")
    assert reasons["link.png"] == "line 6: symlink points outside IMAGES_DIR and is refused"
    assert reasons["missing.png"] == "line 7: file not found"
    assert [r.name for r in ls.rows] == ["BV000.png", "sub/ok.png"]  # subfolders allowed
    assert ls.unused == ["BV001.png"]  # named by no row: counted, not used


def test_duplicates_and_rows_without_label(tmp_path, facade):
    rows = [
        "0,BV000.png,벽돌,0",
        "1,BV001.png,대리석,1",
        "2,BV000.png,벽돌,0",
        "3,BV002.png,대리석,",
        "4,BV001.png,벽돌,0",
    ]
    folder, table = facade(tmp_path, n=3, rows=rows)
    ls = load_label_table(table, folder)
    assert ls.problems == [
        ("BV000.png", "line 4: duplicate row (first on line 2)"),
        ("BV002.png", "line 5: no label"),
        ("BV001.png", "line 6: duplicate row with another label (first on line 3)"),
    ]
    assert [r.name for r in ls.rows] == ["BV000.png", "BV001.png"]


def test_split_column_values(tmp_path, facade):
    rows = [f"BV{i:03d}.png,{i % 2},{s}" for i, s in enumerate(["train", "VAL", "test", "oops"])]
    folder, table = facade(tmp_path, n=4, header="image,y,part", rows=rows)
    ls = load_label_table(table, folder, split_col="part")
    assert [r.split for r in ls.rows] == ["train", "val", "test"]
    assert ls.problems == [("BV003.png", "line 5: split 'oops' is not train, val or test")]


def test_class_folders_natural_order_hidden_and_classes(tmp_path, write_image):
    for cls in ["class10", "class2", "class1", ".hidden"]:
        for j in range(2):
            write_image(tmp_path / cls / f"img{j}.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "class2" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "class2" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "class1" / "deep" / "img9.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "stray.png", np.zeros((4, 4, 3), np.uint8))
    ls = scan_class_folders(tmp_path)
    assert ls.class_names == ["class1", "class2", "class10"]
    assert [r.name for r in ls.rows if r.label == 0] == [
        "class1/deep/img9.png",
        "class1/img0.png",
        "class1/img1.png",
    ]
    assert len(ls.rows) == 7 and ls.unused == ["stray.png"]
    assert any("1 files without an image extension ignored" in n for n in ls.notes)
    ls = scan_class_folders(tmp_path, ["class10", "class1"])
    assert ls.class_names == ["class10", "class1"] and {r.label for r in ls.rows} == {0, 1}
    with pytest.raises(UsageError, match="no folder for class 'dog'"):
        scan_class_folders(tmp_path, ["dog"])


def test_class_folder_rows_in_the_walkers_order(tmp_path, write_image):
    """Each class's files are listed by cnncli.images.find_images, in its order."""
    from cnncli.images import find_images

    for name in ("a/x-y/1.png", "a/x/2.png", "a/img10.png", "a/img9.png", "b/0.png"):
        write_image(tmp_path / name, np.zeros((4, 4, 3), np.uint8))
    ls = scan_class_folders(tmp_path)
    walked = [p.relative_to(tmp_path / "a").as_posix() for p in find_images(tmp_path / "a")]
    assert (
        [r.name for r in ls.rows if r.label == 0]
        == [f"a/{p}" for p in walked]
        == ["a/img9.png", "a/img10.png", "a/x/2.png", "a/x-y/1.png"]
    )


def test_natural_key():
    assert sorted(["a10", "a2", "A1", "b"], key=natural_key) == ["A1", "a2", "a10", "b"]
