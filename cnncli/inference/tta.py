"""Test-time augmentation (`evaluate --tta`, `predict --tta`): a classifier's probabilities
averaged over the image and a few small shifts of it (and their mirror images, where the
model was trained with horizontal flips: stored with the model as `augment.flip`).

The views: the image itself, then shifted by SHIFT_SHARE of its side (at least one pixel)
left, right, up and down, the uncovered edge filled with the nearest pixels (as training's
RandomTranslation fills it); with flips, each of these mirrored too. The mean is plain: a
view counts as much as any other. A regression model's values are not averaged (a shift
moves what a target may measure): `tta_note` says so and prediction goes on without it.
"""

from __future__ import annotations

import numpy as np

from cnncli.inference.model import ModelInfo, probabilities

SHIFT_SHARE = 0.04  # of the image's shorter side


def shift_pixels(height: int, width: int) -> int:
    """The TTA shift in pixels for an image of this size."""
    return max(1, round(SHIFT_SHARE * min(height, width)))


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """N x H x W x C images moved down by dy and right by dx pixels (negative: up, left),
    the uncovered rows and columns repeating the nearest edge pixels."""
    n, h, w = images.shape[:3]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return images[:, rows][:, :, cols]


def trained_with_flips(info: ModelInfo) -> bool:
    """Whether the model's training used horizontal flips (stored with a cnncli model)."""
    return bool((info.augment or {}).get("flip") is True)


def views(images: np.ndarray, flips: bool) -> list[np.ndarray]:
    """The TTA views of a batch: identity, 4 shifts, and with `flips` each mirrored."""
    x = np.asarray(images)
    s = shift_pixels(x.shape[1], x.shape[2])
    out = [x] + [shifted(x, dy, dx) for dy, dx in ((0, -s), (0, s), (-s, 0), (s, 0))]
    if flips:
        out += [v[:, :, ::-1] for v in out]
    return out


def describe(info: ModelInfo) -> str:
    """What --tta averages over, for the model `info`, in one phrase."""
    s = shift_pixels(info.image.height, info.image.width)
    flips = trained_with_flips(info)
    n = 10 if flips else 5
    return (f"{n} views: the image and shifts of {s} px left, right, up and down"
            + (", each also mirrored (the model trained with flips)" if flips else
               " (no mirror images: the model trained without flips)"))  # fmt: skip


def tta_note(info: ModelInfo) -> str | None:
    """The line said when --tta does not apply to `info` (a regression model), else None."""
    if info.task == "regression":
        return ("--tta: a regression model's values are not averaged over shifted images "
                "(a shift can move what a target measures); predicted without it")  # fmt: skip
    return None


def tta_probabilities(info: ModelInfo, images, with_plain: bool = False):
    """The mean of `probabilities(info, view)` over the views of `images` (a batch, 0..255
    pixels); `with_plain`: (that mean, the identity view's probabilities)."""
    x = np.asarray(images, dtype=np.float32)
    outs = [probabilities(info, v) for v in views(x, trained_with_flips(info))]
    mean = np.mean(outs, axis=0)
    return (mean, outs[0]) if with_plain else mean
