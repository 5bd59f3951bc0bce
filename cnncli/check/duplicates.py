"""Duplicate pictures in a dataset: exact (the same pixels after the build's conversion) and
near (the same photo re-encoded, resized, shifted or cropped by a few pixels, brighter or
darker, with a little noise).

How near duplicates are found, in memory that grows with the images, never with their pairs:
1. each image becomes a small "working" picture: grey, WORK x WORK pixels (area resize),
   stored as uint8 (1 kB an image);
2. candidates: each working picture's descriptor (the log magnitudes of its lowest
   spatial frequencies, which a shift of a few pixels leaves almost unchanged; brightness
   and contrast removed; centred on the dataset's mean) compared with every other by
   cosine similarity, a block of rows at a time (BLOCK_CELLS similarities, 8 MB, whatever
   the number of images); each image keeps its NEAREST most similar, and up to NEIGHBOURS
   above CANDIDATE_SIMILARITY;
3. verification of each candidate pair: the central (WORK - 2 SHIFT)^2 crop of one is
   aligned with the other's crops shifted by up to SHIFT pixels each way (the best
   normalized cross-correlation), the other is fitted as gain x crop + offset over the
   pixels saturated in neither (a brightened photo clips), and the residual is averaged
   over RESIDUAL_BLOCK^2 blocks (noise and JPEG average out, a different stroke does not).
   A pair is a near duplicate when no block differs by more than NEAR_RESIDUAL of the
   picture's contrast, in the better direction. Measured (bench/bench_check.py): on
   sklearn's digits at 32x32, planted copies (JPEG, resized, shifted 1-2 px, brightness
   x0.8-1.25, noise) score at most 0.07, the closest distinct digits of one class 0.24;
   copies of the 128x128 façade photos re-encoded, resized or brightened score up to
   0.15. A finely textured photo shifted or cropped by a fraction of a working pixel
   (3 px of 128) mostly is not found: its texture no longer lines up at 32x32.
Pairs are joined into groups (connected components).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

WORK = 32  # working picture side
SHIFT = 4  # pixels of shift tried each way in the verification (at WORK)
FREQ = 4  # the candidate descriptor: spectrum magnitudes of the FREQ lowest frequencies
BLOCK_CELLS = 2_000_000  # similarities computed at once (8 MB), whatever the images
NEIGHBOURS = 8  # candidates kept per image above CANDIDATE_SIMILARITY
NEAREST = 2  # candidates kept per image whatever their similarity
CANDIDATE_SIMILARITY = 0.8  # descriptor cosine similarity of a candidate
ALIGNED_SIMILARITY = 0.9  # normalized cross-correlation at the best shift, to go on
SATURATED = 250  # pixels this bright in either picture are left out of the comparison
RESIDUAL_BLOCK = 4  # the residual is averaged over RESIDUAL_BLOCK^2 pixel blocks
NEAR_RESIDUAL = 0.16  # a near duplicate: no block differs by more (in contrast units)
PAIR_BATCH = 256  # candidate pairs verified at once


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of an image's decoded pixels and shape: equal for exact duplicates."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return h.hexdigest()


def working_image(image: np.ndarray) -> np.ndarray:
    """One H x W x C (or H x W) uint8 image -> its WORK x WORK grey uint8 picture."""
    from PIL import Image

    grey = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image
    pic = Image.fromarray(np.uint8(np.clip(grey + 0.5, 0, 255)), "L")
    return np.asarray(pic.resize((WORK, WORK), Image.Resampling.BOX), dtype=np.uint8)


def working_images(images: Iterable[np.ndarray]) -> np.ndarray:
    """N images -> (N, WORK, WORK) uint8 working pictures."""
    out = [working_image(im) for im in images]
    return np.stack(out) if out else np.zeros((0, WORK, WORK), np.uint8)


def _normalized(x: np.ndarray) -> np.ndarray:
    """Rows (..., D) with mean 0 and norm 1 (a constant row stays 0)."""
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-6)


def descriptors(work: np.ndarray) -> np.ndarray:
    """(N, WORK, WORK) -> (N, D) float32 unit vectors: the log magnitudes of the lowest
    spatial frequencies, which a shift of a few pixels leaves almost unchanged; mean
    brightness (the zero frequency's own row is centred away) and contrast (a constant
    in log space, removed with the mean) do not count; centred on the dataset's mean."""
    parts = []
    for start in range(0, len(work), PAIR_BATCH * 4):  # a chunk at a time: FFTs are 30 kB each
        x = work[start : start + PAIR_BATCH * 4].astype(np.float32)
        spectrum = np.abs(np.fft.rfft2(x - x.mean(axis=(1, 2), keepdims=True)))
        parts.append(
            np.concatenate(
                [
                    spectrum[:, :FREQ, :FREQ].reshape(len(x), -1),
                    spectrum[:, -FREQ + 1 :, :FREQ].reshape(len(x), -1),
                ],
                axis=1,
            ).astype(np.float32)
        )
    low = np.concatenate(parts) if parts else np.zeros((0, (2 * FREQ - 1) * FREQ), np.float32)
    low = np.log1p(low)
    # the spectral envelope all pictures share (smoothness) would make every pair similar:
    # what counts is each picture's departure from the dataset's mean
    return _normalized(low - low.mean(axis=0)).astype(np.float32)


def candidate_pairs(desc: np.ndarray) -> np.ndarray:
    """(P, 2) index pairs i < j: each image's NEAREST most similar others, and up to
    NEIGHBOURS above CANDIDATE_SIMILARITY, found BLOCK_CELLS similarities at a time (no
    N x N matrix)."""
    n = len(desc)
    k = min(NEIGHBOURS, n - 1)
    block = max(1, BLOCK_CELLS // max(n, 1))
    found = []
    for start in range(0, n if k > 0 else 0, block):
        sims = desc[start : start + block] @ desc.T  # (block, N)
        rows = np.arange(start, min(start + block, n))
        sims[rows - start, rows] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        rank = np.argsort(np.argsort(-top_sims, axis=1), axis=1)
        ok = (top_sims >= CANDIDATE_SIMILARITY) | (rank < NEAREST)
        i = np.broadcast_to(rows[:, None], top.shape)[ok]
        j = top[ok]
        found.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _residual(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, WORK, WORK) float32 x2 -> (best NCC, residual score) of a's central crop against
    b's crops shifted up to SHIFT pixels. The score: at the best shift, b fitted by
    gain * a + offset over the pixels saturated in neither, then the largest mean residual
    of a RESIDUAL_BLOCK^2 block, in units of b's contrast (0 = the same picture)."""
    p, side = len(a), WORK - 2 * SHIFT
    crop = a[:, SHIFT:-SHIFT, SHIFT:-SHIFT]
    centred = _normalized(crop.reshape(p, -1)).reshape(crop.shape)
    # each shifted window's norm about its mean, from sums over the window (integral images)
    sums = np.pad(b, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    squares = np.pad(b * b, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    shifts = [(dy, dx) for dy in range(2 * SHIFT + 1) for dx in range(2 * SHIFT + 1)]
    ncc = np.empty((p, len(shifts)), np.float32)
    for k, (dy, dx) in enumerate(shifts):
        window = b[:, dy : dy + side, dx : dx + side]
        total = (
            sums[:, dy + side, dx + side]
            - sums[:, dy, dx + side]
            - sums[:, dy + side, dx]
            + sums[:, dy, dx]
        )
        total2 = (
            squares[:, dy + side, dx + side]
            - squares[:, dy, dx + side]
            - squares[:, dy + side, dx]
            + squares[:, dy, dx]
        )
        norm = np.sqrt(np.maximum(total2 - total * total / (side * side), 1e-6))
        ncc[:, k] = np.einsum("pij,pij->p", window, centred) / norm
    best = ncc.argmax(axis=1)
    crop = crop.reshape(p, -1)
    at = [shifts[k] for k in best]
    other = np.stack([b[i, dy : dy + side, dx : dx + side] for i, (dy, dx) in enumerate(at)])
    other = other.reshape(p, -1)
    mask = (crop < SATURATED) & (other < SATURATED)
    m = mask.sum(axis=1).clip(min=1)
    ma = (crop * mask).sum(axis=1) / m
    mb = (other * mask).sum(axis=1) / m
    da, db = (crop - ma[:, None]) * mask, (other - mb[:, None]) * mask
    gain = (da * db).sum(axis=1) / np.maximum((da * da).sum(axis=1), 1e-6)
    spread = np.maximum(np.sqrt((db * db).sum(axis=1) / m), 1e-6)
    resid = (db - gain[:, None] * da) / spread[:, None]
    r, n = RESIDUAL_BLOCK, side // RESIDUAL_BLOCK
    blocks = resid.reshape(p, n, r, n, r).sum(axis=(2, 4))
    counts = mask.reshape(p, n, r, n, r).sum(axis=(2, 4))
    score = np.abs(blocks / np.maximum(counts, r * r / 2)).max(axis=(1, 2))
    score[mask.sum(axis=1) < side * side // 4] = np.inf  # mostly saturated: no verdict
    return ncc.max(axis=1), score


def pair_scores(work: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The residual score of each candidate pair, the better of its two directions
    (inf where the aligned correlation is below ALIGNED_SIMILARITY)."""
    out = np.full(len(pairs), np.inf, np.float32)
    for s in range(0, len(pairs), PAIR_BATCH):
        p = pairs[s : s + PAIR_BATCH]
        a = work[p[:, 0]].astype(np.float32)
        b = work[p[:, 1]].astype(np.float32)
        for x, y in ((a, b), (b, a)):
            ncc, score = _residual(x, y)
            score[ncc < ALIGNED_SIMILARITY] = np.inf
            out[s : s + len(p)] = np.minimum(out[s : s + len(p)], score)
    return out


def near_duplicate_pairs(work: np.ndarray) -> list[tuple[int, int, float]]:
    """(i, j, residual score) of every near-duplicate pair among working pictures;
    constant pictures (blank images: reported on their own) are never paired."""
    flat = work.reshape(len(work), -1)
    plain = flat.max(axis=1).astype(int) - flat.min(axis=1) < 8
    pairs = candidate_pairs(descriptors(work))
    if len(pairs):
        pairs = pairs[~(plain[pairs[:, 0]] | plain[pairs[:, 1]])]
    scores = pair_scores(work, pairs)
    keep = scores <= NEAR_RESIDUAL
    return [(int(i), int(j), float(s)) for (i, j), s in zip(pairs[keep], scores[keep], strict=True)]


def groups_of(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (of 2 or more) of `pairs` among n items, each sorted, in order
    of their first item."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])


def exact_groups(hashes: list[str]) -> list[list[int]]:
    """Groups of 2 or more indices with the same pixel hash, in order of first image."""
    by: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        by.setdefault(h, []).append(i)
    return sorted((m for m in by.values() if len(m) > 1), key=lambda m: m[0])
