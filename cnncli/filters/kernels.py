"""Kernels: the course's named kernels, parsing custom ones, and their exact structure.

A kernel is a 2-D float64 array. `exact_form` writes it as integers over a divisor when it
can (box-blur is ones over 9), which lets the engine work in integer arithmetic.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from cnncli.errors import InputError, UsageError

_GAUSS5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
# unsharp masking 5x5 (the course's table): -1/256 x the 5x5 Gaussian with centre -476
_UNSHARP = -_GAUSS5.copy()
_UNSHARP[2, 2] = 476

# name -> (integer matrix, divisor, description)
_NAMED: dict[str, tuple[np.ndarray, int, str]] = {
    "identity": (np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), 1, "the image unchanged"),
    "edge": (np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]), 1, "edge detection"),
    "laplacian": (np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]), 1, "Laplacian (second derivative)"),
    "edge-diagonal": (np.array([[1, 0, -1], [0, 0, 0], [-1, 0, 1]]), 1, "diagonal edges"),
    "sharpen": (np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]), 1, "sharpen"),
    "box-blur": (np.ones((3, 3), dtype=int), 9, "box blur (mean of 3x3)"),
    "gaussian-blur": (np.outer([1, 2, 1], [1, 2, 1]), 16, "Gaussian blur 3x3"),
    "gaussian-blur-5x5": (_GAUSS5, 256, "Gaussian blur 5x5"),
    "unsharp": (_UNSHARP, 256, "unsharp masking 5x5"),
    "emboss": (np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]), 1, "emboss"),
    "sobel-x": (np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), 1, "Sobel, horizontal gradient"),
    "sobel-y": (np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]), 1, "Sobel, vertical gradient"),
}
ALIASES = {
    "gaussian": "gaussian-blur",
    "gaussian-blur-3x3": "gaussian-blur",
    "gaussian-5x5": "gaussian-blur-5x5",
    "box": "box-blur",
    "blur": "box-blur",
    "unsharp-masking": "unsharp",
    "edge-detection": "edge",
}
NAMED_KERNELS = tuple(_NAMED)


def named_kernel(name: str) -> np.ndarray:
    ints, div, _ = _NAMED[ALIASES.get(name, name)]
    return ints.astype(np.float64) / div


def kernel_description(name: str) -> str:
    return _NAMED[ALIASES.get(name, name)][2]


def kernel_label(name: str) -> str:
    """How a named kernel's matrix is printed: '1/9 *' prefix for divided ones."""
    ints, div, _ = _NAMED[name]
    return f"1/{div}" if div != 1 else ""


def kernel_tag(text: str | os.PathLike | None) -> str:
    """The name an output file gets for a kernel: its canonical name, or "filtered"."""
    key = str(text).strip().lower()
    key = ALIASES.get(key, key)
    return key if key in _NAMED else "filtered"


def parse_kernel(text: str | os.PathLike | None, scale: float | None = None) -> np.ndarray:
    """A kernel from a name, an inline matrix ("0,-1,0;-1,5,-1;0,-1,0") or a text/CSV file.

    Returns a 2-D float64 array (times `scale` when given). Raises UsageError for no kernel
    (None), a non-number, ragged rows or an empty kernel.
    """
    if text is None:
        raise UsageError("--kernel is required", "name one (see --list) or give its rows")
    source = str(text).strip()
    key = source.lower()
    if key in _NAMED or key in ALIASES:
        kernel = named_kernel(key)
    else:
        kernel = parse_matrix(source, what="kernel")
    if scale is not None:
        if not math.isfinite(scale) or scale == 0:
            raise UsageError(f"bad --scale {scale}", "give a finite, non-zero number")
        kernel = kernel * scale
    return kernel


def parse_matrix(text: str, what: str = "matrix") -> np.ndarray:
    """Rows separated by ';' or new lines, numbers by ',', spaces or tabs; or a file of that."""
    source = str(text)
    body = source
    path = Path(source)
    if "\n" not in source and ";" not in source and len(source) < 4096:
        try:
            is_file = path.is_file()
        except OSError:
            is_file = False
        if is_file:
            try:
                body = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"cannot read the {what} file {path} ({e})") from None
        elif _is_word(source):
            names = ", ".join(NAMED_KERNELS)
            hint = (
                f"use a named kernel ({names}), rows like '0,-1,0;-1,5,-1;0,-1,0', or a file"
                if what == "kernel"
                else "write rows like '1,2,3;4,5,6', or give a .csv/.txt file"
            )
            raise UsageError(f"unknown {what} {source!r} (not a name, a matrix or a file)", hint)
    rows = []
    for line in body.replace(";", "\n").splitlines():
        line = line.strip().strip("[]").strip()
        if not line or line.startswith("#"):
            continue
        cells = [c for c in line.replace(",", " ").replace("\t", " ").split() if c.strip("[]")]
        row = []
        for cell in cells:
            cell = cell.strip("[]")
            try:
                value = float(Fraction(cell)) if "/" in cell else float(cell)
            except (ValueError, ZeroDivisionError):
                raise UsageError(
                    f"the {what} has a value that is not a number: {cell!r}",
                    "use numbers separated by ',' and rows by ';'",
                ) from None
            if not math.isfinite(value):
                raise UsageError(f"the {what} has a value that is not finite: {cell!r}")
            row.append(value)
        rows.append(row)
    if not rows or not any(rows):
        raise UsageError(f"the {what} is empty", "give at least one number")
    widths = sorted({len(r) for r in rows})
    if len(widths) > 1:
        raise UsageError(
            f"the {what}'s rows have different lengths ({', '.join(map(str, widths))})",
            "every row needs the same number of values",
        )
    return np.array(rows, dtype=np.float64)


def _is_word(text: str) -> bool:
    """A name (or a mistyped file name), not numbers: no separators and not a number."""
    if any(sep in text for sep in ", \t"):
        return False
    try:
        float(Fraction(text)) if "/" in text else float(text)
        return False
    except (ValueError, ZeroDivisionError):
        return True


def exact_form(kernel: np.ndarray, max_divisor: int = 65536) -> tuple[np.ndarray, int] | None:
    """(integer matrix, divisor) with kernel == ints / divisor exactly, or None."""
    for div in _divisors(max_divisor):
        scaled = kernel * div
        ints = np.rint(scaled)
        if np.all(np.abs(scaled - ints) <= 1e-9 * max(1.0, float(np.abs(scaled).max()))):
            if np.abs(ints).max() < 2**31:
                return ints.astype(np.int64), div
    return None


def _divisors(limit: int):
    seen = set()
    for d in list(range(1, 65)) + [2**k for k in range(7, 17)] + [100, 1000, 10000]:
        if d <= limit and d not in seen:
            seen.add(d)
            yield d


def rank1_integer(m: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer column u and row v with u v^T == m, or None when m is not rank 1 that way."""
    nz = np.argwhere(m != 0)
    if len(nz) == 0:
        return None
    i0, _ = nz[0]
    row = m[i0]
    g = np.gcd.reduce(np.abs(row[row != 0]))
    v = row // g
    j0 = int(np.flatnonzero(v)[0])
    if np.any(m[:, j0] % v[j0]):
        return None
    u = m[:, j0] // v[j0]
    if not np.array_equal(np.outer(u, v), m):
        return None
    return u, v


def format_kernel(kernel: np.ndarray) -> list[str]:
    """The kernel as text lines, integers over a divisor when exact ('1/9 x' first)."""
    exact = exact_form(kernel, max_divisor=1024)
    if exact is not None:
        ints, div = exact
        cells = [[str(int(v)) for v in row] for row in ints]
        prefix = f"1/{div} x" if div != 1 else ""
    else:
        cells = [[f"{v:.4g}" for v in row] for row in kernel]
        prefix = ""
    width = max(len(c) for row in cells for c in row)
    lines = [" ".join(c.rjust(width) for c in row) for row in cells]
    return ([prefix] if prefix else []) + lines
