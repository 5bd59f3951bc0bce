"""--find-lr's suggestion is sane for every task and loss scale: never the noise of the
sweep's first steps (a regression's batches differ a lot whatever the rate: it suggested
1.1e-07, where training learns nothing), the same rate when the loss is scaled, and none,
with the reason, when the loss shows no clear fall."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.training.find_lr import END_LR, START_LR, no_fall_reason, smooth, suggest


def sweep(seed=0, noise=0.3, steps=200):
    """A regression-like sweep: the loss (standardized MSE about 1) jumps from batch to
    batch by `noise` while the rate is too small to matter, falls between 1e-4 and 3e-2,
    then diverges."""
    rng = np.random.default_rng(seed)
    lrs = START_LR * (END_LR / START_LR) ** (np.arange(steps) / (steps - 1))
    t = np.clip((np.log10(lrs) + 4) / (np.log10(3e-2) + 4), 0, 1)
    loss = 1.0 - 0.7 * t + noise * rng.standard_normal(steps) * (1 - 0.8 * t)
    loss[lrs > 0.3] += 50 * (lrs[lrs > 0.3] - 0.3)
    return lrs.tolist(), loss.tolist()


@pytest.mark.parametrize("seed", range(12))
def test_the_suggestion_is_in_the_fall_not_the_first_steps_noise(seed):
    lrs, loss = sweep(seed)
    lr = suggest(lrs, smooth(loss))
    assert lr is not None and 1e-4 <= lr <= 3e-2, lr


def test_the_same_rate_on_every_loss_scale():
    lrs, loss = sweep(3)
    picks = {suggest(lrs, smooth([v * scale for v in loss])) for scale in (1e-3, 1.0, 1e3)}
    assert len(picks) == 1 and None not in picks


def test_no_clear_fall_no_suggestion_and_why():
    lrs, _ = sweep()
    flat = (1.0 + 0.02 * np.random.default_rng(1).standard_normal(len(lrs))).tolist()
    assert suggest(lrs, smooth(flat)) is None
    reason = no_fall_reason(smooth(flat))
    assert reason is not None and reason.startswith("the smoothed loss fell only from 1")
    assert reason.endswith("(less than 5%) over the sweep")
