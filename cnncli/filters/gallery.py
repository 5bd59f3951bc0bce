"""The course's filter table as one picture: the original and every named kernel's result
side by side, each with its title and matrix under it. Pillow drawing only, with the bundled
Hangul font (cnncli.drawing.fonts), so a Korean kernel title reads as Korean."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cnncli.drawing.fonts import drawable_text, line_height, load_font
from cnncli.drawing.save import save_png
from cnncli.filters.channels import FilterOptions, filter_image
from cnncli.filters.files import check_outputs, open_input
from cnncli.filters.kernels import NAMED_KERNELS, format_kernel, named_kernel
from cnncli.progress import Counter, Progress

TILE = 256  # longest side of each tile in pixels
COLUMNS = 4
TITLE_SIZE = 16  # font sizes in pixels: panel titles, matrix numbers
TEXT_SIZE = 14
MARGIN = 8  # around each tile

KernelItem = str | tuple[str, np.ndarray]  # a named kernel, or (title, kernel)


def filter_gallery(
    img: Image.Image,
    kernels: Sequence[KernelItem] = NAMED_KERNELS,
    options: FilterOptions | None = None,
    tile: int = TILE,
    columns: int = COLUMNS,
    progress: Progress | None = None,
) -> Image.Image:
    """An RGB contact sheet: 'original' then each kernel's result, title and matrix under each.

    `kernels` holds named kernels ("sharpen") or (title, matrix) pairs; titles may be Korean.
    `progress(done, total)` is called after each kernel.
    """
    small = img.copy()
    if small.mode == "P":
        small = small.convert("RGBA" if "transparency" in small.info else "RGB")
    small.thumbnail((tile, tile))  # filter at tile size: the sheet shows what each kernel does
    panels: list[tuple[str, Image.Image, list[str]]] = [("original", _display(small), [])]
    counter = Counter(progress, len(kernels))
    for item in kernels:
        title, kernel = (item, named_kernel(item)) if isinstance(item, str) else item
        kernel = np.asarray(kernel, dtype=np.float64)
        out, _ = filter_image(small, kernel, options)
        panels.append((title, _display(out), format_kernel(kernel)))
        counter.add()
    font, title_font = load_font(TEXT_SIZE), load_font(TITLE_SIZE)
    line_h, title_h = line_height(font), line_height(title_font) + 4
    text_lines = max(len(p[2]) for p in panels)
    cell_w = tile + 2 * MARGIN
    cell_h = tile + MARGIN + 4 + title_h + text_lines * line_h + 10
    rows = -(-len(panels) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (title, picture, lines) in enumerate(panels):
        x0 = (k % columns) * cell_w + MARGIN
        y0 = (k // columns) * cell_h + MARGIN
        picture = _fit(picture, tile)
        sheet.paste(picture, (x0 + (tile - picture.width) // 2, y0 + (tile - picture.height) // 2))
        y = y0 + tile + 4
        draw.text((x0, y), drawable_text(title, title_font), fill="black", font=title_font)
        _draw_matrix(draw, (x0, y + title_h), lines, font, line_h)
    return sheet


def write_gallery(
    source: str | os.PathLike,
    out_png: str | os.PathLike,
    options: FilterOptions | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    kernels: Sequence[KernelItem] = NAMED_KERNELS,
) -> Image.Image:
    """Draw `filter_gallery` for the image file `source` and write it to `out_png`
    atomically; refuses to write over the input, or over an existing file unless
    `overwrite`. Returns the sheet."""
    source, out_png = Path(source), Path(out_png)
    (options or FilterOptions()).check()
    check_outputs([(source, out_png)], overwrite)
    with open_input(source) as img:
        sheet = filter_gallery(img, kernels, options, progress=progress)
    save_png(sheet, out_png, overwrite=overwrite)
    return sheet


def _fit(img: Image.Image, tile: int) -> Image.Image:
    """Small images are enlarged (nearest neighbour, pixels stay visible) to fill the tile."""
    factor = tile // max(img.width, img.height)
    if factor >= 2:
        return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return img


def _draw_matrix(draw: ImageDraw.ImageDraw, origin, lines: list[str], font, line_h: int) -> None:
    """The kernel's numbers right-aligned in columns (the font is proportional)."""
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
            draw.text(
                (right - draw.textlength(cell, font=font), y), cell, fill=(40, 40, 40), font=font
            )
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
