"""Cross-correlation and pooling on NumPy arrays, exactly as CNN layers and OpenCV compute them.

Two paths give the same numbers:
- `correlate` (float64, any kernel, any padding/border/stride): the definition, used for
  matrices and as the fallback;
- `correlate_image` (8/16-bit images): the fast engine. It exploits the kernel's structure
  (zero taps skipped, taps of equal weight summed before one multiply, rank-1 integer
  kernels as a vertical then a horizontal pass, "c x centre + rank-1" kernels such as edge
  = 9 x centre - box), works in int16/int32 when the kernel is integers over a divisor,
  treats H x W x C as H x (W*C) so a horizontal shift is a slice, builds each row block's
  padding while converting it, and keeps blocks of rows small enough to stay in L2 cache.
  Row blocks are split between threads (NumPy releases the GIL inside ufuncs).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnncli.errors import UsageError
from cnncli.filters.kernels import exact_form, rank1_integer

PADDINGS = ("same", "valid")
BORDERS = ("reflect", "edge", "zero")
BLOCK_ROWS = 32  # rows per block: measured in bench_filters (32-64 best on a 2 MB L2)


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


def _pad(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = x[np.maximum(rows, 0)][:, np.maximum(cols, 0)]
    out[rows < 0] = 0
    out[:, cols < 0] = 0
    return out


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
    check_options(padding, border, stride)
    kernel = np.asarray(kernel, dtype=np.float64)
    if flip:
        kernel = kernel[::-1, ::-1]
    x = np.asarray(x, dtype=np.float64)
    kh, kw = kernel.shape
    pt, pb, oh = pad_amounts(x.shape[0], kh, stride, padding)
    pl, pr, ow = pad_amounts(x.shape[1], kw, stride, padding)
    xp = _pad(x, border_index(x.shape[0], pt, pb, border), border_index(x.shape[1], pl, pr, border))
    out = np.zeros((oh, ow) + x.shape[2:])
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j] != 0:
                out += kernel[i, j] * xp[i : i + (oh - 1) * stride + 1 : stride,
                                         j : j + (ow - 1) * stride + 1 : stride]  # fmt: skip
    return out


def correlation_steps(
    x: np.ndarray, kernel: np.ndarray, padding="same", border="zero", stride=1, flip=False
) -> list[dict]:
    """The multiply-and-sum at every output position, for teaching (small inputs)."""
    check_options(padding, border, stride)
    kernel = np.asarray(kernel, dtype=np.float64)
    if flip:
        kernel = kernel[::-1, ::-1]
    x = np.asarray(x, dtype=np.float64)
    kh, kw = kernel.shape
    pt, pb, oh = pad_amounts(x.shape[0], kh, stride, padding)
    pl, pr, ow = pad_amounts(x.shape[1], kw, stride, padding)
    xp = _pad(x, border_index(x.shape[0], pt, pb, border), border_index(x.shape[1], pl, pr, border))
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


# ---------------------------------------------------------------------------------------
# The fast engine
# ---------------------------------------------------------------------------------------


class _Plan:
    """How to compute one kernel: as weighted taps, or c x tap + (u v^T), in `dtype`."""

    def __init__(self, kernel: np.ndarray, maxval: int):
        self.kh, self.kw = kernel.shape
        exact = exact_form(kernel)
        self.sep = None
        self.centre = (self.kh // 2, self.kw // 2)
        self.c = 0
        self.shift = None
        if exact is None:
            self.weights, self.div = kernel, 1
            self.dtype = np.float64 if maxval > 255 else np.float32
            self.taps = _taps(kernel)
            return
        ints, self.div = exact
        self.weights = ints
        self.taps = _taps(ints)
        best = (_cost(self.taps), None, 0)
        for c in _centre_candidates(ints, self.centre):
            rest = ints.copy()
            rest[self.centre] -= c
            r1 = rank1_integer(rest)
            if r1 is not None:
                u, v = r1
                cost = _cost(_taps(u[:, None])) + _cost(_taps(v[None, :])) + (2 if c else 0)
                if cost < best[0]:
                    best = (cost, (u, v), c)
        _, self.sep, self.c = best
        if self.sep is not None:  # the passes' tap groups, computed once, not per block
            self.vtaps = _taps(self.sep[0][:, None])
            self.htaps = _taps(self.sep[1][None, :])
        if self.sep is not None:
            u, v = self.sep
            bound = (int(np.abs(u).sum()) * int(np.abs(v).sum()) + abs(self.c)) * maxval
        else:
            bound = int(np.abs(ints).sum()) * maxval
        bound += 1 + self.div
        self.shift = self.div.bit_length() - 1 if self.div & (self.div - 1) == 0 else None
        self.dtype = np.int16 if bound < 2**15 else np.int32 if bound < 2**31 else np.float64

    def range(self, maxval: int) -> tuple[float, float]:
        """The lowest and highest correlation value any image can give."""
        cached = getattr(self, "_range", None)
        if cached is None or cached[0] != maxval:
            w = np.asarray(self.weights, dtype=np.float64) / self.div
            self._range = (maxval, float(w[w < 0].sum()) * maxval, float(w[w > 0].sum()) * maxval)
        return self._range[1], self._range[2]


def _taps(m: np.ndarray) -> dict:
    groups = defaultdict(list)
    for (i, j), w in np.ndenumerate(m):
        if w != 0:
            groups[w.item()].append((i, j))
    return dict(groups)


def _cost(groups: dict) -> int:
    return sum(len(t) for t in groups.values()) + sum(1 for w in groups if abs(w) != 1)


def _centre_candidates(ints: np.ndarray, centre) -> list[int]:
    """Values c for which ints - c x delta(centre) may be rank 1."""
    cy, cx = centre
    cands = {0}
    for (i, j), w in np.ndenumerate(ints):
        if i != cy and j != cx and w != 0:
            num = ints[cy, j] * ints[i, cx]
            if num % w == 0:
                cands.add(int(ints[cy, cx] - num // w))
            break
    return sorted(cands, key=abs)


def _weighted_sum(terms: dict, views, out: np.ndarray, tmp: np.ndarray) -> None:
    """out = sum over weights w of w * (sum of views(tap)), with few passes."""
    if any(abs(w) != 1 and -w in terms for w in terms):  # w*(a - b): one multiply for a pair
        return _paired_sum(terms, views, out, tmp)
    order = sorted(terms.items(), key=lambda kv: (kv[0] != 1, kv[0] == -1, abs(kv[0])))
    first = True
    for w, taps in order:
        vs = [views(t) for t in taps]
        if abs(w) == 1 and not first:
            op = np.add if w == 1 else np.subtract
            for v in vs:
                op(out, v, out=out)
            continue
        if len(vs) == 1:
            s = vs[0]
        else:
            target = out if first and w == 1 else tmp
            np.add(vs[0], vs[1], out=target)
            for v in vs[2:]:
                np.add(target, v, out=target)
            s = target
        if first:
            if w == 1:
                if s is not out:
                    np.copyto(out, s)
            elif w == -1:
                np.negative(s, out=out)
            else:
                np.multiply(s, w, out=out, casting="unsafe")
            first = False
        else:
            np.multiply(s, w, out=tmp, casting="unsafe")
            np.add(out, tmp, out=out)
    if first:
        out[...] = 0


def _paired_sum(terms: dict, views, out: np.ndarray, tmp: np.ndarray) -> None:
    """Like _weighted_sum, with taps of weights w and -w as w * (sum(+) - sum(-))."""
    units = {w: t for w, t in terms.items() if abs(w) == 1}
    pairs = sorted({abs(w) for w in terms if abs(w) != 1})
    part = np.empty_like(out)  # once per block: cheap next to the passes it saves
    first = True
    if units:
        _weighted_sum(units, views, out, tmp)
        first = False
    for m in pairs:
        diff = {k: v for k, v in ((1, terms.get(m, [])), (-1, terms.get(-m, []))) if v}
        target = out if first else part
        _weighted_sum(diff, views, target, tmp)
        np.multiply(target, m, out=target, casting="unsafe")
        if not first:
            np.add(out, part, out=out)
        first = False


def correlate_image(
    x: np.ndarray,
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
    they filter an image that is never whole in memory twice (see filters.images).

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
        res = _finish_whole(correlate(arr, kernel, padding, border, stride), x.dtype,
                            absolute, offset, raw)  # fmt: skip
        if emit is None:
            return res
        emit(res.reshape(res.shape[0], -1))
        return None
    plan = _Plan(kernel, maxval)
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
        _weighted_sum(plan.taps, lambda t: pad[t[0] : t[0] + n, t[1] * ch : t[1] * ch + width],
                      acc, tmp[:, :width])  # fmt: skip
    else:
        u, v = plan.sep
        vert = bufs.vert[:n]
        _weighted_sum(plan.vtaps, lambda t: pad[t[0] : t[0] + n], vert, tmp)
        _weighted_sum(plan.htaps, lambda t: vert[:, t[1] * ch : t[1] * ch + width],
                      acc, tmp[:, :width])  # fmt: skip
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


# ---------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------

POOL_OPS = ("max", "avg", "min")


def pool(x: np.ndarray, op: str = "max", size: int = 2, stride: int | None = None,
         padding: str = "valid") -> np.ndarray:  # fmt: skip
    """Max/average/min pooling of (H, W) or (H, W, C), each channel on its own.

    Follows tf.nn.pool: 'same' pads by TensorFlow's rule and padded cells never count
    (average is over the real cells of each window). Returns float64 for avg, else x's dtype.
    """
    if op not in POOL_OPS:
        raise UsageError(f"unknown pooling op {op!r}", f"use one of {', '.join(POOL_OPS)}")
    if not isinstance(size, int) or size < 1:
        raise UsageError(f"pool size must be 1 or more, got {size}", "pass --size 1 or more")
    stride = size if stride is None else stride
    check_options(padding, "zero", stride)
    x = np.asarray(x)
    h, w = x.shape[:2]
    pt, pb, oh = pad_amounts(h, size, stride, padding, what="pool size")
    pl, pr, ow = pad_amounts(w, size, stride, padding, what="pool size")
    rows = border_index(h, pt, pb, "zero")
    cols = border_index(w, pl, pr, "zero")
    if op == "avg":
        xp = _pad(x.astype(np.float64), rows, cols)
        mask = _pad(np.ones((h, w)), rows, cols)
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
    out = None
    count = None
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
    if op == "avg":
        count = count.reshape(count.shape + (1,) * (out.ndim - count.ndim))
        out = out / count
    return out
