"""The Keras callback of a trial: after every epoch (once the run folder has saved it) the
monitored metric goes to Optuna, and a trial its pruner stops ends as a finished run would,
its run.json saying "pruned" (cnncli.training.loop reads `stop_status`)."""

from __future__ import annotations

import math

import keras


class PruningCallback(keras.callbacks.Callback):
    """Reports `metric` of each epoch to an Optuna `trial`; stops training when the pruner
    says so (`pruned_at`: that epoch, 1-based)."""

    def __init__(self, trial, metric: str):
        super().__init__()
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None
        self.stop_status: str | None = None

    def on_epoch_end(self, epoch, logs=None) -> None:
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            return  # Optuna takes no NaN; the run's own best ignores it too
        self.trial.report(value, epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.stop_status = "pruned"
            self.model.stop_training = True
