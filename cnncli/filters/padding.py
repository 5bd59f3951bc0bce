"""Padding for filters and pooling: TensorFlow's 'same'/'valid' sizes and the border rules
(reflect, edge, zero) that fill the padded frame, shared by every path in cnncli.filters."""

from __future__ import annotations

import numpy as np

from cnncli.errors import UsageError

PADDINGS = ("same", "valid")
BORDERS = ("reflect", "edge", "zero")


def check_options(padding: str, border: str, stride: int) -> None:
    if padding not in PADDINGS:
        raise UsageError(f"unknown padding {padding!r}", f"use one of {', '.join(PADDINGS)}")
    if border not in BORDERS:
        raise UsageError(f"unknown border {border!r}", f"use one of {', '.join(BORDERS)}")
    if not isinstance(stride, int) or stride < 1:
        raise UsageError(f"stride must be 1 or more, got {stride}", "pass --stride 1 or more")


def pad_amounts(
    n: int, k: int, stride: int, padding: str, what: str = "kernel"
) -> tuple[int, int, int]:
    """(before, after, output length) for one axis, following TensorFlow's rule.

    'same': output ceil(n / stride), total padding max((out-1)*stride + k - n, 0), the
    extra one after (bottom/right). 'valid': no padding, floor((n - k) / stride) + 1.
    """
    if padding == "same":
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        return total // 2, total - total // 2, out
    if k > n:
        raise UsageError(
            f"the {what} ({k}) is larger than the input ({n}) with valid padding",
            "use --padding same or a smaller " + what,
        )
    return 0, 0, (n - k) // stride + 1


def border_index(n: int, before: int, after: int, border: str) -> np.ndarray:
    """Source index of each padded position (-1 where the border is zero).

    reflect mirrors about the edge pixel without repeating it (OpenCV's default
    BORDER_REFLECT_101, NumPy's 'reflect', SciPy's 'mirror'); edge repeats it.
    """
    idx = np.arange(-before, n + after)
    if border == "zero":
        return np.where((idx >= 0) & (idx < n), idx, -1)
    if border == "edge" or n == 1:
        return np.clip(idx, 0, n - 1)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def pad_array(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """`x` padded: rows and columns taken at the source indices of `border_index` (0 at -1)."""
    out = x[np.maximum(rows, 0)][:, np.maximum(cols, 0)]
    out[rows < 0] = 0
    out[:, cols < 0] = 0
    return out
