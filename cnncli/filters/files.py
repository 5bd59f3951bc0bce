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
from cnncli.filters.engine import correlate_image, pad_amounts, pool
from cnncli.filters.png import PngWriter, write_png
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
    arr = to_array(img)
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


def to_array(img: Image.Image, rows: int = 256) -> np.ndarray:
    """The pixels as a NumPy array, copied in bands of rows.

    np.asarray(img) goes through img.tobytes(), which joins a list of chunks: three copies of
    the image at once. Copying bands keeps the peak at the image plus the array (measured in
    bench_filters: 147 MB -> 123 MB RSS for a 12 MP RGB photo)."""
    w, h = img.size
    first = np.asarray(img.crop((0, 0, w, 1)))
    arr = np.empty((h,) + first.shape[1:], dtype=first.dtype)
    for r0 in range(0, h, rows):
        arr[r0 : r0 + rows] = np.asarray(img.crop((0, r0, w, min(r0 + rows, h))))
    return arr


def merge_channels(colour: np.ndarray, alpha: np.ndarray | None, mode: str) -> Image.Image:
    if alpha is None:
        return Image.fromarray(colour, mode=None) if mode != "I;16" else _i16(colour)
    if colour.ndim == 2:
        colour = colour[..., None]
    return Image.fromarray(np.dstack([colour, alpha]), mode=None)


def _i16(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint16))


def filter_arrays(colour: np.ndarray, alpha: np.ndarray | None, kernel: np.ndarray,
                  options: FilterOptions | None = None, threads: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, list[str]]:  # fmt: skip
    """Filter the colour channels (as split_channels gives them); alpha follows the grid."""
    o = options or FilterOptions()
    notes: list[str] = []
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
    return out, alpha, notes


def filter_image(img: Image.Image, kernel: np.ndarray, options: FilterOptions | None = None,
                 threads: int | None = None) -> tuple[Image.Image, list[str]]:  # fmt: skip
    """Filter a Pillow image; returns the result (same mode, or RGB/RGBA for palettes) and notes."""
    colour, alpha, mode, notes = split_channels(img)
    out, alpha, more = filter_arrays(colour, alpha, kernel, options, threads)
    return merge_channels(out, alpha, mode), notes + more


def _resample_alpha(alpha: np.ndarray, kshape, o: FilterOptions) -> np.ndarray:
    """Alpha at the output positions (valid padding / stride): the value under the anchor."""
    from cnncli.filters.engine import pad_amounts

    (kh, kw), s = kshape, o.stride
    pt, _, oh = pad_amounts(alpha.shape[0], kh, s, o.padding)
    pl, _, ow = pad_amounts(alpha.shape[1], kw, s, o.padding)
    rows = np.clip(np.arange(oh) * s - pt + (kh - 1) // 2, 0, alpha.shape[0] - 1)
    cols = np.clip(np.arange(ow) * s - pl + (kw - 1) // 2, 0, alpha.shape[1] - 1)
    return alpha[rows][:, cols]


def pool_arrays(
    colour: np.ndarray,
    alpha: np.ndarray | None,
    op: str,
    size: int,
    stride: int | None,
    padding: str,
) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Pool every channel, alpha too (the grid shrinks); same dtype (avg rounded)."""
    two_d = colour.ndim == 2
    arr = colour if alpha is None else np.dstack([colour[..., None] if two_d else colour, alpha])
    out = pool(arr, op, size, stride, padding)
    if op == "avg":
        out = np.clip(np.rint(out), 0, np.iinfo(arr.dtype).max)
    out = out.astype(arr.dtype)
    if alpha is None:
        return out, None, []
    return (out[..., 0] if two_d else out[..., :-1]), out[..., -1], []


def pool_image(img: Image.Image, op: str, size: int, stride: int | None, padding: str
               ) -> tuple[Image.Image, list[str]]:  # fmt: skip
    """Pool a Pillow image per channel and keep its mode."""
    colour, alpha, mode, notes = split_channels(img)
    out, alpha, _ = pool_arrays(colour, alpha, op, size, stride, padding)
    return merge_channels(out, alpha, mode), notes


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
    """Write a Pillow image atomically (PNG at zlib level `compress`)."""
    fmt = _format(path, img.mode)
    kwargs = {"compress_level": compress} if fmt == "PNG" else {}
    with atomic_file(path, overwrite=overwrite) as tmp:
        img.save(tmp, format=fmt, **kwargs)


def save_arrays(colour: np.ndarray, alpha: np.ndarray | None, mode: str, path: Path,
                compress: int = DEFAULT_COMPRESS, overwrite=True) -> None:  # fmt: skip
    """Write channels atomically: PNG through the streaming writer, other formats via Pillow."""
    fmt = _format(path, mode)
    if fmt != "PNG":
        return save_image(merge_channels(colour, alpha, mode), path, compress, overwrite)
    arr = colour
    if alpha is not None:
        arr = np.dstack([colour[..., None] if colour.ndim == 2 else colour, alpha])
    with atomic_file(path, overwrite=overwrite) as tmp:
        write_png(tmp, arr, mode, compress)


def _format(path: Path, mode: str) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the image format of {path}", "name the output .png")
    if fmt == "JPEG" and mode not in ("L", "RGB", "CMYK"):
        raise UsageError(f"JPEG cannot hold a {mode} image ({path})", "name the output .png")
    return fmt


def open_input(path: Path) -> Image.Image:
    """open_image, with an unusable file reported as a usage error (exit 2): the user named it."""
    try:
        return open_image(path)
    except ImageError as e:
        hint = e.hint or "give an image file (PNG, JPEG, BMP, GIF, TIFF, WebP)"
        raise UsageError(e.message, hint) from None


class PilRows:
    """A row source over a Pillow image for correlate_image: bands are copied on demand."""

    def __init__(self, img: Image.Image):
        self.img = img
        w, h = img.size
        first = np.asarray(img.crop((0, 0, w, 1)))
        self.dtype = first.dtype
        self.shape = (h, w) + first.shape[2:]
        self.ndim = len(self.shape)

    def rows(self, a: int, b: int) -> np.ndarray:
        band = np.asarray(self.img.crop((0, a, self.shape[1], b)))
        return band.reshape(b - a, -1)


STREAM_MODES = ("L", "RGB", "I;16")


def stream_filter(img: Image.Image, kernel: np.ndarray, options: FilterOptions, path: Path,
                  compress: int = DEFAULT_COMPRESS, overwrite: bool = True) -> bool:  # fmt: skip
    """Filter straight from the decoded image into a PNG, block by block, when the mode and
    options allow (no alpha, no --normalize, PNG output); returns False otherwise.

    Peak memory is then the decoded image plus a few row blocks (measured in bench_filters)."""
    o = options
    if img.mode not in STREAM_MODES or o.normalize or path.suffix.lower() != ".png":
        return False
    source = PilRows(img)
    h, w = source.shape[:2]
    k = np.asarray(kernel)
    oh = pad_amounts(h, k.shape[0], o.stride, o.padding)[2]
    ow = pad_amounts(w, k.shape[1], o.stride, o.padding)[2]
    with atomic_file(path, overwrite=overwrite) as tmp:
        writer = PngWriter(tmp, ow, oh, img.mode, source.dtype, compress)
        try:
            correlate_image(source, kernel, o.padding, o.border, o.stride, o.flip,
                            absolute=o.absolute, offset=o.offset, emit=writer.write)  # fmt: skip
        finally:
            writer.close()
    return True


def process_files(
    sources: Sequence[Path],
    targets: Sequence[Path],
    apply: Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None, list]],
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    stream: Callable[[Image.Image, Path], bool] | None = None,
) -> list[Written]:
    """Open each source, apply(colour, alpha) -> (colour, alpha, notes), write its target.

    The decoded Pillow image is dropped once its pixels are in NumPy, so peak memory is
    about the input and the output arrays."""
    check_outputs(list(zip(sources, targets, strict=True)), overwrite)
    written = []
    for source, target in zip(sources, targets, strict=True):
        img = open_input(source)
        if stream is not None and stream(img, target):
            written.append(Written(source, target, img.mode, _size_of(target), []))
            img.close()
            if progress:
                progress(1)
            continue
        colour, alpha, mode, notes = split_channels(img)
        img.close()
        del img
        colour, alpha, more = apply(colour, alpha)
        save_arrays(colour, alpha, mode, target, compress, overwrite=overwrite)
        size = (colour.shape[1], colour.shape[0])
        written.append(Written(source, target, mode, size, notes + more))
        del colour, alpha
        if progress:
            progress(1)
    return written


def _size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size
