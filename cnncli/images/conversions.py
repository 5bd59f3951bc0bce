"""What the image conversion (cnncli.images.convert_image) changed, worded for the user and
tallied once per run: "12 of 40 images: RGBA -> grayscale, alpha dropped (...)", "3 of 40
images: turned upright by EXIF orientation 6 (rotated 90° clockwise)".

The conversion itself is Keras' load_img's: a mode change is Pillow's `convert` (alpha is
dropped, never composited over a background; alpha added is opaque; grayscale is
L = 0.299 R + 0.587 G + 0.114 B), and `fit` decides what happens to the aspect ratio.
NumPy-free and Pillow-only, so it runs in the dataset build's worker processes too.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import cast

from PIL import Image

SOURCE_NAMES = {
    "1": "grayscale",
    "L": "grayscale",
    "LA": "grayscale+alpha",
    "La": "grayscale+alpha",
    "RGBa": "RGBA",
    "PA": "palette+alpha",
}


def color_kind(img: Image.Image, color: str) -> str | None:
    """How a mode change reads in a run's notes; None when no value changes (1-bit -> L)."""
    src = SOURCE_NAMES.get(img.mode, img.mode)
    dst = "grayscale" if color == "grayscale" else color.upper()
    if src == dst:
        return None
    text = f"{src} -> {dst}"
    if img.mode in ("RGBA", "RGBa", "LA", "La", "PA") and color != "rgba":
        lowest = cast(float, img.getchannel(len(img.getbands()) - 1).getextrema()[0])  # one band
        return text + (
            ", alpha dropped (transparent pixels show the colour stored under them)"
            if lowest < 255
            else ", alpha dropped (every pixel was opaque: nothing lost)"
        )
    if color == "rgba":
        added = "from its transparent colour" if "transparency" in img.info else "(opaque)"
        return f"{text}, alpha added {added}"
    return text


# What each EXIF orientation does to stand a picture upright (Pillow's exif_transpose)
TURNS = {
    2: "mirrored left to right",
    3: "rotated 180°",
    4: "flipped top to bottom",
    5: "mirrored and rotated 90° counter-clockwise",
    6: "rotated 90° clockwise",
    7: "mirrored and rotated 90° clockwise",
    8: "rotated 90° counter-clockwise",
}


def orientation_kind(orientation: int | None) -> str | None:
    """How turning an image upright by its EXIF orientation (2-8) reads in a run's notes."""
    if orientation not in TURNS:
        return None
    return f"turned upright by EXIF orientation {orientation} ({TURNS[orientation]})"


def aspect_text(width: int, height: int) -> str:
    """Width:height in small numbers (4:3, 16:9), else as a decimal (1.25:1)."""
    g = math.gcd(width, height)
    w, h = width // g, height // g
    return f"{w}:{h}" if max(w, h) <= 21 else f"{width / height:.2f}:1"


def resize_kind(w0: int, h0: int, height: int, width: int, fit: str) -> tuple[str, str | None]:
    """(how a resize from w0 x h0 reads, the source's aspect ratio when `fit` changed it)."""
    size = f"{height}x{width}"
    if abs(w0 * height - h0 * width) <= 0.01 * h0 * width:  # the same aspect, give or take 1%
        return (f"{'enlarged' if w0 * h0 < width * height else 'reduced'} to {size}", None)
    ratio = aspect_text(width, height)
    how = {
        "stretch": f"stretched to {size}, aspect ratio {ratio}",
        "crop": f"resized to {size}, centre-cropped to aspect ratio {ratio}",
        "pad": f"resized to {size}, padded (black or transparent) to aspect ratio {ratio}",
    }[fit]
    return (how, aspect_text(w0, h0))


class Conversions:
    """What `convert_image` changed in the images of one run, so that it is said once per
    run: "12 of 40 images: RGBA -> grayscale, alpha dropped (...)". Give one tally to
    every load_image/convert_image call of the run, then read `notes()`."""

    def __init__(self) -> None:
        self.images = 0
        self.kinds: dict[str, Counter] = {}  # kind -> {source aspect ratio or None: images}

    def add(self, kinds: list[tuple[str, str | None]]) -> None:
        """Count one image and what was done to it."""
        self.images += 1
        for kind, detail in kinds:
            self.kinds.setdefault(kind, Counter())[detail] += 1

    def merge(self, other: Conversions) -> None:
        """Add another tally (a worker process's) to this one."""
        self.images += other.images
        for kind, details in other.kinds.items():
            self.kinds.setdefault(kind, Counter()).update(details)

    def notes(self) -> list[str]:
        """One line per kind of conversion, the most frequent first; none when nothing changed."""
        total = {k: sum(c.values()) for k, c in self.kinds.items()}
        lines = []
        for kind in sorted(self.kinds, key=lambda k: (-total[k], k)):
            found = sorted(
                ((d, n) for d, n in self.kinds[kind].items() if d), key=lambda dn: (-dn[1], dn[0])
            )
            text = kind
            if len(found) == 1:
                text += f" from {found[0][0]}"
            elif found:
                more = ", ..." if len(found) > 4 else ""
                text += " from " + ", ".join(f"{d} ({n})" for d, n in found[:4]) + more
            lines.append(f"{total[kind]} of {self.images} images: {text}")
        return lines
