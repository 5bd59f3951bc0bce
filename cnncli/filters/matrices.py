"""Filters and pooling on a typed-in matrix (`cnncli filter --matrix`, `cnncli pool --matrix`):
the result as plain numbers, with the multiply-and-sum at each position on request."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnncli.filters.kernels import parse_kernel, parse_matrix
from cnncli.filters.pooling import pool
from cnncli.filters.reference import correlate, correlation_steps


@dataclass
class MatrixResult:
    """`data`: what --json prints (input, output, the options); `title`: a one-line summary."""

    title: str
    data: dict


def filter_matrix(
    text: str | os.PathLike,
    kernel: str | os.PathLike | None,
    scale: float | None = None,
    padding: str = "same",
    border: str = "zero",
    stride: int = 1,
    flip: bool = False,
    steps: bool = False,
) -> MatrixResult:
    """Cross-correlate (convolve with `flip`) the matrix `text` (rows like '1,2,3;4,5,6' or a
    .csv/.txt file) with `kernel` (a name, rows or a file, times `scale`)."""
    k = parse_kernel(kernel, scale)
    m = parse_matrix(str(text))
    result = correlate(m, k, padding, border, stride, flip)
    data: dict[str, Any] = {
        "kernel": plain(k),
        "padding": padding,
        "border": border,
        "stride": stride,
        "flip": flip,
        "input": plain(m),
        "output": plain(result),
    }
    if steps:
        data["steps"] = correlation_steps(m, k, padding, border, stride, flip)
        for s in data["steps"]:
            s["value"] = plain(s["value"])
    what = "convolution" if flip else "cross-correlation"
    return MatrixResult(f"{what}, padding {padding}, border {border}, stride {stride}", data)


def pool_matrix(
    text: str | os.PathLike,
    op: str = "max",
    size: int = 2,
    stride: int | None = None,
    padding: str = "valid",
) -> MatrixResult:
    """Pool the matrix `text` (max, avg or min over size x size windows)."""
    m = parse_matrix(str(text))
    result = pool(m, op, size, stride, padding)
    data: dict[str, Any] = {
        "op": op,
        "size": size,
        "stride": stride or size,
        "padding": padding,
        "input": plain(m),
        "output": plain(result),
    }
    return MatrixResult(f"{op} pool {size}x{size}, stride {stride or size}, {padding}", data)


def plain(a: np.ndarray) -> list:
    """NumPy -> nested lists (or a number), whole numbers as int."""
    a = np.asarray(a, dtype=np.float64)
    if np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64).tolist()
    return np.round(a, 10).tolist()
