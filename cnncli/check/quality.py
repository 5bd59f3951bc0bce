"""What a data scientist looks at first, beside duplicates and labels: images per class and
how unbalanced they are, blank (constant) images, and images whose brightness or contrast
is far outside the rest."""

from __future__ import annotations

import numpy as np

from cnncli.datasets.store import UNBALANCED_RATIO

BLANK_CONTRAST = 2.0  # pixel standard deviation (0..255) at or below which an image is blank
OUTLIER_Z = 5.0  # robust z-score (median, 1.4826 x MAD) of brightness or contrast
CLASS_WEIGHT_HINT = "train with --class-weight auto to weigh the classes evenly"


def class_balance(counts: dict[str, int]) -> dict:
    """{"counts": {class: images}, "ratio": largest / smallest, "unbalanced": bool, "hint"}."""
    if not counts:
        return {"counts": {}, "ratio": None, "unbalanced": False, "hint": None}
    big, small = max(counts.values()), min(counts.values())
    ratio = big / small if small else float("inf")
    bad = ratio >= UNBALANCED_RATIO
    return {
        "counts": dict(counts),
        "ratio": round(ratio, 3) if small else None,
        "unbalanced": bool(bad),
        "largest": max(counts, key=counts.__getitem__),
        "smallest": min(counts, key=counts.__getitem__),
        "hint": CLASS_WEIGHT_HINT if bad else None,
    }


def blank_images(contrast: np.ndarray) -> list[int]:
    """Indices of the images whose pixels are (nearly) all the same value."""
    return [int(i) for i in np.flatnonzero(contrast <= BLANK_CONTRAST)]


def _robust_z(values: np.ndarray) -> np.ndarray:
    med = np.median(values)
    mad = np.median(np.abs(values - med)) * 1.4826
    return (values - med) / max(float(mad), 1e-6)


def outlier_images(
    brightness: np.ndarray, contrast: np.ndarray, skip: set[int]
) -> list[tuple[int, str, str]]:
    """(index, problem, detail) of the images far outside the rest in brightness or
    contrast (|robust z| > OUTLIER_Z); `skip`: images reported already (blank ones)."""
    if len(brightness) < 10:
        return []
    out = []
    zb, zc = _robust_z(brightness), _robust_z(contrast)
    mb, mc = float(np.median(brightness)), float(np.median(contrast))
    for i in range(len(brightness)):
        if i in skip:
            continue
        if abs(zb[i]) > OUTLIER_Z:
            word = "dark" if zb[i] < 0 else "bright"
            out.append(
                (
                    i,
                    f"unusually {word}",
                    f"mean brightness {brightness[i]:.0f} (median {mb:.0f}, robust z {zb[i]:+.1f})",
                )
            )
        elif abs(zc[i]) > OUTLIER_Z:
            word = "low" if zc[i] < 0 else "high"
            out.append(
                (
                    i,
                    f"unusually {word} contrast",
                    f"pixel std {contrast[i]:.0f} (median {mc:.0f}, robust z {zc[i]:+.1f})",
                )
            )
    return out
