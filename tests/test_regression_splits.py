"""A regression split honours --val and --test as a class split does (120 images, --val 0.2
--test 0.2: 72/24/24), while still stratified on the target's quantile bins."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from cnncli.datasets.labels import LabelRow
from cnncli.datasets.splits import assign_splits
from cnncli.datasets.stratify import regression_splits
from cnncli.errors import DatasetError


def rows(values):
    return [LabelRow(f"{i}", f"{i}", [float(v)], "", None, 0) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "n, val, test",
    [(120, 0.2, 0.2), (37, 0.2, 0.2), (100, 0.15, 0.1), (10, 0.2, 0.2), (250, 0.1, 0.3)],
)
def test_the_split_sizes_are_the_fractions_of_the_whole_set(n, val, test):
    values = np.random.default_rng(n).normal(7.0, 2.0, n)
    got = Counter(regression_splits(rows(values), val, test, seed=0))
    # a classification split of as many images in one class gives the same sizes
    want = Counter(
        assign_splits(
            [LabelRow(f"{i}", f"{i}", 0, "", None, 0) for i in range(n)], ["only"], val, test, 0
        )
    )
    assert got == want
    if n == 120:
        assert (got["train"], got["val"], got["test"]) == (72, 24, 24)


def test_still_stratified_and_seeded():
    values = np.linspace(0, 100, 120)
    splits = regression_splits(rows(values), 0.2, 0.2, seed=0)
    for part in ("val", "test"):
        picked = values[[s == part for s in splits]]
        per_decile = np.histogram(picked, bins=10, range=(0, 100.001))[0]
        assert per_decile.min() >= 2 and per_decile.max() <= 3, per_decile  # 24 over 10 bins
    assert regression_splits(rows(values), 0.2, 0.2, seed=0) == splits
    assert regression_splits(rows(values), 0.2, 0.2, seed=1) != splits
    with pytest.raises(DatasetError, match="2 images are too few for --val 0.2 and --test 0.2"):
        regression_splits(rows([1.0, 2.0]), 0.2, 0.2, seed=0)
