"""Verification of a candidate near-duplicate pair: is one picture the other, shifted or
cropped by a few pixels, re-encoded, brighter or darker, with a little noise?

Both pictures are grey squares of one side (32 for small images, 64 for larger ones: see
duplicates.working_side); pictures of SMOOTH_FROM pixels or more are smoothed first, so a
fine texture (bricks) shifted by a fraction of a pixel still lines up. For each direction
(a against b, then b against a) and each zoom in SCALES (a crop of a few per cent, resized
back, is a zoom), the central (side - 2 shift)^2 crop of the zoomed a is aligned with b's
windows shifted by up to `shift` pixels each way: the normalized cross-correlation of every
shift at once, by FFT; the best zoom and shift are refined to a fraction by parabolas
through their neighbours. There (and at the nearest whole-pixel shift: the better of the
two), b is fitted as gain x a + offset over the pixels saturated in neither (a brightened
photo clips), and the residual is averaged over blocks of side/8 x side/8 pixels (noise,
JPEG and what is left of a misalignment average out; a different stroke, window or brick
course does not), each block's mean in units of its own contrast (at least LOCAL_FLOOR of
the picture's: a dark corner does not hide the rest). The pair's score is the largest
block's, in the better direction."""

from __future__ import annotations

from functools import cache

import numpy as np

SCALES = (1.0, 1.025, 1.05, 1.075)  # zooms tried: crops of up to ~7% of the side
SMOOTH_FROM = 64  # working pictures this large are smoothed before they are compared
SMOOTH_PASSES = 2
LOCAL_FLOOR = 0.3  # a block's residual counts against max(its own contrast, this)
SATURATED = 250  # pixels this bright in either picture are left out of the comparison


def shift_of(side: int) -> int:
    """Pixels of shift tried each way at `side`: an eighth of the side."""
    return side // 8


@cache
def zoom_matrix(side: int, scale: float) -> np.ndarray:
    """(side, side) float32 R with R @ x @ R.T = the central side/scale pixels of x,
    resized (bilinear) to side; the identity at scale 1."""
    out = np.zeros((side, side), np.float32)
    x = (np.arange(side) + 0.5 - side / 2) / scale + side / 2 - 0.5
    lo = np.clip(np.floor(x).astype(int), 0, side - 2)
    w = np.clip(x - lo, 0.0, 1.0)
    out[np.arange(side), lo] = 1 - w
    out[np.arange(side), lo + 1] += w
    return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows (..., D) with mean 0 and norm 1 (a constant row stays 0)."""
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-6)


def _window_norms(b: np.ndarray, inner: int, span: int) -> np.ndarray:
    """(P, span, span): the norm about its mean of every inner x inner window of b whose
    corner is at (dy, dx), dy, dx < span (integral images)."""
    sums = np.pad(b, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    squares = np.pad(b * b, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)

    def box(s: np.ndarray) -> np.ndarray:
        return (
            s[:, inner : inner + span, inner : inner + span]
            - s[:, :span, inner : inner + span]
            - s[:, inner : inner + span, :span]
            + s[:, :span, :span]
        )

    total, total2 = box(sums), box(squares)
    return np.sqrt(np.maximum(total2 - total * total / (inner * inner), 1e-6))


def _zoomed(a: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return a
    r = zoom_matrix(a.shape[1], scale)
    return r @ a @ r.T


def _aligned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, side, side) float32 x2 -> (best NCC, its zoom (P,) and its shift (P, 2), each
    refined to a fraction by a parabola through its neighbours) of a's zoomed central crop
    against every window of b."""
    p, side = a.shape[0], a.shape[1]
    s = shift_of(side)
    inner, span = side - 2 * s, 2 * s + 1
    fb = np.fft.rfft2(b)
    norms = _window_norms(b, inner, span)
    best = np.full(p, -np.inf, np.float32)
    which = np.zeros(p, int)
    maps = np.zeros((p, span, span), np.float32)
    tops = np.zeros((p, len(SCALES)), np.float32)
    template = np.zeros_like(a)
    for z, scale in enumerate(SCALES):
        crop = _zoomed(a, scale)[:, s:-s, s:-s]
        template[:, :inner, :inner] = unit_rows(crop.reshape(p, -1)).reshape(crop.shape)
        corr = np.fft.irfft2(np.conj(np.fft.rfft2(template)) * fb, s=(side, side))
        ncc = corr[:, :span, :span] / norms
        top = ncc.reshape(p, -1).max(axis=1)
        tops[:, z] = top
        better = top > best
        best[better] = top[better]
        which[better] = z
        maps[better] = ncc[better]
    k = maps.reshape(p, -1).argmax(axis=1)
    at = np.stack([k // span, k % span], axis=1).astype(np.float32)
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = np.arange(p)
    y, x = k // span + 1, k % span + 1
    c = padded[rows, y, x]
    at[:, 0] += _vertex(padded[rows, y - 1, x], c, padded[rows, y + 1, x])
    at[:, 1] += _vertex(padded[rows, y, x - 1], c, padded[rows, y, x + 1])
    inner_zoom = (which > 0) & (which < len(SCALES) - 1)
    near = np.clip(which, 1, len(SCALES) - 2)
    step = _vertex(tops[rows, near - 1], tops[rows, near], tops[rows, near + 1])
    zoom = np.asarray(SCALES, np.float32)[which]
    zoom += np.where(inner_zoom, step, 0.0).astype(np.float32) * (SCALES[1] - SCALES[0])
    return best, zoom, at


def _vertex(lo: np.ndarray, c: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Where a parabola through (-1, lo), (0, c), (1, hi) peaks, within +-0.5 (0 where it
    does not bend down)."""
    curve = lo - 2 * c + hi
    frac = np.where(curve < -1e-6, (lo - hi) / (2 * np.minimum(curve, -1e-6)), 0.0)
    return np.clip(frac, -0.5, 0.5).astype(np.float32)


def _sampler(coords: np.ndarray, side: int) -> np.ndarray:
    """(P, n) pixel coordinates -> (P, n, side) float32 bilinear sampling matrices (a
    coordinate outside the picture takes its edge)."""
    coords = np.clip(coords, 0, side - 1)
    lo = np.minimum(np.floor(coords).astype(int), side - 2)
    w = (coords - lo).astype(np.float32)
    out = np.zeros((*coords.shape, side), np.float32)
    p, n = np.indices(coords.shape)
    out[p, n, lo] = 1 - w
    out[p, n, lo + 1] += w
    return out


def _crops(
    a: np.ndarray, b: np.ndarray, which: np.ndarray, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """a's zoomed central crop and b's window at each pair's zoom (P,) and shift (P, 2),
    (P, inner^2) each;
    a fractional shift is split between the two, so both are smoothed alike."""
    p, side = a.shape[0], a.shape[1]
    s = shift_of(side)
    inner = side - 2 * s
    whole = np.round(at)
    frac = (at - whole) / 2
    i = np.arange(inner, dtype=np.float32)
    scale = which[:, None]
    out = []
    for axis in (0, 1):
        za = (i + s + 0.5 - side / 2) / scale + side / 2 - 0.5 - frac[:, axis : axis + 1]
        zb = whole[:, axis : axis + 1] + i + frac[:, axis : axis + 1]
        out.append((_sampler(za, side), _sampler(zb, side)))
    (ay, by), (ax, bx) = out
    crops = ay @ a @ ax.transpose(0, 2, 1)
    windows = by @ b @ bx.transpose(0, 2, 1)
    return crops.reshape(p, -1), windows.reshape(p, -1)


def blurred(x: np.ndarray) -> np.ndarray:
    """(P, side, side) float32 smoothed by a [1 2 1]/4 kernel each way, SMOOTH_PASSES times
    (edges repeated) when side >= SMOOTH_FROM: a fine texture's sub-pixel misalignment then
    counts less. Smaller pictures stay sharp (measured: a digit's stroke, smoothed, looks
    like a distinct digit's)."""
    for _ in range(SMOOTH_PASSES if x.shape[1] >= SMOOTH_FROM else 0):
        x = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = (x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]) / 4
        x = (x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]) / 4
    return x


def _block_residual(crop: np.ndarray, other: np.ndarray, mask: np.ndarray, side: int) -> np.ndarray:
    """(P, inner^2) x3 -> the largest block mean of other - (gain x crop + offset), fitted
    over the mask, in units of other's contrast (inf where the mask is mostly empty)."""
    p, inner = crop.shape[0], side - 2 * shift_of(side)
    m = mask.sum(axis=1).clip(min=1)
    ma = (crop * mask).sum(axis=1) / m
    mb = (other * mask).sum(axis=1) / m
    da, db = (crop - ma[:, None]) * mask, (other - mb[:, None]) * mask
    gain = (da * db).sum(axis=1) / np.maximum((da * da).sum(axis=1), 1e-6)
    spread = np.maximum(np.sqrt((db * db).sum(axis=1) / m), 1e-6)
    resid = (db - gain[:, None] * da) / spread[:, None]
    r = side // 8
    n = inner // r
    used = n * r
    resid = resid.reshape(p, inner, inner)[:, :used, :used]
    mask = mask.reshape(p, inner, inner)[:, :used, :used]
    blocks = resid.reshape(p, n, r, n, r).sum(axis=(2, 4))
    counts = mask.reshape(p, n, r, n, r).sum(axis=(2, 4))
    score = np.abs(blocks / np.maximum(counts, r * r / 2))
    local = (db / spread[:, None]).reshape(p, inner, inner)[:, :used, :used]
    local = local.reshape(p, n, r, n, r).std(axis=(2, 4))
    score = score / np.maximum(local, LOCAL_FLOOR)
    score = score.max(axis=(1, 2))
    score[m < inner * inner // 4] = np.inf
    return score


def residual_scores(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, side, side) float32 x2 -> (best NCC, residual score) of a against b (see the
    module's docstring; 0 = the same picture, inf = mostly saturated, no verdict): the
    better of the whole-pixel shift and the sub-pixel one."""
    side = a.shape[1]
    sa, sb = blurred(a), blurred(b)
    ncc, zoom, at = _aligned(sa, sb)
    score = np.full(len(a), np.inf, np.float32)
    for shift in (np.round(at), at):
        crop, other = _crops(a, b, zoom, shift)
        mask = (crop < SATURATED) & (other < SATURATED)
        crop, other = _crops(sa, sb, zoom, shift)
        score = np.minimum(score, _block_residual(crop, other, mask, side))
    return ncc, score
