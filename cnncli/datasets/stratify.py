"""Seeded, reproducible splits for the multilabel and regression tasks.

- multilabel: iterative stratification (Sechidis, Tsoumakas and Vlahavas 2011, the greedy
  form): the label with the fewest rows left is placed first, each of its rows going to the
  split that still wants that label most (then the split that wants the most rows), so
  every label reaches every split where its count allows; rows are visited in a seeded
  order. Rows without a label fill the splits by size. A label too rare to reach every
  split is said in a note.
- regression: stratified on quantile bins of the first target (up to 10 bins of about ten
  rows or more); the split sizes are the whole set's (as a class split's), shared among
  the bins in proportion to their sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from cnncli.datasets.labels import LabelRow
from cnncli.datasets.splits import split_count
from cnncli.errors import DatasetError

ORDER = ("train", "val", "test")
MAX_BINS = 10
ROWS_PER_BIN = 10


def label_wants(n: int, val: float, test: float) -> dict[str, int]:
    """How many of a label's `n` rows each split wants: val and test as a class's split
    (at least one each where asked), train keeping at least one."""
    n_val, n_test = split_count(val, n), split_count(test, n)
    while n - n_val - n_test < 1 and (n_val or n_test):
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def multilabel_splits(
    rows: list[LabelRow], label_names: list[str], val: float, test: float, seed: int
) -> tuple[list[str], list[str]]:
    """(split of each row, notes on labels that could not reach every split)."""
    n = len(rows)
    fractions = {"train": 1.0 - val - test, "val": val, "test": test}
    active = [s for s in ORDER if fractions[s] > 0]
    rank = np.empty(n, dtype=np.int64)
    rank[np.random.default_rng([seed, 104729]).permutation(n)] = np.arange(n)
    labels_of = [[k for k, v in enumerate(cast(list, r.label)) if v] for r in rows]
    members: list[list[int]] = [[] for _ in label_names]
    for i in sorted(range(n), key=lambda i: rank[i]):
        for k in labels_of[i]:
            members[k].append(i)
    want = [label_wants(len(m), val, test) for m in members]
    want_total = {s: fractions[s] * n for s in active}
    left = [len(m) for m in members]
    splits: list[str | None] = [None] * n

    def place(i: int, split: str) -> None:
        splits[i] = split
        want_total[split] -= 1
        for k in labels_of[i]:
            want[k][split] -= 1
            left[k] -= 1

    while any(left):
        label = min((k for k in range(len(left)) if left[k]), key=lambda k: (left[k], k))
        for i in members[label]:
            if splits[i] is None:
                place(
                    i, max(active, key=lambda s: (want[label][s], want_total[s], -ORDER.index(s)))
                )
    for i in sorted(range(n), key=lambda i: rank[i]):
        if splits[i] is None:
            place(i, max(active, key=lambda s: (want_total[s], -ORDER.index(s))))
    return [str(s) for s in splits], _reach_notes(labels_of, splits, label_names, active)


def _reach_notes(labels_of, splits, label_names, active) -> list[str]:
    notes = []
    for k, name in enumerate(label_names):
        where = {splits[i] for i, labels in enumerate(labels_of) if k in labels}
        missing = [s for s in active if s not in where]
        if missing:
            total = sum(1 for labels in labels_of if k in labels)
            notes.append(
                f"label {name!r} ({total} rows) cannot reach every split: "
                f"none in {' or '.join(missing)}"
            )
    return notes


def regression_splits(rows: list[LabelRow], val: float, test: float, seed: int) -> list[str]:
    """Each row's split, stratified on quantile bins of the first target. The split sizes
    are those of the whole set (--val 0.2 of 120 rows: 24), as a class split gives them;
    each bin gets its share of them, the leftover rows going to the bins whose share was
    cut most (ties in a seeded order), and keeps a training row."""
    values = np.array([cast(list, r.label)[0] for r in rows], dtype=np.float64)
    n = len(values)
    n_val, n_test = split_count(val, n), split_count(test, n)
    if n - n_val - n_test >= 1:
        for bins in range(min(MAX_BINS, max(1, n // ROWS_PER_BIN)), 0, -1):
            edges: np.ndarray | list = (
                np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]) if n else []
            )
            groups = np.searchsorted(edges, values, side="right")
            members = [np.flatnonzero(groups == b) for b in range(bins)]
            sizes = [len(m) for m in members]
            order = np.random.default_rng([seed, 7919]).permutation(bins)
            q_test, q_val = shares(sizes, n_test, order), shares(sizes, n_val, order[::-1])
            if all(s - t - v >= 1 for s, t, v in zip(sizes, q_test, q_val, strict=True) if s):
                return _place_bins(n, members, q_test, q_val, seed)
    raise DatasetError(
        f"{n} image{'s' * (n != 1)} are too few for --val {val} and --test {test}",
        "add images, or lower --val/--test",
    )


def shares(sizes: list[int], total: int, order: Sequence[int] | np.ndarray) -> list[int]:
    """`total` rows shared among bins of `sizes` in proportion (largest remainder: whole
    shares first, the rest one each to the largest fractions, ties in `order`)."""
    whole = sum(sizes)
    if not whole:
        return [0] * len(sizes)
    exact = [total * s / whole for s in sizes]
    out = [int(np.floor(e)) for e in exact]
    rank = {b: k for k, b in enumerate(order)}
    extra = sorted(range(len(sizes)), key=lambda b: (out[b] - exact[b], rank[b]))
    for b in extra[: total - sum(out)]:
        out[b] += 1
    return out


def _place_bins(n: int, members, q_test: list[int], q_val: list[int], seed: int) -> list[str]:
    splits = ["train"] * n
    for b, rows in enumerate(members):
        order = np.random.default_rng([seed, b]).permutation(len(rows))
        for k, pos in enumerate(order):
            if k < q_test[b]:
                splits[rows[pos]] = "test"
            elif k < q_test[b] + q_val[b]:
                splits[rows[pos]] = "val"
    return splits
