"""The fast engine: cross-correlation of 8/16-bit images, with the same numbers as the
definition (cnncli.filters.reference), OpenCV and SciPy.

`correlate_image` exploits the kernel's structure (cnncli.filters.plan: zero taps skipped,
taps of equal weight summed before one multiply, rank-1 integer kernels as a vertical then a
horizontal pass, "c x centre + rank-1" kernels such as edge = 9 x centre - box), works in
int16/int32 when the kernel is integers over a divisor, treats H x W x C as H x (W*C) so a
horizontal shift is a slice, builds each row block's padding while converting it, and keeps
blocks of rows small enough to stay in L2 cache. Row blocks are split between threads (NumPy
releases the GIL inside ufuncs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from cnncli.errors import UsageError
from cnncli.filters.padding import border_index, check_options, pad_amounts
from cnncli.filters.plan import KernelPlan, weighted_sum
from cnncli.filters.reference import correlate

BLOCK_ROWS = 32  # rows per block: measured in bench_filters (32-64 best on a 2 MB L2)


class RowSource(Protocol):
    """An image correlate_image reads a block of rows at a time (see filters.files)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int

    def rows(self, a: int, b: int) -> np.ndarray: ...


def correlate_image(
    x: np.ndarray | RowSource,
    kernel: np.ndarray,
    padding: str = "same",
    border: str = "reflect",
    stride: int = 1,
    flip: bool = False,
    *,
    absolute: bool = False,
    offset: float = 0.0,
    raw: bool = False,
    threads: int | None = None,
    block_rows: int | None = None,
    emit: Callable[[np.ndarray], None] | None = None,
) -> np.ndarray | None:
    """Filter an 8- or 16-bit image array (H, W) or (H, W, C), each channel on its own.

    `x` may also be a row source (an object with shape, dtype, ndim and rows(a, b) giving
    rows a..b-1 as an (n, W*C) array), and with `emit` the output is not kept: each block of
    output rows, as (n, W'*C), is passed to emit in order and None is returned. Together
    they filter an image that is never whole in memory twice (see filters.files).

    Returns the same dtype: value = correlation (then |.| with `absolute`, then + `offset`),
    rounded half to even and clipped to the dtype's range. With `raw`, returns the
    unrounded float32/float64 correlation instead (for --normalize).
    """
    check_options(padding, border, stride)
    if x.dtype not in (np.uint8, np.uint16):
        raise UsageError(f"images of dtype {x.dtype} are not supported", "use 8- or 16-bit images")
    kernel = np.asarray(kernel, dtype=np.float64)
    if flip:
        kernel = kernel[::-1, ::-1]
    h, w = x.shape[:2]
    ch = x.shape[2] if x.ndim == 3 else 1
    maxval = int(np.iinfo(x.dtype).max)
    kh, kw = kernel.shape
    pt, pb, oh = pad_amounts(h, kh, stride, padding)
    pl, pr, ow = pad_amounts(w, kw, stride, padding)
    if max(pt, pb) >= h or max(pl, pr) >= w:  # padding wider than the image: the definition
        arr = x if isinstance(x, np.ndarray) else x.rows(0, h).reshape(x.shape)
        res = _finish_whole(
            correlate(arr, kernel, padding, border, stride), x.dtype, absolute, offset, raw
        )
        if emit is None:
            return res
        emit(res.reshape(res.shape[0], -1))
        return None
    plan = KernelPlan(kernel, maxval)
    if isinstance(x, np.ndarray):
        x2 = np.ascontiguousarray(x).reshape(h, w * ch)
        read = x2.__getitem__  # read(slice) -> rows
    else:
        read = lambda sl: x.rows(sl.start, sl.stop)  # noqa: E731
    rows = border_index(h, pt, pb, border)
    cols = border_index(w, pl, pr, border)
    oh1 = h + pt + pb - kh + 1  # stride-1 output size over the padded frame
    ow1 = w + pl + pr - kw + 1
    out_dtype = (np.float64 if maxval > 255 else np.float32) if raw else x.dtype
    nthreads = threads if threads is not None else default_threads(h * w * ch)
    if emit is not None:
        nthreads = 1  # blocks must reach emit in order
    if block_rows is None:  # measured: 32 rows best on one thread, 64 on two
        block_rows = BLOCK_ROWS if nthreads == 1 else 2 * BLOCK_ROWS
    step = max(block_rows - block_rows % stride, stride)
    if emit is None:
        out = np.empty((oh, ow * ch), dtype=out_dtype)
    else:
        out = np.empty((-(-step // stride), ow * ch), dtype=out_dtype)
    starts = list(range(0, (oh - 1) * stride + 1, step))
    nthreads = max(1, min(nthreads, len(starts)))

    geometry = (read, w * ch, ch, kh, kw, pl, rows, cols, oh1, ow1, stride, ow, plan)
    post = (absolute, offset, raw, maxval)

    def work(chunk):
        bufs = _Buffers(step, w + pl + pr, kh, ch, ow1, plan.dtype)
        for o0 in chunk:
            o1 = min(o0 + step, oh1, (oh - 1) * stride + 1)
            if emit is None:
                _block(o0, o1, geometry, post, bufs, out, 0)
            else:
                _block(o0, o1, geometry, post, bufs, out, o0 // stride)
                emit(out[: len(range(o0, o1, stride))])

    if nthreads == 1:
        work(starts)
    else:
        per = math.ceil(len(starts) / nthreads)
        chunks = [starts[i : i + per] for i in range(0, len(starts), per)]
        with ThreadPoolExecutor(nthreads) as pool:
            list(pool.map(work, chunks))
    if emit is not None:
        return None
    shape = (oh, ow, ch) if x.ndim == 3 else (oh, ow)
    return out.reshape(shape)


def default_threads(n_values: int) -> int:
    """Two threads on big images when a core is free, else one.

    bench_filters (b) measured both ways on this shared 2-core machine: with the load
    average near 0, 2 threads x 64-row blocks ran sharpen in 36 ms against 65 ms on one;
    with other jobs on the second core (load 4-5), 2 threads were slower than 1. So the
    second thread is used when the load average leaves a core idle. CNNCLI_FILTER_THREADS
    overrides."""
    env = os.environ.get("CNNCLI_FILTER_THREADS", "")
    if env.isdigit():
        return max(1, int(env))
    cores = os.cpu_count() or 1
    if cores < 2 or n_values < 1_000_000:
        return 1
    try:
        idle = os.getloadavg()[0] <= cores - 1
    except OSError:  # no load average on this platform
        idle = False
    return 2 if idle else 1


class _Buffers:
    def __init__(self, rows, wp, kh, ch, ow1, dtype):
        self.pad = np.zeros((rows + kh - 1, wp * ch), dtype=dtype)
        self.vert = np.empty((rows, wp * ch), dtype=dtype)
        self.acc = np.empty((rows, ow1 * ch), dtype=dtype)
        self.tmp = np.empty((rows, wp * ch), dtype=dtype)
        ftype = np.float64 if dtype in (np.int32, np.float64) else np.float32
        self.f = np.empty((rows, ow1 * ch), dtype=ftype)


def _block(o0, o1, geometry, post, bufs, out, base):
    read, wc, ch, kh, kw, pl, rows, cols, oh1, ow1, stride, ow, plan = geometry
    absolute, offset, raw, maxval = post
    n = o1 - o0
    src = rows[o0 : o1 + kh - 1]
    pad = bufs.pad[: n + kh - 1]
    inner = pad[:, pl * ch : pl * ch + wc]
    if src[0] >= 0 and src[-1] - src[0] == len(src) - 1 and (len(src) < 3 or src[1] > src[0]):
        np.copyto(inner, read(slice(src[0], src[-1] + 1)), casting="unsafe")
    else:
        for k, r in enumerate(src):
            if r < 0:
                inner[k] = 0
            else:
                np.copyto(inner[k], read(slice(r, r + 1))[0], casting="unsafe")
    w = wc // ch
    for j in list(range(pl)) + list(range(pl + w, len(cols))):
        c = cols[j]
        dst = pad[:, j * ch : (j + 1) * ch]
        if c < 0:
            dst[...] = 0
        else:
            dst[...] = pad[:, (pl + c) * ch : (pl + c + 1) * ch]
    acc = bufs.acc[:n]
    tmp = bufs.tmp[:n]
    width = ow1 * ch
    if plan.sep is None:
        weighted_sum(
            plan.taps,
            lambda t: pad[t[0] : t[0] + n, t[1] * ch : t[1] * ch + width],
            acc,
            tmp[:, :width],
        )
    else:
        u, v = plan.sep
        vert = bufs.vert[:n]
        weighted_sum(plan.vtaps, lambda t: pad[t[0] : t[0] + n], vert, tmp)
        weighted_sum(
            plan.htaps, lambda t: vert[:, t[1] * ch : t[1] * ch + width], acc, tmp[:, :width]
        )
        if plan.c:
            cy, cx = plan.centre
            centre = pad[cy : cy + n, cx * ch : cx * ch + width]
            t = tmp[:, :width]
            np.multiply(centre, plan.c, out=t, casting="unsafe")
            np.add(acc, t, out=acc)
    if stride > 1:
        acc = acc[::stride].reshape(-1, ow1, ch)[:, ::stride][:, :ow].reshape(-1, ow * ch)
    dst = out[o0 // stride - base : o0 // stride - base + acc.shape[0]]
    integer = np.issubdtype(acc.dtype, np.integer)
    if raw:
        np.multiply(acc, 1.0 / plan.div, out=dst, casting="unsafe")
        return
    lo, hi = plan.range(maxval)
    if absolute:
        lo, hi = 0, max(abs(lo), abs(hi))
    lo, hi = lo + offset, hi + offset
    in_range = lo >= 0 and hi <= maxval  # then clipping can be skipped
    if integer and plan.div > 1 and plan.shift is not None and float(offset).is_integer():
        # acc / 2^k rounded half to even, in integers: (acc + 2^(k-1) - 1 + bit_k(acc)) >> k
        k = plan.shift
        t = bufs.tmp[: acc.shape[0], : acc.shape[1]]
        np.right_shift(acc, k, out=t)
        np.bitwise_and(t, 1, out=t)
        np.add(acc, t, out=acc)
        np.add(acc, (1 << (k - 1)) - 1, out=acc)
        np.right_shift(acc, k, out=acc)
        plan_div_done = True
    elif integer and plan.div % 2 == 1 and plan.div > 1 and float(offset).is_integer():
        # odd divisor: acc / d never ends in .5, so rounding is floor((acc + d//2) / d),
        # an integer division by a constant (NumPy uses libdivide): two passes, no floats
        np.add(acc, plan.div // 2, out=acc)
        if lo >= 0 and acc.dtype == np.int16:
            acc_u = acc.view(np.uint16)  # non-negative: the unsigned division is faster
            np.floor_divide(acc_u, plan.div, out=acc_u)
        else:
            np.floor_divide(acc, plan.div, out=acc)
        plan_div_done = True
    else:
        plan_div_done = False
    if integer and (plan.div == 1 or plan_div_done) and float(offset).is_integer():
        if absolute:
            np.abs(acc, out=acc)
        if offset:
            if acc.dtype == np.int16 and max(abs(lo), abs(hi)) >= 2**15:
                acc = acc.astype(np.int32)
            np.add(acc, int(offset), out=acc)
        if in_range:
            np.copyto(dst, acc, casting="unsafe")
        else:
            np.clip(acc, 0, maxval, out=dst, casting="unsafe")
        return
    f = bufs.f[: acc.shape[0], : acc.shape[1]]
    if plan.div != 1:
        np.multiply(acc, f.dtype.type(1.0 / plan.div), out=f, dtype=f.dtype, casting="unsafe")
    else:
        np.copyto(f, acc, casting="unsafe")
    if absolute:
        np.abs(f, out=f)
    if offset:
        np.add(f, offset, out=f)
    np.rint(f, out=f)
    if in_range:
        np.copyto(dst, f, casting="unsafe")
    else:
        np.clip(f, 0, maxval, out=dst, casting="unsafe")


def _finish_whole(res: np.ndarray, dtype, absolute: bool, offset: float, raw: bool) -> np.ndarray:
    if raw:
        return res
    if absolute:
        res = np.abs(res)
    res = np.rint(res + offset)
    return np.clip(res, 0, np.iinfo(dtype).max).astype(dtype)
