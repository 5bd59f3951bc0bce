"""The one image conversion path: open, orient, pick a frame, convert the mode, resize, to array.

`dataset build` converts every image with `load_image`, and `predict`, `evaluate` and
`activations` call the same function with the `ImageSpec` stored with the model, so the
same pixels reach the model at training and at use. What a conversion changed (a mode, the
alpha channel, the size or aspect ratio) is counted in a `Conversions` tally
(cnncli.images.conversions) and said once per run. NumPy and Pillow only.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnncli.errors import ImageError, InputError, UsageError
from cnncli.images.conversions import Conversions, color_kind, orientation_kind, resize_kind
from cnncli.images.decoder_warnings import image_warnings, is_tiff, refuse_bombs
from cnncli.images.orientation import APPLIED, TURNED, apply_orientation, header_orientation
from cnncli.images.spec import COLORS, FITS, ImageSpec, parse_size  # noqa: F401 (re-exported)
from cnncli.notices import say

PIL_MODE = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
PIL_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "DIB", "GIF", "TIFF", "WEBP")
RESAMPLE = Image.Resampling.BILINEAR  # Keras' default interpolation for image loading


def is_image_file(path: str | os.PathLike) -> bool:
    """An image by its extension, and not hidden (`.DS_Store`, `._x.png` of macOS)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def natural_key(text: str) -> list[tuple]:
    """Sort key that puts 'img2' before 'img10' (digits as numbers, letters case-folded)."""
    return [
        (0, int(t), "") if t.isdigit() else (1, 0, t.casefold()) for t in re.split(r"(\d+)", text)
    ]


def path_key(rel: str | os.PathLike) -> list[list[tuple]]:
    """Natural order of relative paths, folder by folder."""
    return [natural_key(part) for part in Path(rel).parts]


def find_images(folder: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """THE folder walker: the image files in `folder` and its subfolders, in natural order
    of their relative paths (img2 before img10), hidden files and folders left out
    (`.ipynb_checkpoints`, `.DS_Store`, `._x.png`), and `exclude` (an output folder that
    sits inside the input) skipped. Every command that takes a folder lists it with this."""
    folder = Path(folder)
    skip = os.path.realpath(exclude) if exclude is not None else None
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and (skip is None or os.path.realpath(os.path.join(root, d)) != skip)
        ]
        found += [Path(root) / f for f in files if is_image_file(f)]
    return sorted(found, key=lambda f: path_key(f.relative_to(folder)))


def collect_images(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files as given (a missing or broken one is reported when it is read) and the
    images of each folder (`find_images`), in the order given."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise UsageError("no images given", "give image files or a folder of images")
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = find_images(p)
            if not found:
                raise InputError(
                    f"folder {p} holds no image files", "give image files or another folder"
                )
            files.extend(found)
        else:
            files.append(p)
    return files


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode one image: first frame, EXIF orientation applied.

    Refuses (ImageError naming the file and the reason) empty files, files that are not
    images, truncated or corrupt data, and images over Pillow's decompression-bomb limit,
    which are refused before any pixel is decoded.
    """
    path = Path(path)
    _check_not_empty(path)
    with _reading(path):
        img = Image.open(path, formats=_open_formats())
        try:
            _check_bomb(path, img)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # GIF / multi-page TIFF: the first frame
            img.load()
        except BaseException:
            img.close()  # a damaged file is refused, and not left open
            raise
    apply_orientation(img)  # noted in img.info: convert_image says it in the run's notes
    return img


def probe_image(path: str | os.PathLike) -> tuple[int, int, str]:
    """(height, width, natural colour) read from the header only, orientation applied.

    Refuses what a header shows (empty files, non-images, decompression bombs) with the
    same ImageError as `open_image`; truncated pixel data is found by the full decode."""
    path = Path(path)
    _check_not_empty(path)
    with _reading(path), Image.open(path, formats=_open_formats()) as img:
        _check_bomb(path, img)
        height, width = img.height, img.width
        if header_orientation(img) in TURNED:  # as the decode will turn it
            height, width = width, height
        return height, width, natural_color(img)


def _check_not_empty(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except OSError as e:
        raise ImageError(path, unreadable_reason(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, "is a folder, not an image")
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")


# The system's errors (Pillow's own OSErrors carry no errno) that say a file cannot be read,
# as opposed to one whose data is damaged.
_UNREADABLE = (errno.EACCES, errno.EPERM, errno.EISDIR, errno.EIO, errno.ENAMETOOLONG)


def unreadable_reason(e: OSError) -> str:
    """Why a file cannot be read, in words: 'cannot read (permission denied)'."""
    if e.errno == errno.EISDIR:
        return "is a folder, not an image"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "cannot read (permission denied)"
    return f"cannot read ({(e.strerror or str(e)).lower()})"


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Pillow's failures while opening `path` -> ImageError with the reason in words."""
    refuse_bombs()
    try:
        yield
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(path, f"refused as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image, or a format cnncli cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, OSError) and e.errno in _UNREADABLE:
            raise ImageError(path, unreadable_reason(e)) from None
        raise ImageError(path, f"truncated or corrupt image data ({e})") from None
    except Exception as e:  # Pillow's parsers on damaged data: IndexError (a GIF frame),
        # TypeError "Missing dimensions" (TIFF), struct.error, KeyError, ZeroDivisionError
        what = f"{type(e).__name__}: {e}"
        raise ImageError(path, f"truncated or corrupt image data ({what})") from None


def _open_formats() -> tuple[str, ...]:
    """PIL_FORMATS that this Pillow registers (Pillow 13 has no separate MPO opener, and
    Image.open raises KeyError for a format it does not know)."""
    global _OPEN_FORMATS
    if _OPEN_FORMATS is None:
        Image.init()
        _OPEN_FORMATS = tuple(f for f in PIL_FORMATS if f in Image.OPEN)
    return _OPEN_FORMATS


_OPEN_FORMATS: tuple[str, ...] | None = None


def _check_bomb(path, img: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        raise ImageError(
            path,
            f"{img.width}x{img.height} = {img.width * img.height:,} pixels is over the "
            f"decompression-bomb limit of {limit:,}; refused without decoding",
        )


def natural_color(img: Image.Image) -> str:
    """The colour mode that keeps what the image holds: rgba when it has transparency."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return "rgba"
    if mode in ("1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return "grayscale"
    return "rgb"


def _to_8bit(img: Image.Image) -> Image.Image:
    """Deep grayscale (I;16, I, F) to 8-bit L by scaling the full range, not clipping."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16)
        return Image.fromarray(((arr.astype(np.uint32) + 128) // 257).astype(np.uint8), "L")
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / hi)), 0, 255)
        return Image.fromarray(arr.astype(np.uint8), "L")
    return img


def to_color(img: Image.Image, color: str, kinds: list | None = None) -> Image.Image:
    """Convert to 'rgba', 'rgb' or 'grayscale' (as Keras' load_img does for the modes: alpha
    is dropped, never composited, and added opaque). `kinds` collects what was changed."""
    deep = img.mode
    img = _to_8bit(img)
    if kinds is not None and img.mode != deep:
        kinds.append((f"{'32' if deep in ('I', 'F') else '16'}-bit grayscale -> 8-bit", None))
    if img.mode == "P":  # palette: keep its transparency as alpha
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "CMYK":
        img = img.convert("RGB")
        if kinds is not None:
            kinds.append(("CMYK -> RGB", None))
    target = PIL_MODE[color]
    if img.mode == target:
        return img
    if kinds is not None and (kind := color_kind(img, color)):
        kinds.append((kind, None))
    return img.convert(target)


def resize(
    img: Image.Image, height: int, width: int, fit: str = "stretch", kinds: list | None = None
) -> Image.Image:
    """Resize to height x width; `fit` says what happens to a different aspect ratio.
    `kinds` collects what was changed: (kind, the source's aspect ratio or None)."""
    if img.size == (width, height):
        return img
    if fit not in FITS:
        raise UsageError(f"unknown fit {fit!r}", f"use one of {', '.join(FITS)}")
    if kinds is not None:
        kinds.append(resize_kind(img.width, img.height, height, width, fit))
    if fit == "stretch":
        return img.resize((width, height), RESAMPLE)
    if fit == "crop":
        return ImageOps.fit(img, (width, height), RESAMPLE, centering=(0.5, 0.5))
    fill = (0,) * len(img.getbands())
    return ImageOps.pad(img, (width, height), RESAMPLE, color=fill, centering=(0.5, 0.5))


def convert_image(
    img: Image.Image, spec: ImageSpec, conversions: Conversions | None = None
) -> np.ndarray:
    """An opened image -> uint8 array of shape (spec.height, spec.width, spec.channels);
    what was changed is counted in `conversions` when given."""
    kinds: list[tuple[str, str | None]] | None = [] if conversions is not None else None
    if kinds is not None and (turned := orientation_kind(img.info.get(APPLIED))):
        kinds.append((turned, None))
    img = to_color(img, spec.color, kinds)
    img = resize(img, spec.height, spec.width, spec.fit, kinds)
    if conversions is not None and kinds is not None:
        conversions.add(kinds)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def load_image(
    path: str | os.PathLike, spec: ImageSpec, conversions: Conversions | None = None
) -> np.ndarray:
    """Open, orient, convert and resize one image file: the array a model is given; what
    was changed is counted in `conversions` (a run's tally) when given. What the decoders
    say about the file (Pillow's warnings, libtiff's lines) is told with its name."""
    with image_warnings(capture_stderr=_starts_as_tiff(path)) as said:
        img = open_image(path)
        try:
            arr = convert_image(img, spec, conversions)
        finally:
            img.close()  # a GIF or TIFF keeps its file open after load()
    for line in said:
        say(f"{path}: {line}")
    return arr


def _starts_as_tiff(path) -> bool:
    try:
        with open(path, "rb") as f:
            return is_tiff(f.read(4))
    except OSError:  # open_image names what is wrong
        return False
