"""The fast recipe's length fitted to the data: once the accuracy it watches (val accuracy
where the dataset has a val split, else the training accuracy) has been perfect for
SATURATED_EPOCHS epochs in a row, there is nothing left on it to gain, so the one-cycle
rate is re-planned to end ANNEAL_EPOCHS later (never before the recipe's least epochs):
the rate falls to its floor, the weight average lands at the new last step, and the run
finishes there, with run.json's epochs (and a resume) set to the new total.

Only where the recipe chose the epochs (no --epochs given) for a classifier with the
one-cycle rate; the 40 façade sample photos are perfect from epoch 3, so the default
trains 8 epochs there, not 30 (bench/bench_recipe.py --only facade).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import keras

from cnncli.training.model import replan_optimizer
from cnncli.training.recipes import SATURATION_KEY

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.training.callbacks import RunFolderCallback
    from cnncli.training.events import TrainEvents
    from cnncli.training.options import TrainOptions

SATURATED_EPOCHS = 3  # epochs in a row at a perfect accuracy
ANNEAL_EPOCHS = 2  # the rate falls to its floor over this many epochs after that


class Saturation(keras.callbacks.Callback):
    """Watches `metric` at each epoch end; when saturated, re-plans the run to end at
    max(epoch + ANNEAL_EPOCHS, least) and calls on_replan(new total, what to say)."""

    def __init__(self, opts, info, metric: str, least: int, on_replan):
        super().__init__()
        self.opts, self.info, self.metric, self.least = opts, info, metric, least
        self.on_replan = on_replan
        self.perfect = 0
        self.end: int | None = None

    def on_epoch_end(self, epoch, logs=None) -> None:
        done = epoch + 1
        if self.end is not None:
            if done >= self.end:
                self.model.stop_training = True
            return
        value = (logs or {}).get(self.metric)
        self.perfect = self.perfect + 1 if value is not None and value >= 1.0 else 0
        if self.perfect < SATURATED_EPOCHS:
            return
        end = max(done + ANNEAL_EPOCHS, self.least)
        if end >= int(self.opts.epochs):
            return
        planned, self.end = int(self.opts.epochs), end
        replan_optimizer(self.model.optimizer, replace(self.opts, epochs=end), self.info)
        # the rate and the average's last step are constants of the traced train step:
        # trace it again (a compile, once) so the epochs left train on the new plan
        self.model.make_train_function(force=True)
        self.on_replan(
            end,
            f"{self.metric} 1.0 for {SATURATED_EPOCHS} epochs (epochs "
            f"{done - SATURATED_EPOCHS + 1}-{done}): the one-cycle rate now ends at epoch "
            f"{end} instead of {planned}, where the weight average lands",
        )


def saturation_callback(
    run: dict,
    opts: TrainOptions,
    info: DatasetInfo,
    events: TrainEvents | None,
    folder: RunFolderCallback,
    initial_epoch: int,
) -> Saturation | None:
    """The Saturation watch of a run whose recipe asks for it (None otherwise): it updates
    opts.epochs, run.json's options and the epochs the run folder reports, and says so."""
    assert opts.epochs is not None  # for_dataset filled it in; run_callbacks relies on it too
    settings = (run.get("recipe") or {}).get("settings") or {}
    planned = settings.get("epochs")
    if not settings.get(SATURATION_KEY) or opts.epochs != planned or initial_epoch >= planned:
        return None  # not asked for, or --epochs changed the total on a resume
    metric = "val_accuracy" if info.count("val") else "accuracy"

    def on_replan(end: int, text: str) -> None:
        opts.epochs = end
        folder.epochs = end
        run["options"]["epochs"] = end
        run["recipe"]["saturated"] = text
        if events is not None:
            events.note(text)

    return Saturation(opts, info, metric, int(settings["least_epochs"]), on_replan)
