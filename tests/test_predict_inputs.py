"""`predict MODEL --files list.txt` (one path a line, relative to the list) and quoted glob
patterns ('test/*.png'), so hundreds of test images need no `$(cat ...)`."""

from __future__ import annotations

import csv
import io

import pytest

from cnncli.errors import InputError, UsageError
from cnncli.inference.inputs import expand_inputs


@pytest.fixture
def images(tmp_path, tiny):
    return tiny.make_images(tmp_path / "img", ["a", "b"], per_class=11)


def test_a_list_relative_to_its_folder_and_patterns_in_natural_order(images, tmp_path):
    (images / "a" / "notes.txt").write_text("not an image", encoding="utf-8")
    listing = tmp_path / "img" / "list.txt"
    listing.write_text(
        "# test split\na/2.png\n\nb/10.png\n" + f"{images / 'b' / '1.png'}\n", encoding="utf-8"
    )
    got = expand_inputs([str(images / "a" / "1*.png")], listing)
    assert got == [
        images / "a" / "1.png",
        images / "a" / "10.png",  # 1*: natural order
        images / "a" / "2.png",
        images / "b" / "10.png",
        images / "b" / "1.png",
    ]
    assert len(expand_inputs([str(tmp_path / "img" / "**" / "*.png")])) == 22
    assert expand_inputs([images / "a"]) == [images / "a"]  # a folder: walked later
    with pytest.raises(InputError, match=r"no image file matches .*\*\.jpg"):
        expand_inputs([str(images / "*.jpg")])
    with pytest.raises(UsageError, match="no images given"):
        expand_inputs([], None)
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="lists no image"):
        expand_inputs([], tmp_path / "empty.txt")
    with pytest.raises(InputError, match="is a PNG image, not a list of image paths"):
        expand_inputs([], images / "a" / "1.png")


def test_cli_predict_from_a_list_and_a_pattern(cli, images, tmp_path, tiny):
    model = tiny.save_with_metadata(tiny.model(2), tmp_path / "m.keras", ["a", "b"])
    (tmp_path / "list.txt").write_text("img/a/3.png\nimg/b/4.png\n", encoding="utf-8")
    listed = cli("predict", model, "--files", tmp_path / "list.txt", "--csv")
    assert listed.exit_code == 0, listed.stderr
    rows = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert [r["file"] for r in rows] == [str(images / "a" / "3.png"), str(images / "b" / "4.png")]
    direct = cli("predict", model, images / "a" / "3.png", images / "b" / "4.png", "--csv")
    assert [r["class"] for r in csv.DictReader(io.StringIO(direct.stdout))] == [
        r["class"] for r in rows
    ]
    pattern = cli("predict", model, str(images / "b" / "*.png"), "--csv")
    assert pattern.exit_code == 0 and len(pattern.stdout.splitlines()) == 1 + 11
    missing = cli("predict", model, "--files", tmp_path / "nope.txt")
    assert missing.exit_code == 2 and f"image list {tmp_path / 'nope.txt'} not found" in (
        missing.stderr
    )
