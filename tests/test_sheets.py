"""Contact sheets: the bundled Hangul font, the index+legend fallback, geometry, modes, saving."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from cnncli.drawing import fonts, sheets
from cnncli.drawing.fonts import font_covers, line_height, load_font
from cnncli.drawing.save import save_png
from cnncli.drawing.sheets import GAP, contact_sheet
from cnncli.errors import OutputExistsError


@pytest.fixture
def fallback_font():
    return ImageFont.load_default(14)  # Pillow's Aileron: Latin only


def solid(color, size=(20, 20)) -> np.ndarray:
    return np.full((*size, len(color)), color, dtype=np.uint8)


def test_bundled_font_is_the_subset_with_hangul(repo):
    font_file = repo / "cnncli" / "fonts" / "CnncliGothic.ttf"
    assert font_file.exists() and (repo / "cnncli" / "fonts" / "OFL.txt").exists()
    assert font_file.stat().st_size < 2_000_000  # subset, not the 4.7 MB original
    font = load_font(14)
    assert not fonts.is_fallback_font(font)
    assert font.path == str(fonts.FONT_PATH)
    assert font_covers("실제 : 대리석 // 예측 : 벽돌", font)
    assert font_covers("Label 4, Predict 9 ㄱㅎ", font)
    assert not font_covers("漢字", font)  # Hanja are not in the subset


def test_korean_glyphs_differ_from_tofu_and_from_each_other():
    font = load_font(16)
    masks = {ch: bytes(font.getmask(ch)) for ch in ("벽", "돌", "\U0010fffd")}
    assert masks["벽"] != masks["\U0010fffd"]
    assert masks["벽"] != masks["돌"]
    assert sum(masks["벽"]) > 0  # ink was drawn


def test_korean_captions_drawn_with_bundled_font(fallback_font):
    items = [(solid((200, 60, 40)), "벽돌"), (solid((230, 230, 225)), "대리석")]
    sheet = contact_sheet(items, per_row=2, cell=48)
    assert sheet.info["caption_mode"] == "text"
    assert sheet.info["legend"] == []
    caption = np.asarray(sheet)[GAP + 48 :, :]  # the strip under the images
    assert (caption < 128).any()  # dark text pixels
    tofu = contact_sheet([(i, "\U0010fffd\U0010fffd") for i, _ in items], per_row=2, cell=48)
    assert tofu.info["caption_mode"] == "legend"  # the bundled font lacks that code point
    fallback = contact_sheet(items, per_row=2, cell=48, font=fallback_font)
    assert fallback.info["caption_mode"] == "legend"
    assert not np.array_equal(np.asarray(sheet), np.asarray(fallback)[: sheet.height])


def test_nfd_captions_are_normalized():
    nfd = unicodedata.normalize("NFD", "벽돌")
    assert nfd != "벽돌"
    font = load_font(14)
    assert font_covers(nfd, font)
    a = contact_sheet([(solid((0, 0, 0)), nfd)], cell=32)
    b = contact_sheet([(solid((0, 0, 0)), "벽돌")], cell=32)
    assert a.tobytes() == b.tobytes()


def test_fallback_font_when_file_missing_or_broken(tmp_path):
    missing = load_font(14, tmp_path / "nope.ttf")
    assert fonts.is_fallback_font(missing)
    broken = tmp_path / "broken.ttf"
    broken.write_text("not a font")
    assert fonts.is_fallback_font(load_font(14, broken))
    assert not font_covers("벽돌", missing)
    assert font_covers("Label 4, Predict 9", missing)


def test_fallback_captions_become_indices_with_a_legend(fallback_font):
    items = [
        (solid((200, 60, 40)), "벽돌"),
        (solid((230, 230, 225)), "대리석"),
        (solid((210, 70, 50)), "벽돌"),
    ]
    plan = sheets.plan_captions([c for _, c in items], fallback_font)
    assert plan.mode == "legend"
    assert plan.labels == ["0", "1", "0"]
    assert plan.legend == ["0 = 벽돌", "1 = 대리석"]
    sheet = contact_sheet(items, per_row=3, cell=32, font=fallback_font)
    assert sheet.info["caption_mode"] == "legend"
    assert sheet.info["legend"] == ["0 = 벽돌", "1 = 대리석"]
    # the legend is drawn under the grid: two more lines than the same sheet in text mode
    step = line_height(fallback_font)
    grid_h = 32 + step + GAP + GAP + GAP
    assert sheet.size == (3 * (32 + GAP) + GAP, grid_h + 2 * step + GAP)
    assert fonts.drawable_text("0 = 벽돌", fallback_font) == "0 = U+BCBD U+B3CC"


def test_latin_captions_stay_text_with_fallback_font(fallback_font):
    plan = sheets.plan_captions(["Label 4\nPredict 9", None], fallback_font)
    assert plan.mode == "text" and plan.labels == ["Label 4\nPredict 9", ""]
    assert sheets.plan_captions([None, ""], fallback_font).mode == "none"


@pytest.mark.parametrize(
    "n, per_row, cell, cols, rows",
    [(10, 4, 32, 4, 3), (8, 8, 16, 8, 1), (3, 8, 20, 3, 1), (1, 5, 64, 1, 1), (9, 3, 10, 3, 3)],
)
def test_grid_geometry_without_captions(n, per_row, cell, cols, rows):
    items = [(solid((n * 10 % 255, 0, 0), (7, 9)), None)] * n
    sheet = contact_sheet(items, per_row=per_row, cell=cell)
    assert sheet.mode == "RGB"
    assert sheet.size == (cols * (cell + GAP) + GAP, rows * (cell + GAP) + GAP)
    assert sheet.info["caption_mode"] == "none"


def test_grid_geometry_with_multiline_captions_and_title():
    font = load_font(12)
    step = line_height(font)
    items = [(solid((0, 0, 255)), "a"), (solid((0, 255, 0)), "b\nc"), (solid((9, 9, 9)), "d")]
    sheet = contact_sheet(items, per_row=2, cell=40, title="제목", font=font)
    caption_h = 2 * step + GAP  # the tallest caption has two lines
    title_h = step + GAP
    assert sheet.size == (2 * (40 + GAP) + GAP, title_h + 2 * (40 + caption_h + GAP) + GAP)


def test_pixels_placed_and_scaled_in_cells():
    red, blue = solid((255, 0, 0), (10, 10)), solid((0, 0, 255), (10, 20))
    sheet = np.asarray(contact_sheet([(red, None), (blue, None)], per_row=2, cell=20))
    assert tuple(sheet[GAP + 10, GAP + 10]) == (255, 0, 0)  # 10x10 enlarged to fill 20x20
    x2 = GAP + 20 + GAP
    assert tuple(sheet[GAP + 10, x2 + 10]) == (0, 0, 255)  # 10x20 -> 10 rows, centred
    assert tuple(sheet[GAP + 1, x2 + 10]) == (255, 255, 255)  # above the short image: background


@pytest.mark.parametrize(
    "item",
    [
        np.full((8, 8), 100, np.uint8),
        np.full((8, 8, 1), 100, np.uint8),
        np.full((8, 8, 3), 100, np.uint8),
        np.full((8, 8), 100 / 255, np.float32),
        np.full((8, 8), 100 * 257, np.uint16),
        Image.new("L", (8, 8), 100),
        Image.new("P", (8, 8), 0),
        Image.new("I;16", (8, 8), 100 * 257),
    ],
    ids=["gray2d", "gray1", "rgb", "float", "uint16", "pil-L", "pil-P", "pil-I16"],
)
def test_modes(item):
    if isinstance(item, Image.Image) and item.mode == "P":
        item.putpalette([100, 100, 100] * 256)
    sheet = np.asarray(contact_sheet([(item, None)], cell=8))
    assert tuple(sheet[GAP + 4, GAP + 4]) == (100, 100, 100)


def test_rgba_transparency_over_checker_or_white():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:8, :, 3] = 255  # top half opaque red, bottom half fully transparent
    checker = np.asarray(contact_sheet([(rgba, None)], cell=16))
    white = np.asarray(contact_sheet([(rgba, None)], cell=16, background="white"))
    for sheet in (checker, white):
        assert tuple(sheet[GAP + 2, GAP + 2]) == (255, 0, 0)
    bottom = checker[GAP + 8 : GAP + 16, GAP : GAP + 16].reshape(-1, 3)
    assert {tuple(p) for p in bottom} == {sheets.CHECKER[0], sheets.CHECKER[1]}
    assert (white[GAP + 8 : GAP + 16, GAP : GAP + 16] == 255).all()
    half = rgba.copy()
    half[..., 3] = 128
    blended = np.asarray(contact_sheet([(half, None)], cell=16, background="white"))
    assert tuple(blended[GAP + 2, GAP + 2]) == (255, 127, 127)


def test_bad_items_and_options():
    with pytest.raises(ValueError, match="shape"):
        contact_sheet([(np.zeros((4, 4, 5), np.uint8), None)])
    with pytest.raises(TypeError, match="int64"):
        contact_sheet([(np.zeros((4, 4), np.int64), None)])
    with pytest.raises(ValueError, match="per_row"):
        contact_sheet([], per_row=0)


def test_deterministic(rng):
    items = [(rng.integers(0, 256, (30, 25, 4), dtype=np.uint8), f"{i} 벽돌") for i in range(5)]
    a = contact_sheet(items, per_row=3, cell=24, title="t")
    b = contact_sheet(items, per_row=3, cell=24, title="t")
    assert a.tobytes() == b.tobytes()


def test_save_png_atomic(tmp_path, monkeypatch):
    sheet = contact_sheet([(solid((1, 2, 3)), "x")], cell=16)
    out = save_png(sheet, tmp_path / "sub" / "sheet.png")
    with Image.open(out) as back:
        assert back.format == "PNG" and back.size == sheet.size
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(sheet))
    with pytest.raises(OutputExistsError):
        save_png(sheet, out, overwrite=False)

    def broken_save(self, fp, format=None, **kw):
        Path(fp).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_png(sheet, tmp_path / "new.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["sheet.png"]


def test_legend_order_numbers_class_names_first(fallback_font):
    captions = ["대리석", None, "대리석", "기타"]
    plan = sheets.plan_captions(captions, fallback_font, legend_order=["벽돌", "대리석"])
    assert plan.labels == ["1", "", "1", "2"]
    assert plan.legend == ["0 = 벽돌", "1 = 대리석", "2 = 기타"]
    sheet = contact_sheet(
        [(solid((9, 9, 9)), c) for c in captions],
        font=fallback_font,
        legend_order=["벽돌", "대리석"],
    )
    assert sheet.info["legend"] == plan.legend
    # with the bundled font the order does not matter: the names are drawn
    assert sheets.plan_captions(captions, load_font(14), ["벽돌"]).mode == "text"


def test_captions_above_when_not_below():
    font = load_font(12)
    step = line_height(font)
    white = solid((255, 255, 255), (48, 48))
    below = np.asarray(contact_sheet([(white, "벽돌")], cell=48, font=font, background="white"))
    above = np.asarray(contact_sheet([(white, "벽돌")], cell=48, font=font, captions_below=False))
    assert below.shape == above.shape == (48 + step + GAP + 2 * GAP, 48 + 2 * GAP, 3)
    top, bottom = slice(GAP, GAP + step), slice(GAP + 48 + GAP // 2, GAP + 48 + GAP // 2 + step)
    assert (above[top] < 128).any() and not (above[bottom] < 128).any()
    assert (below[bottom] < 128).any() and not (below[top] < 128).any()


def test_long_captions_keep_their_end_where_names_differ():
    """Façade file names share their beginning: a caption cut at the end read
    "BV117101040…" in every cell. Shortened from the left, the differing end stays."""
    font = load_font(12)
    a, b = "BV1171010400100090012.png", "BV1171010400100090013.png"
    short = sheets.fit_line(a, font, 100)
    assert short.startswith("…") and short.endswith("0012.png")
    assert font.getlength(short) <= 100 < font.getlength(a)
    assert sheets.fit_line(a, font, 400) == a
    # the longest word gives way first: an error caption keeps its probability
    line = sheets.fit_line(f"0.87 · {a}", font, 140)
    assert line.startswith("0.87 · …") and line.endswith("90012.png")
    # too narrow for that: the whole line keeps its end
    assert sheets.fit_line("실제 : 대리석 // 예측 : 벽돌", font, 60).endswith("벽돌")
    # every sheet: two names differing in their last digit are told apart in 64 px cells
    one, two = (np.asarray(contact_sheet([(solid((9, 9, 9)), n)], cell=64)) for n in (a, b))
    assert one.shape == two.shape and not np.array_equal(one, two)
