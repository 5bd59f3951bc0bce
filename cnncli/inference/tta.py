"""Test-time augmentation (`evaluate --tta`, `predict --tta`): a classifier's probabilities
averaged over the image and the transforms the model was trained to ignore, read from the
augmentation stored with it (`augment`: shifts where it trained with shifts, mirror images
where it trained with flips; a model whose training is not stored: shifts, no mirrors).

The views: the image itself, then shifted by SHIFT_SHARE of its side (at least one pixel)
left, right, up and down, the uncovered edge filled with the nearest pixels (as training's
RandomTranslation fills it); with flips, each of these mirrored too. The mean is plain: a
view counts as much as any other. Shifts a model never saw in training cost accuracy (the
fast recipe's digits model, trained without augmentation: 0.9991 -> 0.9963 over three
seeds, bench/bench_recipe.py), so such a model is answered from the image alone. A
regression model's values are not averaged (a shift moves what a target may measure):
`tta_note` says so and prediction goes on without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.inference.info import ModelInfo
from cnncli.inference.model import probabilities

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


def trained_with(info: ModelInfo) -> tuple[bool, bool]:
    """(shifts, flips): whether --tta shifts and mirrors for this model, from the
    augmentation stored with it (not stored: shifts, no flips)."""
    aug = info.augment
    if aug is None:
        return True, False
    shift = aug.get("shift")
    return isinstance(shift, (int, float)) and shift > 0, aug.get("flip") is True


def views(images: np.ndarray, shifts: bool = True, flips: bool = False) -> list[np.ndarray]:
    """The TTA views of a batch: identity, with `shifts` 4 shifts, with `flips` each mirrored."""
    x = np.asarray(images)
    s = shift_pixels(x.shape[1], x.shape[2])
    moves = ((0, -s), (0, s), (-s, 0), (s, 0)) if shifts else ()
    out = [x] + [shifted(x, dy, dx) for dy, dx in moves]
    if flips:
        out += [v[:, :, ::-1] for v in out]
    return out


def describe(info: ModelInfo) -> str:
    """What --tta averages over, for the model `info`, in one phrase."""
    shifts, flips = trained_with(info)
    if not shifts and not flips:
        return "1 view: the model trained without shifts or flips, so the image alone"
    s = shift_pixels(info.image.height, info.image.width)
    n = (5 if shifts else 1) * (2 if flips else 1)
    parts = [f"shifts of {s} px left, right, up and down"] if shifts else []
    parts += ["mirror images (the model trained with flips)"] if flips else []
    return f"{n} views: the image and its " + ", and ".join(parts)


def tta_note(info: ModelInfo) -> str | None:
    """The line said when --tta does not apply to `info` (a regression model), else None."""
    if info.task == "regression":
        return (
            "--tta: a regression model's values are not averaged over shifted images "
            "(a shift can move what a target measures); predicted without it"
        )
    return None


def tta_probabilities(info: ModelInfo, images: np.ndarray, with_plain: bool = False) -> Any:
    """The mean of `probabilities(info, view)` over the views of `images` (a batch, 0..255
    pixels); `with_plain`: (that mean, the identity view's probabilities)."""
    x = np.asarray(images, dtype=np.float32)
    outs = [probabilities(info, v) for v in views(x, *trained_with(info))]
    mean = np.mean(outs, axis=0)
    return (mean, outs[0]) if with_plain else mean
