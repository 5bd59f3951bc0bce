"""The streaming PNG writer (cnncli.filters.png): every row filter is a standard PNG that
Pillow reads back bit-exact, and the adaptive choice (the default) writes smaller files than
the one-filter encoder it replaced."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image, ImageFilter

from cnncli.filters.png import ROW_FILTERS, write_png


def photo_like(h: int = 150, w: int = 120, seed: int = 0) -> np.ndarray:
    """Smooth gradients and shapes, blurred, with sensor noise: what filter outputs look like."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            120 + 80 * np.sin(xx / 17) * np.cos(yy / 23),
            110 + 70 * np.cos(xx / 9 - yy / 31),
            100 + 60 * np.sin((xx + yy) / 13),
        ],
        axis=-1,
    )
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(1))
    noisy = np.asarray(img).astype(np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def row_filters_used(path) -> np.ndarray:
    """The filter-type byte of every row of an 8-bit PNG written by write_png."""
    data = path.read_bytes()
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            bpp = {0: 1, 4: 2, 2: 3, 6: 4}[body[9]] * body[8] // 8
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width * bpp + 1)
    return raw[:, 0]


@pytest.mark.parametrize("row_filter", [*ROW_FILTERS, "adaptive"])
@pytest.mark.parametrize(
    "mode, shape, dtype",
    [
        ("L", (70, 33), np.uint8),
        ("LA", (65, 9, 2), np.uint8),
        ("RGB", (130, 31, 3), np.uint8),
        ("RGBA", (3, 5, 4), np.uint8),
        ("I;16", (66, 17), np.uint16),
        ("RGB", (1, 1, 3), np.uint8),
    ],
)
def test_every_row_filter_round_trips_bit_exact_through_pillow(
    tmp_path, mode, shape, dtype, row_filter
):
    rng = np.random.default_rng(zlib.crc32(repr((mode, shape)).encode()))
    arr = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    if len(shape) == 3 and shape[0] > 4:  # smooth rows too, so that every filter gets chosen
        arr[: shape[0] // 2] = np.linspace(0, 200, shape[1], dtype=dtype)[None, :, None]
    write_png(tmp_path / "t.png", arr, mode, 1, row_filter)
    with Image.open(tmp_path / "t.png") as img:
        img.load()
        assert img.mode == mode
        np.testing.assert_array_equal(np.asarray(img), arr)


def test_photo_round_trips_and_is_smaller_than_the_sub_only_encoder(tmp_path):
    arr = photo_like()
    sizes = {}
    for row_filter in ("sub", "adaptive"):
        path = tmp_path / f"{row_filter}.png"
        write_png(path, arr, "RGB", 1, row_filter)
        with Image.open(path) as img:
            np.testing.assert_array_equal(np.asarray(img), arr)
        sizes[row_filter] = path.stat().st_size
    assert sizes["adaptive"] < 0.97 * sizes["sub"]  # the old encoder: Sub on every row


def test_adaptive_choice_is_per_row(tmp_path):
    """Rows that repeat the row above take Up; rows crossing the edges of flat tiles take
    Paeth; the filter is chosen row by row (libpng's heuristic), not once per image."""
    rng = np.random.default_rng(1)
    arr = np.zeros((96, 64), np.uint8)
    arr[:32] = rng.integers(0, 256, 64, dtype=np.uint8)  # every row equal to the one above
    yy, xx = np.mgrid[0:64, 0:64]
    tiles = ((yy // 4) * 37 + (xx // 4) * 91) % 256 + rng.integers(0, 2, (64, 64))
    arr[32:] = tiles.astype(np.uint8)
    write_png(tmp_path / "t.png", arr, "L")
    used = row_filters_used(tmp_path / "t.png")
    assert set(used[1:32].tolist()) == {2}  # Up
    assert (used[32:] == 4).sum() >= 16  # Paeth at the tile edges
    with Image.open(tmp_path / "t.png") as img:
        np.testing.assert_array_equal(np.asarray(img), arr)


def test_compress_level_0_stores_rows_unfiltered(tmp_path):
    arr = photo_like(20, 20)
    write_png(tmp_path / "t.png", arr, "RGB", 0)
    assert set(row_filters_used(tmp_path / "t.png").tolist()) == {0}
    with Image.open(tmp_path / "t.png") as img:
        np.testing.assert_array_equal(np.asarray(img), arr)
