"""Duplicate pictures in a dataset: exact (the same pixels after the build's conversion) and
near (the same photo re-encoded, resized, shifted or cropped by a few pixels, brighter or
darker, with a little noise).

How near duplicates are found, in memory that grows with the images, never with their pairs:
1. each image becomes a small "working" picture: grey, side x side pixels (area resize),
   stored as uint8: 32x32 (1 kB) for images under 64 pixels, 64x64 (4 kB) for larger ones,
   so that a shift or crop of a few pixels of a fine texture (bricks) is still a shift of
   whole or half working pixels (at 32x32 it is not: measured, a brick photo shifted by
   3 px of 128 was then found 3 times in 10, cropped by 3 px never);
2. candidates: each picture's descriptor, at WORK x WORK (the log magnitudes of its lowest
   spatial frequencies, which a shift of a few pixels leaves almost unchanged; brightness
   and contrast removed; centred on the dataset's mean) compared with every other by
   cosine similarity, a block of rows at a time (BLOCK_CELLS similarities, 8 MB, whatever
   the number of images); each image keeps its NEAREST most similar, and up to NEIGHBOURS
   above CANDIDATE_SIMILARITY;
3. verification of each candidate pair at the working side (cnncli.check.align): the best
   zoom (a crop of up to ~7%) and shift (up to an eighth of the side, to a fraction of a
   pixel) of one against the other, the other fitted as gain x picture + offset, and the
   largest block residual in units of the block's own contrast (at least align.LOCAL_FLOOR of
   the picture's), in the better direction. A pair is a near duplicate when it is at most
   NEAR_RESIDUAL. The threshold, measured (bench/bench_check.py and its façade set):
   planted copies of sklearn's digits at 32x32 (JPEG, resized, shifted 1-2 px, brightness
   x0.8-1.25, noise) score at most 0.21, the closest distinct digits among 2,900 candidate
   pairs 0.47; copies of the 40 128x128 façade photos re-encoded, resized, darkened, noisy,
   shifted by 2-5 px or cropped by 2-4 px score at most 0.21, cropped by 6 px at one
   corner up to 0.44 (1 in 40 above 0.35), brightened x1.25 (white marble clips) up to
   0.77 (6 in 40 above 0.35, 1 mostly clipped: no verdict); the closest of all 19,900
   pairs of distinct pictures among the 40 photos and 160 crops of their quarters (two
   brick walls, two marble slabs) 0.44. 0.35 stays 20% under the closest distinct pair of
   both sets and finds every copy below it.
Pairs are joined into groups (connected components).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from cnncli.check.align import residual_scores, unit_rows

WORK = 32  # the candidate descriptor's picture side
LARGE_WORK = 64  # the working side of images at least this large (verification only)
FREQ = 6  # the candidate descriptor: spectrum magnitudes of the FREQ lowest frequencies
BLOCK_CELLS = 2_000_000  # similarities computed at once (8 MB), whatever the images
NEIGHBOURS = 8  # candidates kept per image above CANDIDATE_SIMILARITY
NEAREST = 2  # candidates kept per image whatever their similarity
CANDIDATE_SIMILARITY = 0.8  # descriptor cosine similarity of a candidate
ALIGNED_SIMILARITY = 0.8  # normalized cross-correlation at the best zoom and shift, to go on
NEAR_RESIDUAL = 0.35  # a near duplicate: no block differs by more (in local contrast units)
PAIR_BATCH = 256  # candidate pairs verified at once


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of an image's decoded pixels and shape: equal for exact duplicates."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return h.hexdigest()


def working_side(height: int, width: int) -> int:
    """The working picture's side for images of this size: LARGE_WORK when both sides
    reach it (a shift or crop of a few pixels of a fine texture is then still a shift of
    whole or half working pixels), else WORK."""
    return LARGE_WORK if min(height, width) >= LARGE_WORK else WORK


def working_image(image: np.ndarray, side: int = WORK) -> np.ndarray:
    """One H x W x C (or H x W) uint8 image -> its side x side grey uint8 picture."""
    from PIL import Image

    grey = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image
    pic = Image.fromarray(np.uint8(np.clip(grey + 0.5, 0, 255)), "L")
    return np.asarray(pic.resize((side, side), Image.Resampling.BOX), dtype=np.uint8)


def working_images(images: Iterable[np.ndarray], side: int | None = None) -> np.ndarray:
    """N images -> (N, side, side) uint8 working pictures (side: working_side of the first)."""
    out: list[np.ndarray] = []
    for im in images:
        side = side or working_side(im.shape[0], im.shape[1])
        out.append(working_image(im, side))
    return np.stack(out) if out else np.zeros((0, WORK, WORK), np.uint8)


def descriptors(work: np.ndarray) -> np.ndarray:
    """(N, side, side) working pictures -> (N, D) float32 unit vectors, from their WORK x WORK
    block means: the log magnitudes of the lowest spatial frequencies, which a shift of a
    few pixels leaves almost unchanged (the picture faded to its edges by a Hann window
    first, so what a shift or crop moves in or out at an edge counts little); mean
    brightness (the zero frequency's own row is centred away) and contrast (a constant in
    log space, removed with the mean) do not count; centred on the dataset's mean."""
    parts = []
    k = work.shape[1] // WORK  # larger working pictures: their WORK x WORK block means
    hann = np.hanning(WORK + 2)[1:-1].astype(np.float32)
    window = np.outer(hann, hann)
    for start in range(0, len(work), PAIR_BATCH * 4):  # a chunk at a time: FFTs are 30 kB each
        x = work[start : start + PAIR_BATCH * 4].astype(np.float32)
        x = x[:, : k * WORK, : k * WORK].reshape(len(x), WORK, k, WORK, k).mean(axis=(2, 4))
        spectrum = np.abs(np.fft.rfft2((x - x.mean(axis=(1, 2), keepdims=True)) * window))
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
    return unit_rows(low - low.mean(axis=0)).astype(np.float32)


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


def pair_scores(work: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The residual score of each candidate pair (cnncli.check.align), the better of its
    two directions (inf where the aligned correlation is below ALIGNED_SIMILARITY)."""
    out = np.full(len(pairs), np.inf, np.float32)
    for s in range(0, len(pairs), PAIR_BATCH):
        p = pairs[s : s + PAIR_BATCH]
        a = work[p[:, 0]].astype(np.float32)
        b = work[p[:, 1]].astype(np.float32)
        for x, y in ((a, b), (b, a)):
            ncc, score = residual_scores(x, y)
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
