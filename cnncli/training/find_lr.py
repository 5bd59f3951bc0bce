"""`cnncli train DATA --find-lr`: a short learning-rate sweep, as fastai's lr_find. The run's
model trains on the train split with the rate growing exponentially each step (1e-7 to 10,
at most MAX_STEPS steps, fewer for a small dataset: FIND_EPOCHS passes over it), stopping
when the loss has grown 4 times past its best; the weights are put back afterwards. The
suggested --lr is where the smoothed loss falls fastest (the steepest descent on a log
scale, before the loss's minimum). Writes the loss-vs-rate picture; no run folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from cnncli.errors import InputError

MAX_STEPS, MIN_STEPS, FIND_EPOCHS = 200, 10, 5
START_LR, END_LR, SMOOTHING, DIVERGED = 1e-7, 10.0, 0.9, 4.0


@dataclass
class LrSweep:
    """What --find-lr found: the rates tried, the loss at each (raw and smoothed), the
    suggested rate and the picture written."""

    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    suggested_lr: float | None = None
    min_loss_lr: float | None = None
    stopped: str = "end"  # "end" or "diverged"
    plot: str | None = None
    weights_restored: bool = False
    planned_steps: int = 0

    def to_dict(self) -> dict:
        return {"suggested_lr": self.suggested_lr, "min_loss_lr": self.min_loss_lr,
                "steps": len(self.lrs), "planned_steps": self.planned_steps,
                "stopped": self.stopped, "plot": self.plot,
                "weights_restored": self.weights_restored, "lrs": self.lrs,
                "losses": self.losses}  # fmt: skip


def sweep_steps(train_count: int, batch_size: int) -> int:
    """FIND_EPOCHS passes over the train split, between MIN_STEPS and MAX_STEPS."""
    per_epoch = max(1, -(-train_count // batch_size))
    return max(MIN_STEPS, min(MAX_STEPS, FIND_EPOCHS * per_epoch))


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction (fastai's)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The rate of the steepest fall of the smoothed loss (per log10 of the rate), looked
    for before the loss's minimum; None when the loss never falls."""
    if len(lrs) < 3:
        return None
    end = min(range(len(smoothed)), key=smoothed.__getitem__)
    if end < 2:
        return None
    logs = [math.log10(x) for x in lrs[: end + 1]]
    slopes = [(smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
              for i in range(1, end)]  # fmt: skip
    i = min(range(len(slopes)), key=slopes.__getitem__)
    return float(lrs[i + 1]) if slopes[i] < 0 else None


def find_lr(net, train_ds, steps: int, out_png: Path, progress=None) -> LrSweep:
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
        raise InputError("the loss was not finite at any learning rate of the sweep",
                         "check the dataset's labels and the model")  # fmt: skip
    lrs, losses = (list(t) for t in zip(*finite, strict=True))
    result.smoothed = smooth(losses)
    result.suggested_lr = suggest(lrs, result.smoothed)
    result.min_loss_lr = float(lrs[min(range(len(lrs)), key=result.smoothed.__getitem__)])
    result.plot = str(plot_lr_sweep(lrs, losses, result.smoothed, result.suggested_lr, out_png))
    return result


def run_find_lr(dataset_dir, out_png, source, opts, overwrite: bool = False,
                progress=None) -> LrSweep:  # fmt: skip
    """`cnncli train DATA --find-lr`: the checks first (options, model source, dataset, the
    picture's path), then the model of the run and the sweep on its train split."""
    import os

    from cnncli.datasets.store import open_dataset
    from cnncli.errors import OutputExistsError

    opts.check()
    info = open_dataset(dataset_dir)
    if info.count("train") == 0:
        raise InputError(f"dataset {info.path} has no training images",
                         "build it with a train split")  # fmt: skip
    from dataclasses import replace

    from cnncli.training.recipes import apply_recipe

    opts, source, _ = apply_recipe(opts, info, source)  # the sweep: at constant rates,
    opts = replace(opts, lr_schedule="constant", ema=0.0,  # on plain labels
                   label_smoothing=0.0).for_dataset(info)  # fmt: skip
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
    ds = make_tf_dataset(info, "train", batch_size=opts.batch_size, shuffle=True,
                         seed=opts.seed, repeat=True, cache=opts.cache)  # fmt: skip
    return find_lr(net, ds, steps, out_png, progress)
