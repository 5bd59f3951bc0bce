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
    for name in (
        "img10.png",
        "img2.png",
        "B.jpg",
        "a.png",
        "sub/img1.png",
        "sub-x/z.png",
        ".ipynb_checkpoints/img0.png",
        ".hidden.png",
        "._img3.png",
    ):
        write_image(tmp_path / "in" / name, pixel)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    return tmp_path / "in"


def test_find_images_natural_order_hidden_skipped(messy):
    found = [p.relative_to(messy).as_posix() for p in find_images(messy)]
    # folder by folder: "sub" sorts before "sub-x", as a path, not as a string
    assert found == ["a.png", "B.jpg", "img2.png", "img10.png", "sub/img1.png", "sub-x/z.png"]
    assert [p.name for p in find_images(messy, exclude=messy / "sub")] == [
        "a.png",
        "B.jpg",
        "img2.png",
        "img10.png",
        "z.png",
    ]


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


# --- damaged files: named bad images, never an "unexpected" error (issue 13) ----------------
def _gif_cut_in_its_second_frame(extra: int) -> bytes:
    """A two-frame GIF cut `extra` bytes into its second frame's image descriptor."""
    import io

    frames = [Image.new("P", (4, 4), i) for i in range(2)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 255, 255] * 2)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    data = buf.getvalue()
    return data[: data.rindex(b"\x2c") + extra]


def _tiff_whose_second_page_has_no_width() -> bytes:
    import io
    import struct

    img = Image.fromarray(np.zeros((4, 6, 3), np.uint8))
    buf = io.BytesIO()
    img.save(buf, "TIFF", save_all=True, append_images=[img])
    data = bytearray(buf.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, first)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * entries)[0]  # the next page's IFD
    for i in range(struct.unpack_from("<H", data, second)[0]):
        if struct.unpack_from("<H", data, second + 2 + 12 * i)[0] == 256:  # ImageWidth
            struct.pack_into("<H", data, second + 2 + 12 * i, 0x0FFF)
    return bytes(data)


DAMAGED = {  # name: (bytes, what Pillow raised before cnncli named it)
    "cut-descriptor.gif": (lambda: _gif_cut_in_its_second_frame(1), "error: unpack_from"),
    "cut-frame.gif": (lambda: _gif_cut_in_its_second_frame(10), "IndexError: index out of range"),
    "no-width.tif": (_tiff_whose_second_page_has_no_width, "TypeError: Missing dimensions"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_files_are_bad_images_with_a_reason(tmp_path, name):
    make, raised = DAMAGED[name]
    (tmp_path / name).write_bytes(make())
    with pytest.raises(ImageError) as err:
        open_image(tmp_path / name)
    assert err.value.reason.startswith("truncated or corrupt image data (")
    assert raised in err.value.reason and err.value.path == tmp_path / name


def test_a_name_too_long_for_the_system_is_a_bad_image(tmp_path):
    long_name = tmp_path / ("a" * 300 + ".png")  # ENAMETOOLONG: it cannot even be looked up
    for read in (probe_image, open_image):
        with pytest.raises(ImageError, match="cannot read .*too long"):
            read(long_name)


def test_skip_bad_builds_past_damaged_files_and_names_each(tmp_path, write_image):
    from cnncli.datasets.build import build_dataset

    for c, cls in enumerate(("a", "b")):
        for i in range(4):
            write_image(tmp_path / "in" / cls / f"{i}.png", np.full((4, 6, 3), 60 * c, np.uint8))
    for name, (make, _) in DAMAGED.items():
        (tmp_path / "in" / "a" / name).write_bytes(make())
    result = build_dataset(
        tmp_path / "in", tmp_path / "ds", skip_bad=True, val=0.25, workers=1, size=(4, 6)
    )
    assert sorted(name for name, _ in result.skipped) == sorted(f"a/{n}" for n in DAMAGED)
    assert all(r.startswith("truncated or corrupt image data") for _, r in result.skipped)
    assert sum(sum(c.values()) for c in result.counts.values()) == 8


# --- orientation measured as the decode applies it (issue 13) --------------------------------
def _png_with_late_orientation(arr: np.ndarray, orientation: int) -> bytes:
    """A PNG whose eXIf chunk (with `orientation`) comes after the pixel data."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    data = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[6:]  # PNG's eXIf holds the TIFF block, without "Exif\0\0"
    crc = struct.pack(">I", zlib.crc32(b"eXIf" + body))
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + crc
    end = data.rindex(b"\0\0\0\0IEND")
    return data[:end] + chunk + data[end:]


def test_a_png_turned_by_a_late_exif_chunk_is_measured_turned(tmp_path, tiny):
    from cnncli.datasets.build import build_dataset

    rng = np.random.default_rng(0)
    sources = {}
    for cls in ("a", "b"):
        for i in range(4):
            arr = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)  # stored 20 high, 30 wide
            path = tmp_path / "in" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png_with_late_orientation(arr, 6))
            sources[f"{cls}/{i}.png"] = arr
    assert probe_image(tmp_path / "in/a/0.png") == (30, 20, "rgb")  # as it stands upright
    assert open_image(tmp_path / "in/a/0.png").size == (20, 30)  # the decode agrees
    result = build_dataset(tmp_path / "in", tmp_path / "ds", val=0.25, workers=1)
    assert result.manifest["image"]["height"] == 30 and result.manifest["image"]["width"] == 20
    turned = [n for n in result.notes if "turned upright" in n]
    assert turned == ["8 of 8 images: turned upright by EXIF orientation 6 (rotated 90° clockwise)"]
    assert not any("stretched" in n for n in result.notes)  # nothing distorted
    for split in ("train", "val"):
        x, _, paths = tiny.split_arrays(tmp_path / "ds", split)
        for image, name in zip(x, paths, strict=True):  # the pixels, turned and not resized
            np.testing.assert_array_equal(image.astype(np.uint8), np.rot90(sources[name], -1))


def _corrupt_exif_jpeg(path):
    img = Image.fromarray(np.zeros((6, 5, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 1
    img.save(path, exif=exif.tobytes())
    data = bytearray(path.read_bytes())
    at = data.find(b"Exif\x00\x00") + 6
    data[at + 4 : at + 8] = b"\xff\xff\xff\x00"  # the first directory's offset: past the end
    path.write_bytes(bytes(data))
    return path


def test_load_image_names_the_file_a_decoder_warning_is_about(tmp_path, capfd):
    """predict, evaluate, activations and embed read images with load_image: Pillow's
    "Corrupt EXIF" reaches the user with the file's name, once per file, never bare."""
    from cnncli.images import ImageSpec, load_image
    from cnncli.notices import listen

    files = [_corrupt_exif_jpeg(tmp_path / f"e{i}.jpg") for i in range(3)]
    heard: list[str] = []
    capfd.readouterr()
    with listen(heard.append):
        for f in files:
            load_image(f, ImageSpec(6, 5, "rgb", "stretch"))
    assert heard == [
        f"{f}: Corrupt EXIF data. Expecting to read 2 bytes but only got 0" for f in files
    ]
    assert "EXIF" not in capfd.readouterr().err


def test_decoder_warnings_stay_with_their_thread(tmp_path):
    """Threads decoding at once (predict's pool) each get their own file's warnings."""
    from concurrent.futures import ThreadPoolExecutor

    from cnncli.images.decoder_warnings import image_warnings

    bad = _corrupt_exif_jpeg(tmp_path / "bad.jpg")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(good)

    def read(path):
        with image_warnings() as said:
            open_image(path).getexif()
            open_image(path)
        return list(said)

    paths = [bad, good] * 40
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, paths))
    for path, said in zip(paths, results, strict=True):
        assert bool(said) == (path == bad), (path, said)
