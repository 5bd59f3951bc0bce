"""A streaming PNG writer for filter outputs: NumPy 'Sub' row filter + zlib, row block by block.

Why not Pillow's encoder: measured in bench_filters on a 12 MP photo, Pillow spends most of
its time choosing a filter per row (adaptive filtering): about 3 s at compress_level 1,
against about 1 s here for a file within 1-2% of the size (zlib with the run-length strategy
on Sub-filtered rows). It also writes from the array block by block, so no second copy of the
image is made. The output is a standard PNG (any reader opens it); tests read it back with
Pillow and compare every pixel.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

# (PNG colour type, channels) per Pillow mode we write
COLOUR_TYPE = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4), "I;16": (0, 1)}
ROWS_PER_BLOCK = 64


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: str | os.PathLike, array: np.ndarray, mode: str, level: int = 1) -> None:
    """Write an (H, W) or (H, W, C) uint8/uint16 array as PNG. `level` 0 stores, 1-3 use
    zlib's run-length strategy (fast), 4-9 its default strategy (slower, smaller on flat
    synthetic images)."""
    colour_type, channels = COLOUR_TYPE[mode]
    a = np.asarray(array)
    h, w = a.shape[:2]
    depth = 16 if a.dtype == np.uint16 else 8
    if depth == 16:
        a = a.astype(">u2", copy=False)
    row_bytes = w * channels * (depth // 8)
    bpp = channels * (depth // 8)
    data = a.reshape(h, -1).view(np.uint8) if a.dtype.itemsize == 1 else None
    strategy = zlib.Z_RLE if level <= 3 else zlib.Z_DEFAULT_STRATEGY
    comp = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    block = np.empty((min(ROWS_PER_BLOCK, h), row_bytes + 1), dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)))
        for r0 in range(0, h, ROWS_PER_BLOCK):
            rows = data[r0 : r0 + ROWS_PER_BLOCK] if data is not None else _bytes(a, r0, h)
            n = rows.shape[0]
            out = block[:n]
            out[:, 0] = 1  # filter type Sub: each byte minus the byte one pixel to the left
            out[:, 1 : 1 + bpp] = rows[:, :bpp]
            np.subtract(rows[:, bpp:], rows[:, :-bpp], out=out[:, 1 + bpp :])
            piece = comp.compress(out)
            if piece:
                f.write(_chunk(b"IDAT", piece))
        f.write(_chunk(b"IDAT", comp.flush()))
        f.write(_chunk(b"IEND", b""))


def _bytes(a: np.ndarray, r0: int, h: int) -> np.ndarray:
    part = np.ascontiguousarray(a[r0 : min(r0 + ROWS_PER_BLOCK, h)])
    return part.reshape(part.shape[0], -1).view(np.uint8)
