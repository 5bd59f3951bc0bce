"""Saving pictures: every PNG and figure cnncli writes goes through here, atomically (a
temporary file beside the target, renamed when complete), so an interrupted command never
leaves a half picture that looks whole."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cnncli.atomic import atomic_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """A uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) or a Pillow image -> Pillow."""
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def save_png(
    image: Image.Image | np.ndarray,
    path: str | os.PathLike,
    overwrite: bool = True,
    compress_level: int = 6,
) -> Path:
    """Write `image` as PNG atomically; refuse an existing file unless `overwrite`
    (OutputExistsError). `compress_level` 1 for speed (many pictures), 6 Pillow's default."""
    with atomic_file(path, overwrite=overwrite) as tmp:
        to_pil(image).save(tmp, format="PNG", compress_level=compress_level)
    return Path(path)


def save_figure(
    fig: Figure, path: str | os.PathLike, dpi: int = 100, overwrite: bool = True
) -> Path:
    """Write a matplotlib figure as PNG atomically."""
    with atomic_file(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
