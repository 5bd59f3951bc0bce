"""`cnncli filter`: image modes, output names, matrices, the gallery, errors, start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from cnncli.filters import named_kernel


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Outputs without -o/--out-dir land in the current folder: here, tmp_path."""
    monkeypatch.chdir(tmp_path)


def cv2_ref(arr: np.ndarray, name: str, border=cv2.BORDER_REFLECT_101) -> np.ndarray:
    return cv2.filter2D(arr, -1, named_kernel(name), borderType=border)


@pytest.fixture
def rgb(tmp_path, rng, write_image):
    return write_image(tmp_path / "img.png", rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))


def test_users_example_writes_in_the_current_folder(cli, rgb):
    result = cli("filter", "--kernel", "sharpen", rgb)
    assert result.exit_code == 0, result.stderr
    out = Path("img.sharpen.png")  # the current folder (tmp_path here)
    assert f"wrote {out}" in result.stderr
    src = np.asarray(Image.open(rgb))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), cv2_ref(src, "sharpen"))
    # never over an existing file without --overwrite, one line, exit 2
    again = cli("filter", "--kernel", "sharpen", rgb)
    assert again.exit_code == 2
    assert again.stderr.strip() == (
        f"error: {out} already exists: choose another output or pass --overwrite"
    )
    assert cli("filter", "--kernel", "sharpen", rgb, "--overwrite").exit_code == 0


def test_never_writes_over_the_input(cli, rgb):
    result = cli("filter", "-k", "edge", rgb, "-o", rgb)
    assert result.exit_code == 2
    assert "is an input image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "P"])
def test_every_mode_keeps_its_kind_and_alpha(cli, tmp_path, rng, mode, write_image):
    h, w = 18, 21
    if mode == "I;16":
        src = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        path = tmp_path / "a.png"
        Image.fromarray(src).save(path)
    elif mode == "P":
        path = tmp_path / "a.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).quantize(16).save(path)
    else:
        channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        path = write_image(tmp_path / "a.png", arr.squeeze(-1) if channels == 1 else arr)
    original = Image.open(path)
    result = cli("filter", "-k", "gaussian-blur", path, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.stderr
    out = Image.open(tmp_path / "out.png")
    expected_mode = {"P": "RGB"}.get(mode, mode)
    assert out.mode == expected_mode
    src = np.asarray(original.convert("RGB") if mode == "P" else original)
    got = np.asarray(out)
    colour = {"LA": slice(0, 1), "RGBA": slice(0, 3)}.get(mode)
    if colour is not None:
        np.testing.assert_array_equal(got[..., -1], src[..., -1])  # alpha untouched
        ref = cv2_ref(np.ascontiguousarray(src[..., colour]), "gaussian-blur")
        np.testing.assert_array_equal(got[..., colour].squeeze(), ref.squeeze())
    else:
        assert got.dtype == src.dtype
        np.testing.assert_array_equal(got, cv2_ref(src, "gaussian-blur"))


def test_palette_with_transparency_becomes_rgba(cli, tmp_path, rng):
    img = Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).quantize(8)
    img.info["transparency"] = 0
    path = tmp_path / "p.png"
    img.save(path, transparency=0)
    result = cli("filter", "-k", "identity", path)
    assert result.exit_code == 0, result.stderr
    assert "palette image converted to RGBA" in result.stderr
    out = Image.open(tmp_path / "p.identity.png")
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(Image.open(path).convert("RGBA")))


def test_several_images_out_dir_json(cli, tmp_path, rng, write_image):
    paths = [
        write_image(tmp_path / f"i{k}.png", rng.integers(0, 256, (8, 9), dtype=np.uint8))
        for k in range(5)
    ]
    result = cli(
        "filter", "-k", "0,-1,0;-1,5,-1;0,-1,0", *paths, "--out-dir", tmp_path / "o", "--json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["output"] for d in data] == [
        str(tmp_path / "o" / f"i{k}.filtered.png") for k in range(5)
    ]
    for p in paths:
        got = np.asarray(Image.open(tmp_path / "o" / f"{p.stem}.filtered.png"))
        np.testing.assert_array_equal(got, cv2_ref(np.asarray(Image.open(p)), "sharpen"))


def test_options_reach_the_engine(cli, tmp_path, rng, write_image):
    arr = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    path = write_image(tmp_path / "g.png", arr)
    out = tmp_path / "o.png"
    args = ["filter", "-k", "sobel-x", path, "-o", out, "--overwrite"]
    assert cli(*args, "--offset", "128", "--border", "zero").exit_code == 0
    ref = cv2.filter2D(
        arr.astype(np.float32), -1, named_kernel("sobel-x"), borderType=cv2.BORDER_CONSTANT
    )
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.clip(np.rint(ref + 128), 0, 255))
    assert cli(*args, "--normalize", "--padding", "valid", "--stride", "2").exit_code == 0
    got = np.asarray(Image.open(out))
    assert got.shape == (7, 7) and got.min() == 0 and got.max() == 255
    assert cli(*args, "--abs", "--flip").exit_code == 0
    ref = cv2.filter2D(arr.astype(np.float32), -1, named_kernel("sobel-x")[::-1, ::-1].copy())
    np.testing.assert_array_equal(
        np.asarray(Image.open(out)), np.clip(np.rint(np.abs(ref)), 0, 255)
    )


def test_compress_levels_change_size_not_pixels(cli, tmp_path, rng, write_image):
    yy, xx = np.mgrid[0:60, 0:80]
    arr = ((xx * 3 + yy) % 256).astype(np.uint8)
    path = write_image(tmp_path / "s.png", arr)
    sizes = {}
    for level in (0, 9):
        out = tmp_path / f"c{level}.png"
        assert cli("filter", "-k", "box-blur", path, "-o", out, "--compress", level).exit_code == 0
        sizes[level] = out.stat().st_size
    assert sizes[0] > sizes[9]
    a, b = (np.asarray(Image.open(tmp_path / f"c{k}.png")) for k in (0, 9))
    np.testing.assert_array_equal(a, b)
    assert cli("filter", "-k", "box-blur", path, "--compress", "10").exit_code == 2


def test_list_shows_every_named_kernel(cli):
    result = cli("filter", "--list", "--json")
    data = {d["name"]: d["matrix"] for d in json.loads(result.stdout)}
    assert data["edge"] == [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]
    assert data["sharpen"] == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert data["laplacian"] == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert data["edge-diagonal"] == [[1, 0, -1], [0, 0, 0], [-1, 0, 1]]
    table = cli("filter", "--list").stdout
    assert "box-blur" in table and "1/9 x" in table and "sobel-y" in table


def test_gallery_sheet(cli, rgb, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = cli("filter", "--gallery", sheet, rgb)
    assert result.exit_code == 0, result.stderr
    img = Image.open(sheet)
    assert img.mode == "RGB" and img.width >= 4 * 256 and img.height >= 4 * 256
    assert cli("filter", "--gallery", sheet, rgb).exit_code == 2  # exists


# -- matrices -------------------------------------------------------------------------------


def test_course_matrix_examples(cli, tmp_path):
    m = "1,1,1,0,0;0,1,1,1,0;0,0,1,1,1;0,0,1,1,0;0,1,1,0,0"
    r = cli("filter", "--matrix", m, "-k", "1,0,1;0,1,0;1,0,1", "--padding", "valid", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["output"] == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    f = tmp_path / "m.csv"
    f.write_text("1,2,3\n4,5,6\n7,8,9\n")
    same = json.loads(cli("filter", "--matrix", f, "-k", "1,1;1,1", "--json").stdout)
    assert same["output"] == [[12, 16, 9], [24, 28, 15], [15, 17, 9]] and same["border"] == "zero"
    valid = cli("filter", "--matrix", f, "-k", "1,1;1,1", "--padding", "valid", "--json")
    assert json.loads(valid.stdout)["output"] == [[12, 16], [24, 28]]


def test_matrix_table_and_steps(cli):
    r = cli(
        "filter", "--matrix", "1,2,3;4,5,6;7,8,9", "-k", "1,1;1,1", "--padding", "valid", "--steps"
    )
    assert r.exit_code == 0
    assert "(0,0): 1*1 + 1*2 + 1*4 + 1*5 = 12" in r.stdout
    assert "(1,1): 1*5 + 1*6 + 1*8 + 1*9 = 28" in r.stdout
    assert "│ 0 │ 12 │ 16 │" in r.stdout


# -- bad input: one clear line, exit 2 --------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", "1,x;2,3"], "error: the kernel has a value that is not a number: 'x'"),
        (["-k", "1,2;3"], "error: the kernel's rows have different lengths (1, 2)"),
        (["-k", ";"], "error: the kernel is empty"),
        (
            ["-k", ",".join(["1"] * 31), "--padding", "valid"],
            "error: the kernel (31) is larger than the input (30) with valid padding",
        ),
        (["-k", "sharpen", "--stride", "0"], "error: stride must be 1 or more, got 0"),
        (["-k", "sharpen", "--border", "wrap"], "error: unknown border 'wrap'"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, rgb, args, message):
    result = cli("filter", *args, rgb)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert "Traceback" not in result.output


def test_not_an_image_is_exit_2(cli, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    result = cli("filter", "-k", "sharpen", bad)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: not an image, or a format cnncli cannot read: give an image file "
        "(PNG, JPEG, BMP, GIF, TIFF, WebP)"
    ]
    assert not (tmp_path / "notes.sharpen.png").exists()


PROBE = """
import sys
from cnncli.cli.main import app
from typer.testing import CliRunner
r = CliRunner().invoke(app, {args!r})
assert r.exit_code == 0, r.output
print("HEAVY=" + ",".join(m for m in ("tensorflow", "keras", "cv2", "scipy", "pandas", "matplotlib")
                            if m in sys.modules))
"""


@pytest.mark.parametrize("command", ["filter", "pool"])
def test_filter_and_pool_never_import_tensorflow(tmp_path, rgb, command):
    args = ["filter", "-k", "sharpen", str(rgb)] if command == "filter" else ["pool", str(rgb)]
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY=", out


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
@pytest.mark.parametrize(
    "args",
    [
        ["-k", "edge"],
        ["-k", "1,2;3,-4", "--stride", "2"],
        ["-k", "unsharp", "--padding", "valid", "--stride", "3", "--border", "edge"],
        ["-k", "emboss", "--offset", "128", "--border", "zero"],
    ],
)
def test_streamed_output_equals_the_array_path(tmp_path, rng, mode, args, cli, write_image):
    """L, RGB and 16-bit PNGs go from the decoded image to the file block by block."""
    from cnncli.filters import FilterOptions, filter_image, parse_kernel

    if mode == "I;16":
        path = tmp_path / "a.png"
        Image.fromarray(rng.integers(0, 65536, (150, 37), dtype=np.uint16)).save(path)
    else:
        shape = (150, 37, 3) if mode == "RGB" else (150, 37)
        path = write_image(tmp_path / "a.png", rng.integers(0, 256, shape, dtype=np.uint8))
    result = cli("filter", *args, path, "-o", tmp_path / "s.png")
    assert result.exit_code == 0, result.stderr
    opts = dict(zip(args[2::2], args[3::2], strict=True))
    options = FilterOptions(
        padding=opts.get("--padding", "same"),
        border=opts.get("--border", "reflect"),
        stride=int(opts.get("--stride", 1)),
        offset=float(opts.get("--offset", 0)),
    )
    ref, _ = filter_image(Image.open(path), parse_kernel(args[1]), options)
    got = Image.open(tmp_path / "s.png")
    assert got.mode == mode
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_tiny_image_smaller_than_the_padding(cli, tmp_path, rng, write_image):
    path = write_image(tmp_path / "t.png", rng.integers(0, 256, (2, 3), dtype=np.uint8))
    assert cli("filter", "-k", "unsharp", path).exit_code == 0
    got = np.asarray(Image.open(tmp_path / "t.unsharp.png"))
    x = np.asarray(Image.open(path)).astype(float)
    ref = ndimage.correlate(np.pad(x, 2, mode="reflect"), named_kernel("unsharp"))[2:-2, 2:-2]
    np.testing.assert_array_equal(got, np.clip(np.rint(ref), 0, 255))


# -- the library: progress protocol, atomic writes ------------------------------------------


def test_filter_and_pool_files_report_done_and_total(tmp_path, rng, write_image):
    from cnncli.filters import filter_files, pool_files

    paths = [
        write_image(tmp_path / f"img{i}.png", rng.integers(0, 256, (6, 7), dtype=np.uint8))
        for i in (2, 10, 1)
    ]
    calls = []
    written = filter_files(
        paths, "box", out_dir=tmp_path / "out", progress=lambda *a: calls.append(a)
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [w.output.name for w in written] == [
        "img2.box-blur.png",
        "img10.box-blur.png",
        "img1.box-blur.png",
    ]
    calls.clear()
    pool_files(paths, "avg", 3, out_dir=tmp_path / "out", progress=lambda *a: calls.append(a))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert (tmp_path / "out" / "img10.avgpool3.png").exists()


@pytest.mark.parametrize(
    "mode, out", [("RGB", "x.png"), ("RGBA", "x.png"), ("RGB", "x.jpg")]
)  # streamed PNG, PNG from arrays, JPEG through Pillow
def test_interrupted_write_leaves_no_file(tmp_path, rng, write_image, monkeypatch, mode, out):
    from cnncli.filters import filter_files
    from cnncli.filters.png import PngWriter

    src = write_image(tmp_path / "a.png", rng.integers(0, 256, (150, 20, 4), dtype=np.uint8), mode)
    real_write = PngWriter.write

    def write_then_fail(self, rows):
        real_write(self, rows)  # some rows reach the file, then the disk is full
        raise OSError("disk full")

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(PngWriter, "write", write_then_fail)
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        filter_files([src], "edge", out=tmp_path / out)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_outputs_go_to_the_current_folder_never_beside_the_input(cli, tmp_path, write_image, rng):
    """The photos a user filters are only read: without -o/--out-dir the result is
    written in the current folder, and the photos' folder is left as it was."""
    photos = tmp_path / "photos"
    src = write_image(photos / "img.png", rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    work = tmp_path / "work"
    work.mkdir()
    import os

    os.chdir(work)
    result = cli("filter", "-k", "sharpen", src)
    assert result.exit_code == 0, result.output
    assert [p.name for p in photos.iterdir()] == ["img.png"]
    assert (work / "img.sharpen.png").exists()
    result = cli("pool", "--op", "max", "--size", "2", src)
    assert result.exit_code == 0, result.output
    assert (work / "img.maxpool2.png").exists() and len(list(photos.iterdir())) == 1
