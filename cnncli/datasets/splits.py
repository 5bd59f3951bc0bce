"""The train/val/test split of a dataset: stratified by class and reproducible, so the same
inputs and seed give the same split (and a byte-identical manifest and index)."""

from __future__ import annotations

import math

import numpy as np

from cnncli.datasets.labels import LabelRow
from cnncli.errors import DatasetError


def _split_count(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, math.floor(fraction * n + 0.5))


def assign_splits(rows: list[LabelRow], class_names: list[str], val: float, test: float,
                  seed: int) -> list[str]:  # fmt: skip
    """Stratified, reproducible split: each class shuffled with its own seeded generator."""
    splits = ["train"] * len(rows)
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_class.setdefault(r.label, []).append(i)
    too_small = []
    for label, members in sorted(by_class.items()):
        n = len(members)
        n_val, n_test = _split_count(val, n), _split_count(test, n)
        if n - n_val - n_test < 1:
            too_small.append((class_names[label], n, n_val + n_test + 1))
            continue
        order = np.random.default_rng([seed, label]).permutation(n)
        for k, pos in enumerate(order):
            if k < n_test:
                splits[members[pos]] = "test"
            elif k < n_test + n_val:
                splits[members[pos]] = "val"
    if too_small:
        name, n, need = too_small[0]
        more = f" (and {len(too_small) - 1} more classes)" if len(too_small) > 1 else ""
        raise DatasetError(
            f"class {name!r} has {n} image{'s' * (n != 1)}, too few for --val {val} and "
            f"--test {test}: it needs at least {need}{more}",
            "add images, lower --val/--test, or give a split column with --split-col",
        )
    return splits
