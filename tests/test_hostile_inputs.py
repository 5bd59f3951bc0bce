"""Inputs a user can give that once ended a whole build or command with an "unexpected" error
(issue 13, item 8): each is now a named bad row (the build goes on with --skip-bad) or one
clear line with exit 2, as the user sees it through the CLI. (A 300-character file name and
a 400-digit label are in test_build_problems; damaged GIF and TIFF files in test_images;
model files in test_models_io; random inputs in test_fuzz.)"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest


@pytest.fixture
def folders(tmp_path, write_image):
    for c, cls in enumerate(("a", "b")):
        for i in range(4):
            write_image(tmp_path / "in" / cls / f"{i}.png", np.full((4, 4, 3), 80 * c, np.uint8))
    return tmp_path / "in"


def one_line(result) -> str:
    assert result.stderr.count("\n") == 1, result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    return result.stderr.strip()


def test_a_utf16_table_with_an_odd_byte_count(tmp_path, folders, cli):
    table = tmp_path / "labels.csv"
    table.write_bytes("image,y\na/0.png,0\nb/0.png,1\n".encode("utf-16")[:-1])  # cut short
    result = cli("dataset", "build", folders, "--labels", table, "-o", tmp_path / "ds")
    assert result.exit_code == 2
    assert one_line(result) == (
        f"error: label table {table} starts as UTF-16 but is damaged (an odd number of bytes): "
        "save it again (as UTF-8 or UTF-16), or pass its encoding with --encoding"
    )


def test_a_file_name_that_is_not_utf8_is_named_as_a_bad_row(tmp_path, folders, cli):
    name = b"caf\xe9.png"  # Latin-1 bytes: not UTF-8, Python keeps them as surrogates
    try:
        (folders / "a" / os.fsdecode(name)).write_bytes((folders / "a" / "0.png").read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take names that are not UTF-8")
    result = cli("dataset", "build", folders, "-o", tmp_path / "ds", "--skip-bad", "--json")
    assert result.exit_code == 0, result.stderr
    skipped = json.loads(result.stdout)["skipped"]
    reason = "file name is not valid UTF-8: rename it"
    assert skipped == [{"path": "a/caf\\xe9.png", "reason": reason}]  # the bytes, shown as \\xNN
    assert "caf\\xe9.png" in (tmp_path / "ds" / "skipped.csv").read_text(encoding="utf-8")


def test_an_output_below_a_file(tmp_path, folders, cli):
    (tmp_path / "afile").write_text("x")
    result = cli("dataset", "build", folders, "-o", tmp_path / "afile" / "out")
    assert result.exit_code == 2
    text = one_line(result)
    assert text.startswith(f"error: cannot write {tmp_path / 'afile' / 'out'}: ")
    assert "is a file, not a folder" in text
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize(
    "member,stored,what",
    [
        ("cnncli.json", {"class_names": 5}, "has class_names 5, not a list of names"),
        ("cnncli.json", {"image": {"height": 8, "color": "rgb"}}, "the image spec has no width"),
        ("cnncli.json", {"pixel_scale": "abc"}, "has pixel_scale 'abc', not a positive number"),
        ("config.json", b'{"name": "caf\xe9"}', "its model config is not UTF-8 text (byte 13)"),
    ],
)
def test_model_files_holding_the_wrong_types(tmp_path, cli, write_image, member, stored, what):
    model = tmp_path / "m.keras"
    members = {"config.json": b"{}", member: stored}
    with zipfile.ZipFile(model, "w") as z:
        for name, data in members.items():
            z.writestr(name, data if isinstance(data, bytes) else json.dumps(data))
    image = write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    result = cli("predict", model, image)
    assert result.exit_code == 2
    assert one_line(result).startswith(f"error: {model}") and what in result.stderr
