"""EXIF orientation: read from a file's header exactly as the decode will apply it, so the
header check measures the image the model will see (a photo shot sideways is as tall as it
stands, not as it was stored), and applied in the decode with what was done said.

The decode applies it as Pillow's `ImageOps.exif_transpose` does: the orientation of the
EXIF block, else XMP's tiff:Orientation, after the whole file was read. For a PNG that is the
one case where the header is not enough: an eXIf or text chunk may come after the pixel data,
where Pillow finds it only when it decodes. The header check walks the chunk list (seeks over
the pixel data, no decoding) and decodes only a PNG that has such chunks after its pixels.
NumPy-free and Pillow-only (the dataset build's worker processes use it).
"""

from __future__ import annotations

import os
import struct

from PIL import Image, ImageFile, ImageOps

ORIENTATION_TAG = 0x0112
TURNED = (5, 6, 7, 8)  # orientations that swap width and height
APPLIED = "cnncli_orientation"  # img.info key: the orientation apply_orientation applied
_PNG_LATE = {b"eXIf", b"tEXt", b"zTXt", b"iTXt"}  # chunks that can bring an orientation
_PNG_WALK_LIMIT = 100_000  # chunks walked before decoding is the cheaper way to know


def header_orientation(img: Image.Image) -> int | None:
    """The EXIF orientation (1-8) the decode of a lazily opened `img` will apply, or None;
    read from the header without decoding (see the module's note on PNG). A broken EXIF
    block reads as None, as the decode then applies nothing either."""
    try:
        if img.format == "PNG" and not _png_has_late_metadata(img):
            # everything an orientation can come from is in the header's chunks: Pillow's
            # own reading of them, without PngImageFile.getexif's decode of the pixels
            return _valid(Image.Image.getexif(img).get(ORIENTATION_TAG))
        return _valid(img.getexif().get(ORIENTATION_TAG))  # a late PNG chunk: decodes (rare)
    except Exception:  # a broken EXIF block or chunk list: the decode says if the file is bad
        return None


def apply_orientation(img: Image.Image) -> int | None:
    """Turn a decoded image upright in place as its EXIF orientation says (exif_transpose)
    and note the orientation applied in `img.info[APPLIED]`; -> that orientation or None.
    A broken EXIF block leaves the picture as it is stored."""
    try:
        orientation = _valid(img.getexif().get(ORIENTATION_TAG))
        # in place: without it Pillow returns a full copy even when there is nothing to turn
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:
        return None
    if orientation is None or orientation == 1:
        return None
    img.info[APPLIED] = orientation
    return orientation


def _valid(value) -> int | None:
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _png_has_late_metadata(img: Image.Image) -> bool:
    """Whether a PNG has an eXIf or text chunk after its first pixel-data chunk: walks the
    chunk headers from there (reads 8 bytes per chunk and seeks over its data)."""
    if not isinstance(img, ImageFile.ImageFile):
        return False
    fp = img.fp
    if fp is None or not img.tile:
        return False
    animated = getattr(img, "is_animated", False)
    read = _reader(fp)
    at = img.tile[0].offset - 8  # the first IDAT chunk's header
    for _ in range(_PNG_WALK_LIMIT):
        head = read(at)
        if len(head) < 8:
            return False
        length, cid = struct.unpack(">I4s", head)
        if cid == b"IEND" or (cid == b"fcTL" and animated):  # where the decode stops too
            return False
        if cid in _PNG_LATE:
            return True
        at += 12 + length  # the header, the data and its CRC
    return True  # too many chunks to walk: let the decode tell


def _reader(fp):
    """at -> the 8 bytes at offset `at` of `fp`: os.pread on a real file (a buffered read
    after a seek would fill its 8 KB buffer for each chunk), else seek and read."""
    try:
        fd = fp.fileno()
        return lambda at: os.pread(fd, 8, at)
    except (AttributeError, OSError, ValueError):  # BytesIO and other file-likes

        def seek_read(at: int) -> bytes:
            fp.seek(at)
            return fp.read(8)

        return seek_read
