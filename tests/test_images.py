"""cnncli.images: the folder walker (find_images, collect_images) and the two ways of opening
an image, the header probe and the full decode, which refuse bad files with the same words."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnncli.errors import ImageError, InputError, UsageError
from cnncli.images import collect_images, find_images, open_image, probe_image


@pytest.fixture
def messy(tmp_path, write_image):
    """Images in natural-order traps, hidden files and folders, a non-image and a subfolder."""
    pixel = np.zeros((3, 4, 3), np.uint8)
    for name in ("img10.png", "img2.png", "B.jpg", "a.png", "sub/img1.png", "sub-x/z.png",
                 ".ipynb_checkpoints/img0.png", ".hidden.png", "._img3.png"):  # fmt: skip
        write_image(tmp_path / "in" / name, pixel)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    return tmp_path / "in"


def test_find_images_natural_order_hidden_skipped(messy):
    found = [p.relative_to(messy).as_posix() for p in find_images(messy)]
    # folder by folder: "sub" sorts before "sub-x", as a path, not as a string
    assert found == ["a.png", "B.jpg", "img2.png", "img10.png", "sub/img1.png", "sub-x/z.png"]
    assert [p.name for p in find_images(messy, exclude=messy / "sub")] == [
        "a.png", "B.jpg", "img2.png", "img10.png", "z.png"
    ]  # fmt: skip


def test_collect_images_keeps_files_as_given(messy, tmp_path):
    files = collect_images([messy / "img10.png", messy / "sub", tmp_path / "missing.png"])
    assert [p.name for p in files] == ["img10.png", "img1.png", "missing.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        collect_images(tmp_path / "empty")
    with pytest.raises(UsageError, match="no images given"):
        collect_images([])


def test_probe_reads_the_header_with_orientation(tmp_path):
    img = Image.fromarray(np.zeros((6, 8, 4), np.uint8))  # 8 wide, 6 high, RGBA
    img.save(tmp_path / "a.png")
    assert probe_image(tmp_path / "a.png") == (6, 8, "rgba")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees: 6 wide, 8 high
    img.convert("RGB").save(tmp_path / "b.jpg", exif=exif)
    assert probe_image(tmp_path / "b.jpg") == (8, 6, "rgb")
    assert open_image(tmp_path / "b.jpg").size == (6, 8)


def test_probe_and_decode_refuse_with_the_same_reason(tmp_path, monkeypatch):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "big.png")
    cases = {
        "empty.png": "empty file (0 bytes)",
        "text.png": "not an image, or a format cnncli cannot read",
        "gone.png": "file not found",
    }
    for name, reason in cases.items():
        for read in (probe_image, open_image):
            with pytest.raises(ImageError) as e:
                read(tmp_path / name)
            assert e.value.reason == reason, (read.__name__, name)
    for limit in (1000, 1500):  # over twice the limit, and over it (a warning in Pillow)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        reasons = set()
        for read in (probe_image, open_image):
            with pytest.raises(ImageError, match="decompression bomb") as e:
                read(tmp_path / "big.png")
            reasons.add(e.value.reason)
        assert len(reasons) == 1, reasons


def test_truncated_data_is_found_by_the_decode_only(tmp_path):
    Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)).save(
        tmp_path / "t.png"
    )
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert probe_image(tmp_path / "t.png") == (64, 64, "rgb")
    with pytest.raises(ImageError, match="truncated or corrupt image data"):
        open_image(tmp_path / "t.png")
