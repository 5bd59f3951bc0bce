"""Drawing activations: the course's normalisation, channel grids and vector strips as
palette PNGs (NumPy composes the grid, a matplotlib colormap is read once as a lookup table,
Pillow draws titles and channel numbers). Used by cnncli.inference.activations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from cnncli.drawing.fonts import load_font
from cnncli.errors import UsageError

NORMS = ("channel", "layer", "global")
MAX_CHANNELS = 256  # channels drawn per layer; wider layers show the first 256 (noted)
MAX_CELL = 256  # a map larger than this is reduced (block mean) to fit a 256 px cell
MIN_CELL = 64  # a smaller map is enlarged (nearest, whole times) to at least 64 px
MIN_PICTURE = 224  # input.png and gradcam.png of a small model: enlarged to at least 224 px
MAX_VALUES = 4096  # values drawn in a vector strip (the CSV holds them all)
GAP = 2
BG = (255, 255, 255)


@lru_cache(maxsize=16)
def colormap_lut(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table from matplotlib's colormap `name`."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise UsageError(
            f"unknown colormap {name!r}", "use a matplotlib colormap: viridis, gray, magma, ..."
        ) from None
    return (cmap(np.arange(256))[:, :3] * 255 + 0.5).astype(np.uint8)


def display_factor(height: int, width: int, minimum: int) -> int:
    """The whole number of times to enlarge a height x width picture so its longer side
    reaches `minimum` pixels (1 when it already does)."""
    return max(1, math.ceil(minimum / max(1, height, width)))


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """`pixels` (H, W[, C]) enlarged `factor` times, nearest neighbour: every pixel becomes
    a factor x factor block, so what is shown is still exactly what the model saw."""
    if factor <= 1:
        return pixels
    return np.asarray(pixels).repeat(factor, axis=0).repeat(factor, axis=1)


def normalize(
    values: np.ndarray, norm: str = "channel", stats: tuple[float, float] | None = None
) -> np.ndarray:
    """The course's normalisation to 0..255 (float32, clipped), the last axis as channels.

    norm="channel": each channel's own mean and std; "layer": the whole array's;
    "global": `stats` = (mean, std) given by the caller. std 0 gives a flat 128.
    """
    a = np.asarray(values, dtype=np.float32)
    if norm == "channel" and a.ndim >= 2:
        axes = tuple(range(a.ndim - 1))
        mean, std = a.mean(axis=axes), a.std(axis=axes)
    elif norm in ("channel", "layer"):
        mean, std = a.mean(), a.std()
    elif norm == "global":
        if stats is None:
            raise ValueError("norm='global' needs stats=(mean, std)")
        mean, std = np.float32(stats[0]), np.float32(stats[1])
    else:
        raise UsageError(f"unknown --norm {norm!r}", f"use one of {', '.join(NORMS)}")
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    flat = ~(std > 1e-6 * np.maximum(1.0, np.abs(mean)))  # constant (or NaN) channels
    scale = np.where(flat, 0.0, 64.0 / np.where(flat, 1.0, std)).astype(np.float32)
    out = (a - np.where(flat, 0, mean)) * scale + 128.0
    out = np.where(np.isfinite(out), out, 128.0)
    return np.clip(out, 0.0, 255.0)


def _text_width(font, text: str) -> int:
    return int(math.ceil(font.getlength(text)))


def _titled(body: np.ndarray, lines: Sequence[str], font_size: int = 13) -> Image.Image:
    font = load_font(font_size)
    step = font_size + 4
    width = max([body.shape[1]] + [_text_width(font, t) + 2 * GAP + 4 for t in lines])
    top = len(lines) * step + GAP if lines else 0
    canvas = Image.new("RGB", (width, top + body.shape[0]), BG)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((GAP + 2, GAP + i * step), line, fill=(20, 20, 20), font=font)
    canvas.paste(Image.fromarray(body), (0, top))
    return canvas


CMAP_LEVELS = 240  # grid palette: 240 colormap levels, then 16 greys (text, background)
WHITE = 255  # palette index of the last grey, 255


@lru_cache(maxsize=16)
def grid_palette(name: str) -> tuple[int, ...]:
    """A PNG palette: `name`'s colormap at CMAP_LEVELS levels, then 16 greys (0, 17, ..., 255).

    Grids are written as palette PNGs: measured on the façade model's 500x500x10 grid
    (2522x322), 28 ms and 270 kB against 144 ms and 498 kB as RGB (zlib level 1)."""
    import matplotlib

    colormap_lut(name)  # an unknown name fails with a clear message
    colors = matplotlib.colormaps[name](np.linspace(0.0, 1.0, CMAP_LEVELS))[:, :3]
    colors = (colors * 255 + 0.5).astype(np.uint8)
    greys = np.repeat(np.arange(16, dtype=np.uint8) * 17, 3).reshape(16, 3)
    return tuple(np.concatenate([colors, greys]).ravel().tolist())


def _levels(values: np.ndarray) -> np.ndarray:
    """0..255 floats -> palette indices: truncated to uint8 as the course does, then the
    nearest of the CMAP_LEVELS colormap levels."""
    u = values.astype(np.uint8).astype(np.uint16)
    return ((u * (CMAP_LEVELS - 1) + 127) // 255).astype(np.uint8)


def activation_grid(
    maps: np.ndarray,
    title: Sequence[str] = (),
    per_row: int = 16,
    cmap: str = "viridis",
    norm: str = "channel",
    stats: tuple[float, float] | None = None,
    max_channels: int = MAX_CHANNELS,
) -> Image.Image:
    """An (H, W, C) activation -> one palette image: channels in a grid, `per_row` per row,
    numbered, coloured with `cmap`, `title` lines on top. The cells are composed with NumPy
    into one index array; Pillow draws only the text."""
    if maps.ndim == 2:  # (length, channels) from a 1-D layer: one row per channel
        maps = maps[None]
    h, w, c = maps.shape
    k = min(c, max_channels)
    values = normalize(maps[:, :, :k], norm, stats)
    title = list(title)
    down = max(1, math.ceil(max(h, w) / MAX_CELL))
    if down > 1:  # block mean: bounded size, no aliasing
        hh, ww = h // down, w // down
        values = values[: hh * down, : ww * down].reshape(hh, down, ww, down, k).mean(axis=(1, 3))
        title.append(f"each map shown at 1/{down} size (block mean over {down}x{down} pixels)")
    up = display_factor(values.shape[0], values.shape[1], MIN_CELL)
    if up > 1:
        values = enlarge(values, up)
        title.append(f"each {h}x{w} map shown at {up}x (nearest neighbour)")
    ch, cw = values.shape[:2]
    cells = np.moveaxis(_levels(values), 2, 0)  # (k, ch, cw)

    cols = max(1, min(per_row, k))
    rows = math.ceil(k / cols)
    font_size = 10 if cw < 40 else 12
    label_h = font_size + 3
    cell_w = max(cw, _text_width(load_font(font_size), str(k - 1)) + 2)
    grid = np.full((rows, label_h + ch + GAP, cols, cell_w + GAP), WHITE, np.uint8)
    padded = np.full((rows * cols, ch, cw), WHITE, np.uint8)
    padded[:k] = cells
    grid[:, label_h : label_h + ch, :, :cw] = padded.reshape(rows, cols, ch, cw).transpose(
        0, 2, 1, 3
    )
    body = grid.reshape(rows * (label_h + ch + GAP), cols * (cell_w + GAP))
    body = np.pad(body, ((0, GAP), (GAP, 0)), constant_values=WHITE)

    title_font, step = load_font(13), 13 + 4
    top = len(title) * step + GAP if title else 0
    width = max([body.shape[1]] + [_text_width(title_font, t) + 2 * GAP + 4 for t in title])
    index = np.full((top + body.shape[0], width), WHITE, np.uint8)
    index[top:, : body.shape[1]] = body
    text = Image.new("L", (width, index.shape[0]), 255)  # antialiased text, mapped to greys
    draw = ImageDraw.Draw(text)
    for i, line in enumerate(title):
        draw.text((GAP + 2, GAP + i * step), line, fill=20, font=title_font)
    font = load_font(font_size)
    for i in range(k):
        r, col = divmod(i, cols)
        xy = (GAP + col * (cell_w + GAP), top + r * (label_h + ch + GAP))
        draw.text(xy, str(i), fill=60, font=font)
    ink = np.asarray(text)
    mask = ink < 255
    index[mask] = CMAP_LEVELS + (ink[mask].astype(np.uint16) + 8) // 17
    img = Image.fromarray(index, "P")
    img.putpalette(grid_palette(cmap))
    return img


def value_strip(
    values: np.ndarray,
    title: Sequence[str] = (),
    per_row: int = 16,
    cmap: str = "viridis",
    norm: str = "channel",
    stats: tuple[float, float] | None = None,
) -> Image.Image:
    """A vector -> coloured cells in rows, each numbered; values printed when there are few."""
    v = np.asarray(values, dtype=np.float32).ravel()[:MAX_VALUES]
    n = v.size
    scaled = normalize(v, "layer" if norm == "channel" else norm, stats)
    lut = colormap_lut(cmap)
    show_values = n <= 64
    font = load_font(11)
    cols = max(1, min(n, max(per_row, math.ceil(math.sqrt(n)))))
    rows = math.ceil(n / cols)
    cw = 56 if show_values else 16
    chh = 24 if show_values else 16
    label_h = 14 if show_values else 0
    margin = 0 if show_values else _text_width(font, str(n)) + 6
    width = margin + cols * (cw + GAP) + GAP
    height = rows * (label_h + chh + GAP) + GAP
    img = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(img)
    for i in range(n):
        r, col = divmod(i, cols)
        x = margin + GAP + col * (cw + GAP)
        y = GAP + r * (label_h + chh + GAP)
        color = tuple(int(c) for c in lut[int(scaled[i])])
        draw.rectangle([x, y + label_h, x + cw - 1, y + label_h + chh - 1], fill=color)
        if show_values:
            draw.text((x, y), str(i), fill=(60, 60, 60), font=font)
            text = f"{v[i]:.3g}"
            ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
            draw.text((x + 3, y + label_h + 5), text, fill=ink, font=font)
        elif col == 0:
            draw.text((2, y + 2), str(i), fill=(60, 60, 60), font=font)
    return _titled(np.asarray(img), title)
