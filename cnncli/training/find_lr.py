"""`cnncli train DATA --find-lr`: a short learning-rate sweep, as fastai's lr_find. The run's
model trains on the train split with the rate growing exponentially each step (1e-7 to 10,
at most MAX_STEPS steps, fewer for a small dataset: FIND_EPOCHS passes over it), stopping
when the loss has grown 4 times past its best; the weights are put back afterwards. The
suggested --lr is where the smoothed loss falls fastest (the steepest descent on a log
scale), looked for between where it has begun to fall (a tenth of its fall below its first
level: not the noise of the first steps) and its minimum; a fall under 5% is no clear fall,
and then there is no suggestion and the reason is said. Writes the loss-vs-rate picture;
no run folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli.errors import InputError

if TYPE_CHECKING:
    from cnncli.training.options import ModelSource, TrainOptions

MAX_STEPS, MIN_STEPS, FIND_EPOCHS = 200, 10, 5
# fastai sweeps 100 steps. Below 50 the smoothing (a memory of about 10 steps) lags the rate
# by more than 1.5 of the 8 decades swept, and a few batches are seen again and again: the
# suggestion is a guess, and the sweep says so.
TRUSTED_STEPS = 50
START_LR, END_LR, SMOOTHING, DIVERGED = 1e-7, 10.0, 0.9, 4.0
MIN_FALL, FALL_BEGUN = 0.05, 0.1  # a clear fall: 5% of the loss; it has begun at 10% of it
SLOPE_DECADES = 0.5  # the span of rates a slope is measured across


@dataclass
class LrSweep:
    """What --find-lr found: the rates tried, the loss at each (raw and smoothed), the
    suggested rate and the picture written."""

    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    suggested_lr: float | None = None
    no_suggestion: str | None = None  # why there is none (no clear fall of the loss)
    min_loss_lr: float | None = None
    stopped: str = "end"  # "end" or "diverged"
    plot: str | None = None
    weights_restored: bool = False
    planned_steps: int = 0
    warning: str | None = None  # too few steps to trust the suggestion: what to do

    def to_dict(self) -> dict:
        return {
            "suggested_lr": self.suggested_lr,
            "no_suggestion": self.no_suggestion,
            "min_loss_lr": self.min_loss_lr,
            "steps": len(self.lrs),
            "planned_steps": self.planned_steps,
            "stopped": self.stopped,
            "plot": self.plot,
            "weights_restored": self.weights_restored,
            "warning": self.warning,
            "lrs": self.lrs,
            "losses": self.losses,
        }


def sweep_steps(train_count: int, batch_size: int) -> int:
    """FIND_EPOCHS passes over the train split, between MIN_STEPS and MAX_STEPS."""
    per_epoch = max(1, -(-train_count // batch_size))
    return max(MIN_STEPS, min(MAX_STEPS, FIND_EPOCHS * per_epoch))


def sweep_warning(train_count: int, batch_size: int, steps: int) -> str | None:
    """What to say when a sweep of `steps` (over `train_count` images in batches of
    `batch_size`) has too few steps to trust its suggestion (TRUSTED_STEPS), else None."""
    if steps >= TRUSTED_STEPS:
        return None
    per_pass = -(-TRUSTED_STEPS // FIND_EPOCHS)  # batches a pass needs
    batches = max(1, -(-train_count // batch_size))
    smaller = -(-train_count // (per_pass - 1)) - 1  # the largest batch size giving that many
    if smaller >= 1:
        fix = f"use --batch-size {smaller}{' or smaller' * (smaller > 1)}, or add training images"
    else:
        fix = f"add training images (at least {per_pass} at --batch-size 1)"
    return (
        f"the sweep had only {steps} steps ({train_count} training images: {batches} "
        f"batch{'es' * (batches > 1)} of up to {batch_size} a pass), too few to trust its "
        f"suggestion (it wants {TRUSTED_STEPS}): {fix}, or choose --lr yourself"
    )


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction (fastai's)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The rate of the steepest fall of the smoothed loss (per log10 of the rate, measured
    across SLOPE_DECADES of rates so that batch-to-batch noise averages out), looked for
    where the loss has begun to fall and up to its minimum; None when the sweep shows no
    clear fall (`no_fall_reason` says why)."""
    if no_fall_reason(smoothed) is not None:
        return None
    start, end = fall_window(smoothed)
    logs = [math.log10(x) for x in lrs]
    per_step = (logs[-1] - logs[0]) / max(1, len(logs) - 1)
    h = max(1, round(SLOPE_DECADES / 2 / per_step)) if per_step > 0 else 1
    slopes = {
        i: (smoothed[i + h] - smoothed[i - h]) / (logs[i + h] - logs[i - h])
        for i in range(max(h, start), min(end, len(lrs) - 1 - h) + 1)
    }
    if not slopes:
        return float(lrs[start])
    i = min(slopes, key=slopes.__getitem__)
    return float(lrs[i]) if slopes[i] < 0 else None


def plateau(smoothed: list[float]) -> tuple[float, float]:
    """(level, spread) of the loss before the rate changes anything: the median and the
    range of the smoothed loss over the first tenth of the sweep (its first steps, where
    the average has seen few batches, left out)."""
    head = smoothed[3 : max(8, len(smoothed) // 10)] or smoothed[:3]
    ordered = sorted(head)
    return ordered[len(ordered) // 2], ordered[-1] - ordered[0]


def fall_window(smoothed: list[float]) -> tuple[int, int]:
    """(first step where the smoothed loss is clearly below its plateau: by a tenth of its
    fall and by the plateau's own spread, the step of its minimum): where the rate starts
    to help, so the noise of the first steps (a regression's batches differ a lot,
    whatever the rate) is never taken for a fall; the same on every loss scale."""
    end = min(range(len(smoothed)), key=smoothed.__getitem__)
    level, spread = plateau(smoothed)
    below = level - max(FALL_BEGUN * (level - smoothed[end]), spread)
    start = next((i for i in range(min(3, end), end + 1) if smoothed[i] <= below), end)
    return start, end


def no_fall_reason(smoothed: list[float]) -> str | None:
    """Why the sweep shows no clear fall of the loss (None: it does): too few steps, or the
    smoothed loss's lowest point less than MIN_FALL of the plateau below it."""
    if len(smoothed) < 5:
        return f"only {len(smoothed)} steps of the sweep had a finite loss"
    level, _ = plateau(smoothed)
    low = min(smoothed)
    if level - low < MIN_FALL * max(abs(level), abs(low)) or level <= low:
        return (
            f"the smoothed loss fell only from {level:.4g} to {low:.4g} (less than "
            f"{MIN_FALL:.0%}) over the sweep"
        )
    return None


def find_lr(
    net: Any,
    train_ds: Any,
    steps: int,
    out_png: Path,
    progress: Callable[[int, int], object] | None = None,
) -> LrSweep:
    """Sweep `steps` rates on the compiled model `net` over `train_ds` (a repeating
    tf.data dataset of (x, y) batches); restore the weights; draw `out_png`."""
    from cnncli.drawing.lr_plots import plot_lr_sweep

    result = LrSweep(planned_steps=steps)
    start = net.get_weights()
    opt_vars = [v.numpy() for v in net.optimizer.variables] if net.optimizer.built else None
    ratio = (END_LR / START_LR) ** (1 / max(1, steps - 1))
    best = math.inf
    batches = iter(train_ds)
    for step in range(steps):
        lr = START_LR * ratio**step
        net.optimizer.learning_rate = lr
        x, y = next(batches)[:2]
        logs = net.train_on_batch(x, y, return_dict=True)
        loss = float(logs["loss"])
        result.lrs.append(lr)
        result.losses.append(loss)
        if progress is not None:
            progress(step + 1, steps)
        if not math.isfinite(loss) or (step > 5 and loss > DIVERGED * best):
            result.stopped = "diverged"
            break
        best = min(best, loss)
    net.set_weights(start)
    if opt_vars is not None:
        for v, value in zip(net.optimizer.variables, opt_vars, strict=True):
            v.assign(value)
    result.weights_restored = all(
        (a == b).all() for a, b in zip(net.get_weights(), start, strict=True)
    )
    finite = [(a, b) for a, b in zip(result.lrs, result.losses, strict=True) if math.isfinite(b)]
    if not finite:
        raise InputError(
            "the loss was not finite at any learning rate of the sweep",
            "check the dataset's labels and the model",
        )
    lrs, losses = (list(t) for t in zip(*finite, strict=True))
    result.smoothed = smooth(losses)
    result.suggested_lr = suggest(lrs, result.smoothed)
    if result.suggested_lr is None:
        result.no_suggestion = no_fall_reason(result.smoothed) or "the loss did not fall"
    result.min_loss_lr = float(lrs[min(range(len(lrs)), key=result.smoothed.__getitem__)])
    result.plot = str(plot_lr_sweep(lrs, losses, result.smoothed, result.suggested_lr, out_png))
    return result


def run_find_lr(
    dataset_dir: str | os.PathLike,
    out_png: str | os.PathLike,
    source: ModelSource,
    opts: TrainOptions,
    overwrite: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> LrSweep:
    """`cnncli train DATA --find-lr`: the checks first (options, model source, dataset, the
    picture's path), then the model of the run and the sweep on its train split."""
    import os

    from cnncli.datasets.store import open_dataset
    from cnncli.errors import OutputExistsError

    opts.check()
    info = open_dataset(dataset_dir)
    if info.count("train") == 0:
        raise InputError(
            f"dataset {info.path} has no training images", "build it with a train split"
        )
    from dataclasses import replace

    from cnncli.training.recipes import apply_recipe

    opts, source, _ = apply_recipe(opts, info, source)  # the sweep: at constant rates,
    opts = replace(
        opts,
        lr_schedule="constant",
        ema=0.0,  # on plain labels
        label_smoothing=0.0,
    ).for_dataset(info)
    out_png = Path(out_png)
    if out_png.exists() and not overwrite:
        raise OutputExistsError(out_png)
    os.makedirs(out_png.parent or ".", exist_ok=True)
    import keras

    from cnncli.datasets.tfdata import make_tf_dataset
    from cnncli.training.model import build_model

    keras.utils.set_random_seed(opts.seed)
    net, _head = build_model(source, info, opts)
    steps = sweep_steps(info.count("train"), opts.batch_size)
    ds = make_tf_dataset(
        info,
        "train",
        batch_size=opts.batch_size,
        shuffle=True,
        seed=opts.seed,
        repeat=True,
        cache=opts.cache,
    )
    result = find_lr(net, ds, steps, out_png, progress)
    result.warning = sweep_warning(info.count("train"), opts.batch_size, steps)
    return result
