"""Contact sheets: a grid of images with captions, drawn with Pillow (no TensorFlow).

Used by `dataset preview` (class names under sample images), `evaluate --errors`
("실제 : 대리석 // 예측 : 벽돌") and `embed --clusters` (one sheet per cluster).

A caption line wider than its cell is shortened from the left (`fit_line`), keeping the end
of a file name where names differ ("…0100090012.png").

Captions are drawn with the bundled CnncliGothic font (a Hangul subset of NanumGothic, SIL OFL;
see cnncli/fonts/README.md). When the font in use cannot draw a caption (the bundled file is
missing or broken and Pillow's default font has no Hangul), the cells are labelled with indices
("0", "1", ...) and a legend ("0 = 벽돌") is returned with the image and drawn under the grid,
with the characters the font lacks written as code points. `contact_sheet` records which
happened in `image.info["caption_mode"]` ("text", "legend" or "none") and the legend in
`image.info["legend"]`, so a caller can print the legend on the terminal and a test can tell.

Layout (all sizes in pixels; `cols = min(per_row, n)`, `rows = ceil(n / cols)`):
width  = cols * (cell + GAP) + GAP
height = title_h + rows * (cell + caption_h + GAP) + GAP + legend_h
where caption_h = lines * line_height(font) + GAP (0 without captions), title_h likewise for
the title and legend_h for the legend lines. Images are scaled to fit a cell x cell square
(keeping aspect ratio; enlarged with NEAREST so small images such as 28x28 digits keep
visible pixels, reduced with LANCZOS) and centred. Transparent pixels are composited over a
light grey checkerboard (`background="checker"`, the default, so transparency is visible)
or over white (`background="white"`). The output is deterministic for the same inputs.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from cnncli.drawing.fonts import AnyFont, drawable_text, font_covers, line_height, load_font

GAP = 4  # pixels between cells, around the grid, and under each caption block
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)
CHECKER = ((204, 204, 204), (255, 255, 255))
CHECKER_SQUARE = 8
KEEP = 4  # a shortened word keeps at least this many of its last characters

ImageLike = np.ndarray | Image.Image


# --- captions ----------------------------------------------------------------------------


@dataclass
class CaptionPlan:
    """What each cell shows: the captions themselves ("text"), indices into a legend
    ("legend"), or nothing ("none")."""

    mode: str
    labels: list[str]
    legend: list[str] = field(default_factory=list)


def plan_captions(
    captions: Sequence[str | None], font: AnyFont, legend_order: Sequence[str] = ()
) -> CaptionPlan:
    """Decide how to caption cells: the text when the font draws all of it, else indices.

    In legend mode each distinct caption gets an index, the cells show the index and
    `legend` holds "0 = 벽돌" lines (in the original text). Captions listed in
    `legend_order` (e.g. class names in class-index order) are numbered first, in that
    order; the others follow in order of first appearance.
    """
    texts = [unicodedata.normalize("NFC", c) if c else "" for c in captions]
    if not any(texts):
        return CaptionPlan("none", ["" for _ in texts])
    if all(font_covers(t, font) for t in texts):
        return CaptionPlan("text", texts)
    index: dict[str, int] = {}
    for t in [unicodedata.normalize("NFC", k) for k in legend_order] + texts:
        if t and t not in index:
            index[t] = len(index)
    labels = [str(index[t]) if t else "" for t in texts]
    legend = [f"{i} = {' / '.join(t.splitlines())}" for t, i in index.items()]
    return CaptionPlan("legend", labels, legend)


def fit_line(line: str, font: AnyFont, width: float) -> str:
    """`line` as drawn in `width` pixels: whole when it fits, else shortened from the LEFT,
    since names differ at their end ("BV1171010400100090012.png" -> "…0100090012.png").
    The longest word is shortened first, so "0.87 · BV1171010400100090012.png" keeps its
    probability ("0.87 · …00090012.png") while the word keeps KEEP characters; else the
    whole line is shortened from the left."""
    if font.getlength(line) <= width:
        return line
    dots = "…" if font_covers("…", font) else "..."
    words = line.split(" ")
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    head, tail = " ".join(words[:longest] + [""]), " ".join([""] + words[longest + 1 :])
    word = words[longest]
    if font.getlength(f"{head}{dots}{word[-KEEP:]}{tail}") <= width:
        return f"{head}{_keep_end(word, font, width - font.getlength(head + tail), dots)}{tail}"
    return _keep_end(line, font, width, dots)


def _keep_end(text: str, font: AnyFont, width: float, dots: str) -> str:
    """`dots` + the longest end of `text` that fits in `width` (binary search)."""
    lo, hi = 0, len(text)  # characters kept: lo fits (or is 0), hi is the whole text
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(dots + text[len(text) - mid :]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return dots + text[len(text) - lo :] if lo else dots


def _draw_lines(
    draw: ImageDraw.ImageDraw,
    x: int,
    y: int,
    width: int,
    lines: Iterable[str],
    font: AnyFont,
    center: bool = True,
) -> None:
    step = line_height(font)
    for i, line in enumerate(lines):
        line = fit_line(line, font, width)
        dx = (width - draw.textlength(line, font=font)) / 2 if center else 0
        draw.text((x + round(dx), y + i * step), line, font=font, fill=TEXT_COLOR)


# --- images ------------------------------------------------------------------------------


def _array_to_image(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        # floats are read as 0..1 (an image divided by 255, as the course does)
        arr = np.clip(np.rint(np.nan_to_num(arr) * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise TypeError(f"contact_sheet takes uint8, uint16, bool or float arrays, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(arr, "L")
    if arr.ndim == 3 and arr.shape[2] in (2, 3, 4):
        mode = {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
        return Image.fromarray(np.ascontiguousarray(arr), mode)
    raise ValueError(f"contact_sheet takes HxW or HxWxC images (C = 1-4), got shape {arr.shape}")


def _to_rgba(item: ImageLike) -> Image.Image:
    from cnncli.images import to_color

    img = _array_to_image(item) if isinstance(item, np.ndarray) else item
    return to_color(img, "rgba")


@lru_cache(maxsize=8)
def _checkerboard(width: int, height: int) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // CHECKER_SQUARE + xx // CHECKER_SQUARE) % 2).astype(bool)
    arr = np.where(light[:, :, None], CHECKER[1], CHECKER[0]).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _cell_image(item: ImageLike, cell: int, background: str) -> Image.Image:
    img = _to_rgba(item)
    scale = min(cell / img.width, cell / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if size != img.size:
        resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
        img = img.resize(size, resample)
    if background == "white":
        base = Image.new("RGB", img.size, BACKGROUND)
    else:
        base = _checkerboard(*img.size).copy()
    base.paste(img, (0, 0), img)  # alpha-composite over the background
    return base


# --- the sheet ---------------------------------------------------------------------------


def default_font_size(cell: int) -> int:
    return max(10, min(16, cell // 8))


def contact_sheet(
    items: Sequence[tuple[ImageLike, str | None]],
    per_row: int = 8,
    cell: int = 128,
    title: str | None = None,
    captions_below: bool = True,
    font: AnyFont | None = None,
    font_size: int | None = None,
    background: str = "checker",
    legend_order: Sequence[str] = (),
) -> Image.Image:
    """A grid of (image, caption) items as one RGB image.

    `items` holds NumPy arrays (HxW, HxWx1, HxWx3 or HxWx4; uint8, or uint16/bool/float in
    0..1) or PIL images of any mode, each with a caption (multi-line with "\\n", or None).
    Captions go under each image (`captions_below=True`) or above it. `font` defaults to the
    bundled font at `font_size` (default: cell / 8, 10 to 16 px). The returned image's
    `info["caption_mode"]` is "text", "legend" or "none" and `info["legend"]` the legend lines
    (numbered in `legend_order` first, e.g. class names, so "0" can mean class 0).
    """
    if per_row < 1 or cell < 1:
        raise ValueError("per_row and cell must be positive")
    if background not in ("checker", "white"):
        raise ValueError(f"background must be 'checker' or 'white', got {background!r}")
    items = list(items)
    font = font or load_font(font_size or default_font_size(cell))
    plan = plan_captions([c for _, c in items], font, legend_order)
    step = line_height(font)

    n = len(items)
    cols = max(1, min(per_row, n))
    rows = math.ceil(n / cols) if n else 0
    caption_lines = max((len(label.splitlines()) for label in plan.labels), default=0)
    caption_h = caption_lines * step + GAP if caption_lines else 0
    title_lines = drawable_text(title, font).splitlines() if title else []
    title_h = len(title_lines) * step + GAP if title_lines else 0
    legend_lines = [drawable_text(line, font) for line in plan.legend]
    legend_h = len(legend_lines) * step + GAP if legend_lines else 0

    width = cols * (cell + GAP) + GAP
    height = title_h + rows * (cell + caption_h + GAP) + GAP + legend_h
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title_lines:
        _draw_lines(draw, GAP, GAP, width - 2 * GAP, title_lines, font)

    for i, ((image, _), label) in enumerate(zip(items, plan.labels, strict=True)):
        r, c = divmod(i, cols)
        x = GAP + c * (cell + GAP)
        y = title_h + GAP + r * (cell + caption_h + GAP)
        image_y = y if captions_below else y + caption_h
        tile = _cell_image(image, cell, background)
        sheet.paste(tile, (x + (cell - tile.width) // 2, image_y + (cell - tile.height) // 2))
        if label:
            text_y = y + cell + GAP // 2 if captions_below else y
            _draw_lines(draw, x, text_y, cell, label.splitlines(), font)

    if legend_lines:
        top = height - legend_h
        _draw_lines(draw, GAP, top, width - 2 * GAP, legend_lines, font, center=False)
    sheet.info["caption_mode"] = plan.mode
    sheet.info["legend"] = list(plan.legend)
    return sheet
