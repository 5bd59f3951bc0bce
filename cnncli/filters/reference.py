"""Cross-correlation by its definition (float64, any kernel, padding, border and stride): the
path for matrices, the fallback of the fast engine and the reference it must equal; and the
multiply-and-sum at each position, for teaching."""

from __future__ import annotations

import numpy as np

from cnncli.filters.padding import border_index, check_options, pad_amounts, pad_array


def _padded(x, kernel, padding: str, border: str, stride: int, flip: bool):
    """(padded float64 input, float64 kernel (turned when `flip`), output height, width)."""
    check_options(padding, border, stride)
    kernel = np.asarray(kernel, dtype=np.float64)
    if flip:
        kernel = kernel[::-1, ::-1]
    x = np.asarray(x, dtype=np.float64)
    kh, kw = kernel.shape
    pt, pb, oh = pad_amounts(x.shape[0], kh, stride, padding)
    pl, pr, ow = pad_amounts(x.shape[1], kw, stride, padding)
    rows = border_index(x.shape[0], pt, pb, border)
    return pad_array(x, rows, border_index(x.shape[1], pl, pr, border)), kernel, oh, ow


def correlate(
    x: np.ndarray,
    kernel: np.ndarray,
    padding: str = "same",
    border: str = "zero",
    stride: int = 1,
    flip: bool = False,
) -> np.ndarray:
    """Cross-correlate a 2-D (H, W) or (H, W, C) array with a 2-D kernel; float64 result.

    `flip` turns the kernel by 180 degrees first: true convolution.
    """
    xp, kernel, oh, ow = _padded(x, kernel, padding, border, stride, flip)
    kh, kw = kernel.shape
    out = np.zeros((oh, ow) + xp.shape[2:])
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j] != 0:
                out += (
                    kernel[i, j]
                    * xp[
                        i : i + (oh - 1) * stride + 1 : stride,
                        j : j + (ow - 1) * stride + 1 : stride,
                    ]
                )
    return out


def correlation_steps(
    x: np.ndarray,
    kernel: np.ndarray,
    padding: str = "same",
    border: str = "zero",
    stride: int = 1,
    flip: bool = False,
) -> list[dict]:
    """The multiply-and-sum at every output position, for teaching (small inputs)."""
    xp, kernel, oh, ow = _padded(x, kernel, padding, border, stride, flip)
    kh, kw = kernel.shape
    steps = []
    for i in range(oh):
        for j in range(ow):
            window = xp[i * stride : i * stride + kh, j * stride : j * stride + kw]
            terms = [
                f"{_num(k)}*{_num(v)}" for k, v in zip(kernel.ravel(), window.ravel(), strict=False)
            ]
            value = float((window * kernel).sum())
            steps.append({"row": i, "col": j, "terms": terms, "value": value})
    return steps


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"
