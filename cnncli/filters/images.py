"""Filters and pooling on images: mode handling, output names, atomic PNG writes.

Each colour channel is filtered on its own; alpha is kept as it was; grayscale stays
grayscale and 16-bit stays 16-bit. Palette images become RGB (RGBA with transparency).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnncli.atomic import atomic_file
from cnncli.errors import ImageError, OutputExistsError, UsageError
from cnncli.filters.engine import correlate_image, pool
from cnncli.images import open_image

DEFAULT_COMPRESS = 1  # zlib level for PNG output: measured in bench_filters (see --help)


@dataclass
class FilterOptions:
    padding: str = "same"
    border: str = "reflect"
    stride: int = 1
    flip: bool = False
    absolute: bool = False
    offset: float = 0.0
    normalize: bool = False


@dataclass
class Written:
    source: Path
    output: Path
    mode: str
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def split_channels(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str, list[str]]:
    """(colour array HxW or HxWxC, alpha HxW or None, output mode, notes) for any Pillow mode."""
    notes: list[str] = []
    mode = img.mode
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        notes.append(f"palette image converted to {img.mode}")
    elif mode == "1":
        img = img.convert("L")
        notes.append("1-bit image converted to grayscale (L)")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
        notes.append(f"{mode} image converted to RGB")
    elif mode in ("La", "RGBa"):
        img = img.convert(mode.replace("a", "A"))
    elif mode.startswith("I;16") and mode != "I;16":
        img = img.convert("I;16")
    elif mode == "I":
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise UsageError(f"32-bit integer image with values {arr.min()}..{arr.max()}",
                             "only 8- and 16-bit images can be filtered")  # fmt: skip
        return arr.astype(np.uint16), None, "I;16", ["32-bit integer image written as 16-bit"]
    elif mode == "F":
        raise UsageError("floating-point (mode F) images are not supported",
                         "convert the image to 8 or 16 bits first")  # fmt: skip
    mode = img.mode
    arr = np.asarray(img)
    if mode in ("RGBA", "LA"):
        return (
            arr[..., :-1].squeeze(-1) if mode == "LA" else arr[..., :3],
            arr[..., -1],
            mode,
            notes,
        )
    if mode in ("L", "RGB", "I;16"):
        return arr, None, mode, notes
    raise UsageError(f"images of mode {mode} are not supported", "use grayscale, RGB or RGBA")


def merge_channels(colour: np.ndarray, alpha: np.ndarray | None, mode: str) -> Image.Image:
    if alpha is None:
        return Image.fromarray(colour, mode=None) if mode != "I;16" else _i16(colour)
    if colour.ndim == 2:
        colour = colour[..., None]
    return Image.fromarray(np.dstack([colour, alpha]), mode=None)


def _i16(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint16))


def filter_image(img: Image.Image, kernel: np.ndarray, options: FilterOptions | None = None,
                 threads: int | None = None) -> tuple[Image.Image, list[str]]:  # fmt: skip
    """Filter a Pillow image; returns the result (same mode, or RGB/RGBA for palettes) and notes."""
    o = options or FilterOptions()
    colour, alpha, mode, notes = split_channels(img)
    if o.normalize:
        raw = correlate_image(colour, kernel, o.padding, o.border, o.stride, o.flip,
                              absolute=o.absolute, raw=True, threads=threads)  # fmt: skip
        if o.absolute:
            raw = np.abs(raw)
        lo, hi = float(raw.min()), float(raw.max())
        top = np.iinfo(colour.dtype).max
        scaled = (raw - lo) * (top / (hi - lo)) if hi > lo else np.zeros_like(raw)
        out = np.clip(np.rint(scaled), 0, top).astype(colour.dtype)
        notes.append(f"normalized {lo:g}..{hi:g} to 0..{top}")
    else:
        out = correlate_image(colour, kernel, o.padding, o.border, o.stride, o.flip,
                              absolute=o.absolute, offset=o.offset, threads=threads)  # fmt: skip
    if alpha is not None and alpha.shape != out.shape[:2]:
        alpha = _resample_alpha(alpha, kernel.shape, o)
    return merge_channels(out, alpha, mode), notes


def _resample_alpha(alpha: np.ndarray, kshape, o: FilterOptions) -> np.ndarray:
    """Alpha at the output positions (valid padding / stride): the value under the anchor."""
    from cnncli.filters.engine import pad_amounts

    (kh, kw), s = kshape, o.stride
    pt, _, oh = pad_amounts(alpha.shape[0], kh, s, o.padding)
    pl, _, ow = pad_amounts(alpha.shape[1], kw, s, o.padding)
    rows = np.clip(np.arange(oh) * s - pt + (kh - 1) // 2, 0, alpha.shape[0] - 1)
    cols = np.clip(np.arange(ow) * s - pl + (kw - 1) // 2, 0, alpha.shape[1] - 1)
    return alpha[rows][:, cols]


def pool_image(img: Image.Image, op: str, size: int, stride: int | None, padding: str
               ) -> tuple[Image.Image, list[str]]:  # fmt: skip
    """Pool every channel (alpha too: the grid shrinks) and keep the mode."""
    colour, alpha, mode, notes = split_channels(img)
    arr = (
        colour
        if alpha is None
        else np.dstack([colour if colour.ndim == 3 else colour[..., None], alpha])
    )
    out = pool(arr, op, size, stride, padding)
    if op == "avg":
        out = np.clip(np.rint(out), 0, np.iinfo(arr.dtype).max)
    out = out.astype(arr.dtype)
    if alpha is not None:
        return merge_channels(out[..., :-1].squeeze(-1) if mode == "LA" else out[..., :-1],
                              out[..., -1], mode), notes  # fmt: skip
    return merge_channels(out, None, mode), notes


def output_path(
    source: Path, tag: str, out: Path | None = None, out_dir: Path | None = None
) -> Path:
    """Where a result goes: `out`, or `<out_dir or source's folder>/<stem>.<tag>.png`."""
    if out is not None:
        return out
    folder = out_dir if out_dir is not None else source.parent
    return folder / f"{source.stem}.{tag}.png"


def check_outputs(pairs: Sequence[tuple[Path, Path]], overwrite: bool) -> None:
    """Refuse writing over an input, twice to one file, or over an existing file."""
    seen: dict[Path, Path] = {}
    sources = {_real(s) for s, _ in pairs}
    for source, target in pairs:
        real = _real(target)
        if real in sources:
            raise UsageError(
                f"{target} is an input image", "refusing to write over an input; pass -o"
            )
        if real in seen:
            raise UsageError(f"{seen[real]} and {source} would both be written to {target}",
                             "use --out-dir, or one image per -o")  # fmt: skip
        seen[real] = source
        if target.exists() and not overwrite:
            raise OutputExistsError(target)


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def save_image(
    img: Image.Image, path: Path, compress: int = DEFAULT_COMPRESS, overwrite=True
) -> None:
    """Write atomically; PNG with zlib level `compress` (0 fastest and largest, 9 smallest)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the image format of {path}", "name the output .png")
    kwargs = {"compress_level": compress} if fmt == "PNG" else {}
    if fmt == "JPEG" and img.mode not in ("L", "RGB", "CMYK"):
        raise UsageError(f"JPEG cannot hold a {img.mode} image ({path})", "name the output .png")
    with atomic_file(path, overwrite=overwrite) as tmp:
        img.save(tmp, format=fmt, **kwargs)


def open_input(path: Path) -> Image.Image:
    """open_image, with an unusable file reported as a usage error (exit 2): the user named it."""
    try:
        return open_image(path)
    except ImageError as e:
        raise UsageError(
            e.message, e.hint or "give an image file (PNG, JPEG, BMP, GIF, TIFF, WebP)"
        ) from None


def process_files(
    sources: Sequence[Path],
    targets: Sequence[Path],
    apply: Callable[[Image.Image], tuple[Image.Image, list[str]]],
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Written]:
    """Open each source, apply, write its target; returns what was written."""
    check_outputs(list(zip(sources, targets, strict=False)), overwrite)
    written = []
    for source, target in zip(sources, targets, strict=False):
        img = open_input(source)
        result, notes = apply(img)
        save_image(result, target, compress, overwrite=overwrite)
        written.append(Written(source, target, result.mode, result.size, notes))
        if progress:
            progress(1)
    return written
