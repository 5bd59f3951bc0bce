"""Filters and pooling on image files: inputs checked, output names, atomic writes, and the
`filter`/`pool` commands' work (`filter_files`, `pool_files`). PNG outputs go through the
streaming encoder of cnncli.filters.png; the pixels are handled by cnncli.filters.channels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnncli.atomic import atomic_file
from cnncli.drawing.save import save_png
from cnncli.errors import ImageError, OutputExistsError, UsageError
from cnncli.filters.channels import (
    FilterOptions,
    filter_arrays,
    merge_channels,
    pool_arrays,
    split_channels,
)
from cnncli.filters.engine import correlate_image
from cnncli.filters.kernels import kernel_tag, parse_kernel
from cnncli.filters.padding import pad_amounts
from cnncli.filters.png import PngWriter, write_png
from cnncli.filters.pooling import check_pool_options
from cnncli.images import open_image
from cnncli.progress import Counter, Progress

DEFAULT_COMPRESS = 1  # zlib level for PNG output: measured in bench_filters (see --help)


@dataclass
class Written:
    source: Path
    output: Path
    mode: str
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "input": str(self.source),
            "output": str(self.output),
            "mode": self.mode,
            "width": self.size[0],
            "height": self.size[1],
            "notes": self.notes,
        }


def filter_files(
    images: Sequence[Path],
    kernel: str | None,
    options: FilterOptions | None = None,
    *,
    scale: float | None = None,
    out: Path | None = None,
    out_dir: Path | None = None,
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> list[Written]:
    """`cnncli filter` on image files: the kernel (a name, rows or a file, times `scale`)
    applied to each image, written to `out` (one image) or to
    `<out_dir or the current folder>/<stem>.<kernel name or "filtered">.png`. PNGs without
    alpha stream from the decoded image to the file (see stream_filter)."""
    require_images(images, "name image files, or use --matrix or --list")
    o = options or FilterOptions()
    o.check()
    k = parse_kernel(kernel, scale)
    targets = output_targets(images, kernel_tag(kernel), out, out_dir)

    def stream(img: Image.Image, target: Path) -> bool:
        return stream_filter(img, k, o, target, compress, overwrite)

    def apply(colour, alpha):
        return filter_arrays(colour, alpha, k, o)

    return process_files(images, targets, apply, compress, overwrite, progress, stream)


def pool_files(
    images: Sequence[Path],
    op: str = "max",
    size: int = 2,
    stride: int | None = None,
    padding: str = "valid",
    *,
    out: Path | None = None,
    out_dir: Path | None = None,
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> list[Written]:
    """`cnncli pool` on image files: every channel (alpha too) pooled, written to `out` or
    `<out_dir or the current folder>/<stem>.<op>pool<size>.png`."""
    require_images(images, "name image files, or use --matrix")
    check_pool_options(op, size, stride, padding)
    targets = output_targets(images, f"{op}pool{size}", out, out_dir)

    def apply(colour, alpha):
        return pool_arrays(colour, alpha, op, size, stride, padding)

    return process_files(images, targets, apply, compress, overwrite, progress)


def require_images(images: Sequence[Path], hint: str) -> None:
    if not images:
        raise UsageError("no images given", hint)


def output_targets(
    images: Sequence[Path], tag: str, out: Path | None = None, out_dir: Path | None = None
) -> list[Path]:
    """Each image's output path (output_path); -o names one output, and not with --out-dir."""
    if out is not None and len(images) > 1:
        raise UsageError("-o names one output but several images were given", "use --out-dir")
    if out is not None and out_dir is not None:
        raise UsageError("give -o or --out-dir, not both")
    return [output_path(Path(p), tag, out, out_dir) for p in images]


def output_path(
    source: Path, tag: str, out: Path | None = None, out_dir: Path | None = None
) -> Path:
    """Where a result goes: `out`, or `<out_dir or the current folder>/<stem>.<tag>.png`:
    never beside an input the user only meant to read (a photo library, a mounted drive)."""
    if out is not None:
        return out
    folder = out_dir if out_dir is not None else Path()
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
            raise UsageError(
                f"{seen[real]} and {source} would both be written to {target}",
                "use --out-dir, or one image per -o",
            )
        seen[real] = source
        if target.exists() and not overwrite:
            raise OutputExistsError(target)


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def save_image(
    img: Image.Image, path: Path, compress: int = DEFAULT_COMPRESS, overwrite: bool = True
) -> None:
    """Write a Pillow image atomically: PNG (zlib level `compress`) through
    drawing.save.save_png, other formats (named by the suffix) through Pillow."""
    fmt = _format(path, img.mode)
    if fmt == "PNG":
        save_png(img, path, overwrite=overwrite, compress_level=compress)
        return
    with atomic_file(path, overwrite=overwrite) as tmp:
        img.save(tmp, format=fmt)


def save_arrays(
    colour: np.ndarray,
    alpha: np.ndarray | None,
    mode: str,
    path: Path,
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = True,
) -> None:
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


def stream_filter(
    img: Image.Image,
    kernel: np.ndarray,
    options: FilterOptions,
    path: Path,
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = True,
) -> bool:
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
            correlate_image(
                source,
                kernel,
                o.padding,
                o.border,
                o.stride,
                o.flip,
                absolute=o.absolute,
                offset=o.offset,
                emit=writer.write,
            )
        except BaseException:
            writer.discard()  # the error that stopped it is the one to report
            raise
        writer.close()
    return True


def process_files(
    sources: Sequence[Path],
    targets: Sequence[Path],
    apply: Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None, list]],
    compress: int = DEFAULT_COMPRESS,
    overwrite: bool = False,
    progress: Progress | None = None,
    stream: Callable[[Image.Image, Path], bool] | None = None,
) -> list[Written]:
    """Open each source, apply(colour, alpha) -> (colour, alpha, notes), write its target;
    `stream(img, target)` may write it instead (returns True when it did). Calls
    `progress(done, total)` after each file.

    The decoded Pillow image is dropped once its pixels are in NumPy, so peak memory is
    about the input and the output arrays."""
    check_outputs(list(zip(sources, targets, strict=True)), overwrite)
    counter = Counter(progress, len(sources))
    written = []
    for source, target in zip(sources, targets, strict=True):
        img = open_input(source)
        if stream is not None and stream(img, target):
            written.append(Written(source, target, img.mode, _size_of(target), []))
            img.close()
            counter.add()
            continue
        colour, alpha, mode, notes = split_channels(img)
        img.close()
        del img
        colour, alpha, more = apply(colour, alpha)
        save_arrays(colour, alpha, mode, target, compress, overwrite=overwrite)
        size = (colour.shape[1], colour.shape[0])
        written.append(Written(source, target, mode, size, notes + more))
        del colour, alpha
        counter.add()
    return written


def _size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size
