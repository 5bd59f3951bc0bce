"""Max, average and min pooling on NumPy arrays, as tf.nn.pool computes them."""

from __future__ import annotations

import numpy as np

from cnncli.errors import UsageError
from cnncli.filters.padding import border_index, check_options, pad_amounts, pad_array

POOL_OPS = ("max", "avg", "min")


def check_pool_options(op: str, size: int, stride: int | None, padding: str) -> None:
    """UsageError for an unknown op or padding, or a size or stride under 1 (stride None:
    the size)."""
    if op not in POOL_OPS:
        raise UsageError(f"unknown pooling op {op!r}", f"use one of {', '.join(POOL_OPS)}")
    if not isinstance(size, int) or size < 1:
        raise UsageError(f"pool size must be 1 or more, got {size}", "pass --size 1 or more")
    check_options(padding, "zero", size if stride is None else stride)


def pool(
    x: np.ndarray, op: str = "max", size: int = 2, stride: int | None = None, padding: str = "valid"
) -> np.ndarray:
    """Max/average/min pooling of (H, W) or (H, W, C), each channel on its own.

    Follows tf.nn.pool: 'same' pads by TensorFlow's rule and padded cells never count
    (average is over the real cells of each window). Returns float64 for avg, else x's dtype.
    """
    check_pool_options(op, size, stride, padding)
    stride = size if stride is None else stride
    x = np.asarray(x)
    h, w = x.shape[:2]
    pt, pb, oh = pad_amounts(h, size, stride, padding, what="pool size")
    pl, pr, ow = pad_amounts(w, size, stride, padding, what="pool size")
    rows = border_index(h, pt, pb, "zero")
    cols = border_index(w, pl, pr, "zero")
    if op == "avg":
        xp = pad_array(x.astype(np.float64), rows, cols)
        mask = pad_array(np.ones((h, w)), rows, cols)
    else:
        info = np.iinfo(x.dtype) if np.issubdtype(x.dtype, np.integer) else None
        fill = (
            (info.min if op == "max" else info.max)
            if info
            else (-np.inf if op == "max" else np.inf)
        )
        xp = x[np.maximum(rows, 0)][:, np.maximum(cols, 0)]
        xp[rows < 0] = fill
        xp[:, cols < 0] = fill
    out: np.ndarray | None = None
    count: np.ndarray | None = None
    reduce = {"max": np.maximum, "min": np.minimum, "avg": np.add}[op]
    for i in range(size):
        for j in range(size):
            sl = (
                slice(i, i + (oh - 1) * stride + 1, stride),
                slice(j, j + (ow - 1) * stride + 1, stride),
            )
            v = xp[sl]
            out = v.copy() if out is None else reduce(out, v, out=out)
            if op == "avg":
                m = mask[sl]
                count = m.copy() if count is None else np.add(count, m, out=count)
    assert out is not None  # size >= 1: the loop ran
    if op == "avg":
        assert count is not None
        count = count.reshape(count.shape + (1,) * (out.ndim - count.ndim))
        out = out / count
    return out
