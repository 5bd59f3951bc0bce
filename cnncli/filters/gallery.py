"""The course's filter table as one picture: the original and every named kernel's result
side by side, each with its matrix printed under it. Pillow drawing only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnncli.filters.files import FilterOptions, filter_image
from cnncli.filters.kernels import NAMED_KERNELS, format_kernel, named_kernel

TILE = 256  # longest side of each tile in pixels
COLUMNS = 4


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def filter_gallery(
    img: Image.Image,
    names: Sequence[str] = NAMED_KERNELS,
    options: FilterOptions | None = None,
    tile: int = TILE,
    columns: int = COLUMNS,
    progress: Callable[[int], None] | None = None,
) -> Image.Image:
    """An RGB contact sheet: 'original' then each kernel's result, matrix text under each."""
    small = img.copy()
    if small.mode == "P":
        small = small.convert("RGBA" if "transparency" in small.info else "RGB")
    small.thumbnail((tile, tile))  # filter at tile size: the sheet shows what each kernel does
    panels = [("original", _display(small), [])]
    for name in names:
        kernel = named_kernel(name)
        out, _ = filter_image(small, kernel, options)
        panels.append((name, _display(out), format_kernel(kernel)))
        if progress:
            progress(1)
    font = _font(14)
    title_font = _font(16)
    line_h = 17
    text_lines = max(len(p[2]) for p in panels)
    cell_w = tile + 16
    cell_h = tile + 8 + 22 + text_lines * line_h + 10
    rows = -(-len(panels) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, picture, lines) in enumerate(panels):
        x0 = (k % columns) * cell_w + 8
        y0 = (k // columns) * cell_h + 8
        picture = _fit(picture, tile)
        sheet.paste(picture, (x0 + (tile - picture.width) // 2, y0 + (tile - picture.height) // 2))
        y = y0 + tile + 4
        draw.text((x0, y), name, fill="black", font=title_font)
        y += 22
        _draw_matrix(draw, (x0, y), lines, font, line_h)
    return sheet


def _fit(img: Image.Image, tile: int) -> Image.Image:
    """Small images are enlarged (nearest neighbour, pixels stay visible) to fill the tile."""
    factor = tile // max(img.width, img.height)
    if factor >= 2:
        return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return img


def _draw_matrix(draw: ImageDraw.ImageDraw, origin, lines: list[str], font, line_h: int) -> None:
    """The kernel's numbers right-aligned in columns (the default font is proportional)."""
    x0, y = origin
    rows = [line.split() for line in lines]
    if rows and rows[0] and rows[0][-1] == "x":  # the "1/9 x" divisor line
        draw.text((x0, y), lines[0], fill=(40, 40, 40), font=font)
        rows, y = rows[1:], y + line_h
    if not rows:
        return
    width = max(draw.textlength(c, font=font) for r in rows for c in r) + 8
    for r in rows:
        for j, cell in enumerate(r):
            right = x0 + (j + 1) * width
            draw.text((right - draw.textlength(cell, font=font), y), cell, fill=(40, 40, 40),
                      font=font)  # fmt: skip
        y += line_h


def _display(img: Image.Image) -> Image.Image:
    """RGB for the sheet: 16-bit scaled to 8 bits, alpha composited on white."""
    if img.mode.startswith("I"):
        arr = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode in ("RGBA", "LA"):
        base = Image.new("RGB", img.size, "white")
        base.paste(img.convert("RGBA"), mask=img.getchannel("A"))
        return base
    return img.convert("RGB")
