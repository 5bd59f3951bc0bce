"""How the fast engine computes one kernel (cnncli.filters.engine): its taps grouped by
weight, in integers over a divisor when the kernel allows, as a vertical then a horizontal
pass when it is rank 1 (or "c x centre + rank 1"), and the fewest NumPy passes that sum them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from cnncli.filters.kernels import exact_form, rank1_integer


class KernelPlan:
    """How to compute one kernel: as weighted taps, or c x tap + (u v^T), in `dtype`."""

    def __init__(self, kernel: np.ndarray, maxval: int):
        self.kh, self.kw = kernel.shape
        exact = exact_form(kernel)
        self.sep: tuple[np.ndarray, np.ndarray] | None = None
        self.centre = (self.kh // 2, self.kw // 2)
        self.c = 0
        self.shift: int | None = None
        if exact is None:
            self.weights, self.div = kernel, 1
            self.dtype: type[np.number] = np.float64 if maxval > 255 else np.float32
            self.taps = _taps(kernel)
            return
        ints, self.div = exact
        self.weights = ints
        self.taps = _taps(ints)
        best: tuple[int, tuple[np.ndarray, np.ndarray] | None, int] = (_cost(self.taps), None, 0)
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


def weighted_sum(
    terms: dict, views: Callable[[tuple], np.ndarray], out: np.ndarray, tmp: np.ndarray
) -> None:
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
    """Like weighted_sum, with taps of weights w and -w as w * (sum(+) - sum(-))."""
    units = {w: t for w, t in terms.items() if abs(w) == 1}
    pairs = sorted({abs(w) for w in terms if abs(w) != 1})
    part = np.empty_like(out)  # once per block: cheap next to the passes it saves
    first = True
    if units:
        weighted_sum(units, views, out, tmp)
        first = False
    for m in pairs:
        diff = {k: v for k, v in ((1, terms.get(m, [])), (-1, terms.get(-m, []))) if v}
        target = out if first else part
        weighted_sum(diff, views, target, tmp)
        np.multiply(target, m, out=target, casting="unsafe")
        if not first:
            np.add(out, part, out=out)
        first = False
