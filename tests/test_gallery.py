"""The filter gallery: Hangul titles drawn with the bundled font, the progress protocol, and an
atomic write that never replaces the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from cnncli.drawing import fonts
from cnncli.drawing.fonts import font_covers, is_fallback_font, line_height, load_font
from cnncli.errors import OutputExistsError, UsageError
from cnncli.filters import gallery as G
from cnncli.filters import named_kernel

TILE = 64  # wide enough that no title runs into the next panel


@pytest.fixture
def small(rng):
    return Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))


@pytest.fixture
def fresh_fonts():
    """load_font caches by size: clear it around a test that moves the bundled font away."""
    fonts.load_font.cache_clear()
    yield
    fonts.load_font.cache_clear()


def title_band(sheet: Image.Image, panel: int, font) -> np.ndarray:
    """The title line of panel `panel` (first row of panels), as an array."""
    cell_w = TILE + 2 * G.MARGIN
    top = G.MARGIN + TILE + 4
    box = (panel * cell_w, top, (panel + 1) * cell_w, top + line_height(font))
    return np.asarray(sheet.crop(box).convert("L"))


def rendered(text: str, font, shape) -> np.ndarray:
    """`text` drawn alone where the gallery draws a title, on white."""
    canvas = Image.new("L", (shape[1], shape[0]), 255)
    ImageDraw.Draw(canvas).text((G.MARGIN, 0), text, fill=0, font=font)
    return np.asarray(canvas)


def test_korean_kernel_title_is_drawn_with_the_bundled_font(small, fresh_fonts, monkeypatch):
    title = "샤프닝"
    sheet = G.filter_gallery(small, [(title, named_kernel("sharpen"))], tile=TILE, columns=2)
    font = load_font(G.TITLE_SIZE)
    assert not is_fallback_font(font) and font_covers(title, font)
    band = title_band(sheet, 1, font)
    assert (band < 128).sum() > 50  # ink, not an empty line
    np.testing.assert_array_equal(band, rendered(title, font, band.shape))
    # Pillow's default font (what the gallery used before) has no Hangul: .notdef boxes
    default = ImageFont.load_default(G.TITLE_SIZE)
    assert not font_covers(title, default)
    assert not np.array_equal(band, rendered(title, default, band.shape))

    # with the bundled font gone, the gallery falls back like every drawing does: the title
    # is written as code points rather than drawn as boxes
    monkeypatch.setattr(fonts, "FONT_PATH", Path("/nonexistent/CnncliGothic.ttf"))
    fonts.load_font.cache_clear()
    fallback = load_font(G.TITLE_SIZE)
    assert is_fallback_font(fallback)
    sheet = G.filter_gallery(small, [(title, named_kernel("sharpen"))], tile=TILE, columns=2)
    band = title_band(sheet, 1, fallback)
    np.testing.assert_array_equal(band, rendered("U+C0E4 U+D504 U+B2DD", fallback, band.shape))


def test_progress_reports_done_and_total(small):
    calls = []
    G.filter_gallery(
        small,
        ["edge", "box-blur", "emboss"],
        tile=TILE,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_write_gallery_is_atomic_and_spares_the_input(small, tmp_path, monkeypatch):
    src = tmp_path / "a.png"
    small.save(src)
    with pytest.raises(UsageError, match="is an input image"):
        G.write_gallery(src, src)
    out = tmp_path / "sheet.png"
    sheet = G.write_gallery(src, out, kernels=["edge"])
    with Image.open(out) as back:
        assert back.size == sheet.size and back.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(back), np.asarray(sheet))
    with pytest.raises(OutputExistsError):
        G.write_gallery(src, out, kernels=["edge"])

    def broken_save(self, fp, format=None, **kw):
        Path(fp).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        G.write_gallery(src, tmp_path / "new.png", kernels=["edge"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "sheet.png"]
