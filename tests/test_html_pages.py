"""HTML pages in a real browser (headless Chromium): the bundled Hangul font is embedded, so
Korean class names draw as glyphs on a machine without CJK fonts, `lang` follows the
content, and index.html finds its pictures by relative links.

Chromium runs with its own fontconfig holding only DejaVu Sans (copied from matplotlib), so
no system CJK font can draw the Hangul: only the page's embedded font can. Without Chromium
these tests skip, except under CI (CI=true), where they fail: CI must install it (.ci/run).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnncli.drawing.fonts import load_font
from cnncli.drawing.html import html_page, page_lang

NAMES = ["벽돌", "대리석"]
FONT_FACE = re.compile(r"@font-face\{[^}]*\}")
# show only the class-name cells, large and black, at a known place
ONLY_NAMES = (
    "<style>body>*:not(#input),#input>*:not(table),th,td+td{display:none!important}"
    "td{font-size:48px;color:#000;padding:8px 16px;line-height:1.6}</style></head>"
)


def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch, find_browser):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        find_browser({"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        find_browser({})


@pytest.fixture(scope="module")
def korean_page(tmp_path_factory):
    """index.html of a model whose classes are 벽돌 and 대리석 (and its folder)."""
    from cnncli.inference.activations import activations
    from cnncli.models.io import save_model
    from cnncli.models.presets import build_architecture

    tmp = tmp_path_factory.mktemp("korean")
    model = build_architecture("tiny", input_shape=(20, 20, 3), num_classes=2)
    spec = {"height": 20, "width": 20, "channels": 3, "color": "rgb", "fit": "stretch"}
    save_model(model, tmp / "m.keras", {"class_names": NAMES, "image": spec, "pixel_scale": 1.0})
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((30, 30, 3)) * 255).astype(np.uint8)).save(tmp / "wall.png")
    activations(tmp / "m.keras", [tmp / "wall.png"], tmp / "o")
    return tmp / "o" / "index.html"


def _variant(page: Path, name: str, font: bool, only_names: bool) -> Path:
    text = page.read_text(encoding="utf-8")
    if not font:
        text = FONT_FACE.sub("", text)
    if only_names:
        text = text.replace("</head>", ONLY_NAMES, 1)
    out = page.with_name(name)
    out.write_text(text, encoding="utf-8")
    return out


def _ink_boxes(shot: np.ndarray) -> list[np.ndarray]:
    """The dark pixels of each text line (bands of rows with ink), cropped to their ink."""
    ink = shot.min(axis=2) < 128
    rows = np.flatnonzero(ink.any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 4) + 1) if rows.size else []
    out = []
    for band in bands:
        part = ink[band[0] : band[-1] + 1]
        cols = np.flatnonzero(part.any(axis=0))
        out.append(part[:, cols[0] : cols[-1] + 1])
    return out


def _bundled_rendering(text: str, size: int = 48) -> np.ndarray:
    """`text` drawn by Pillow with the bundled font: the shapes the browser must draw."""
    from PIL import ImageDraw

    canvas = Image.new("L", (size * (len(text) + 2), size * 2), 255)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), text, font=load_font(size), fill=0)
    ink = np.asarray(canvas) < 128
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _overlap(drawn: np.ndarray, expected: np.ndarray) -> float:
    """Intersection over union of two ink masks, `drawn` resized to `expected`'s box."""
    resized = Image.fromarray(drawn).resize(expected.shape[::-1], Image.Resampling.NEAREST)
    a = np.asarray(resized)
    return float((a & expected).sum() / max(1, (a | expected).sum()))


def test_korean_page_embeds_the_font_and_says_ko(korean_page):
    text = korean_page.read_text(encoding="utf-8")
    assert text.startswith('<!doctype html>\n<html lang="ko">')
    assert len(FONT_FACE.findall(text)) == 1 and "data:font/ttf;base64," in text
    assert not re.search(r'(src|href)="(/|file:|http)', FONT_FACE.sub("", text))  # no fetch
    assert len(text.encode("utf-8")) < 60_000  # the font cut to the page's characters
    assert page_lang(html_page("t", "<p>only English</p>")) == "en"
    assert '<html lang="en">' in html_page("t", "<p>only English</p>")


@pytest.mark.slow
def test_hangul_class_names_are_drawn_in_a_browser(browser, korean_page):
    """Hangul is drawn as the bundled font's glyphs, not as boxes: the page differs from the
    same page without its @font-face, and each class-name cell has the shape Pillow draws
    with the bundled font (the boxes Chromium draws without it do not)."""
    _, screenshot = browser
    full = screenshot(korean_page)
    bare = screenshot(_variant(korean_page, "bare.html", font=False, only_names=False))
    assert (full != bare).any(axis=2).sum() > 500
    names = _ink_boxes(screenshot(_variant(korean_page, "names.html", True, True)))
    boxes = _ink_boxes(screenshot(_variant(korean_page, "boxes.html", False, True)))
    assert len(names) == len(boxes) == len(NAMES)
    for name, drawn, tofu in zip(NAMES, names, boxes, strict=True):
        expected = _bundled_rendering(name)
        assert _overlap(drawn, expected) > 0.6, f"{name} is not drawn with the bundled font"
        assert _overlap(tofu, expected) < 0.45  # the check tells glyphs from boxes


def test_index_html_opens_in_headless_browser(browser, korean_page):
    run, screenshot = browser
    px = screenshot(korean_page, (800, 1600)).astype(int)
    # text is grey; colourful pixels mean the images were found and drawn (relative links)
    colourful = (px.max(axis=2) - px.min(axis=2)) > 60
    assert colourful.sum() > 1000
    dom = run(["--dump-dom", korean_page.as_uri()], text=True).stdout
    assert "Predicted class" in dom and re.search(r'<img src="00_conv2d(_\d+)?\.png"', dom)
