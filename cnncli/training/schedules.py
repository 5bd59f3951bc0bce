"""Learning-rate schedules of a run: --lr-schedule constant|step|cosine|plateau|onecycle with
--warmup EPOCHS, and the learning rate of every epoch logged as history.csv's
`learning_rate` column (when a schedule, warm-up or a backbone is used).

The rate of an epoch is the phase's base rate (--lr or the optimizer's default; from
--fine-tune-at on, --fine-tune-lr) times the schedule's factor for that epoch: warm-up
rises linearly to 1; step divides by 10 at half and three quarters of the epochs after the
warm-up; cosine falls from 1 towards 0 over them; plateau is Keras' ReduceLROnPlateau on the
monitored metric (halved after 2 epochs without improvement); onecycle changes the rate at
every step inside the optimizer (cnncli.training.model.make_optimizer), and the rate at
each epoch's start is logged. What plateau has counted
(and the rate it reached) is written beside the resume state at each epoch end
(state/schedule-NNNN.json, before state.json commits that epoch), so a resume
continues the schedule where it stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from cnncli.atomic import write_json
from cnncli.training import rundir
from cnncli.training.callbacks import monitor_mode
from cnncli.training.phases import PhaseChange, phase_of, recompile_for
from cnncli.training.transfer import uses_lr_column

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.training.options import TrainOptions

LR_COLUMN = "learning_rate"  # Keras' own name in the logs
PLATEAU_FACTOR, PLATEAU_PATIENCE, MIN_LR = 0.5, 2, 1e-7


def lr_factor(schedule: str, epoch: int, epochs: int, warmup: int = 0) -> float:
    """The factor of the base rate for the 0-based `epoch` of `epochs`."""
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    t, span = epoch - warmup, max(1, epochs - warmup)
    if schedule == "step":
        return 0.1 ** sum(t >= m for m in (span // 2, (3 * span) // 4) if m > 0)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t / span))
    return 1.0  # constant; plateau: ReduceLROnPlateau changes it from there


def base_lr(opts: TrainOptions, epoch: int) -> float:
    """The base rate of the phase the 0-based `epoch` trains in."""
    if phase_of(opts, epoch + 1) == 2:
        return float(opts.fine_tune_lr)
    if opts.lr is not None:
        return float(opts.lr)
    return float(keras.optimizers.get(opts.optimizer).learning_rate)


def schedule_file(run_dir: Path, epoch: int) -> Path:
    return rundir.state_dir(run_dir) / f"schedule-{epoch:04d}.json"


def read_schedule_state(run_dir: Path, epoch: int) -> dict | None:
    """What the schedule had counted when `epoch` was committed (None: nothing stored)."""
    path = schedule_file(run_dir, epoch)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class LearningRate(keras.callbacks.Callback):
    """Sets each epoch's rate (schedule x phase base), runs ReduceLROnPlateau for
    `plateau`, logs the epoch's rate, and writes the schedule's state per epoch."""

    def __init__(self, opts, run_dir: Path | None, initial: dict | None = None):
        super().__init__()
        self.opts = opts
        self.run_dir = run_dir
        self.initial = initial
        self.current: float | None = None
        self.plateau = None
        if opts.lr_schedule == "plateau":
            self.plateau = keras.callbacks.ReduceLROnPlateau(
                monitor=opts.monitor or "val_loss",
                factor=PLATEAU_FACTOR,
                patience=PLATEAU_PATIENCE,
                mode=monitor_mode(opts.monitor or "val_loss"),
                min_lr=MIN_LR,
            )

    def set_model(self, model) -> None:
        super().set_model(model)
        if self.plateau is not None:
            self.plateau.set_model(model)

    def on_train_begin(self, logs=None) -> None:
        if self.plateau is None:
            return
        self.plateau.on_train_begin(logs)
        if self.initial:
            self.plateau.wait = int(self.initial.get("wait", 0))
            self.plateau.cooldown_counter = int(self.initial.get("cooldown", 0))
            if self.initial.get("best") is not None:
                self.plateau.best = float(self.initial["best"])

    def on_epoch_begin(self, epoch, logs=None) -> None:
        opts, optimizer = self.opts, self.model.optimizer
        if opts.lr_schedule == "onecycle":  # per step, in the optimizer: logged, not set
            self.current = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            return
        follows_plateau = self.plateau is not None and epoch > opts.warmup
        if follows_plateau and epoch + 1 != opts.fine_tune_at:
            if self.initial and self.initial.get("next_lr") is not None:
                optimizer.learning_rate = float(self.initial["next_lr"])
        else:
            factor = lr_factor(opts.lr_schedule, epoch, opts.epochs, opts.warmup)
            optimizer.learning_rate = base_lr(opts, epoch) * factor
        self.initial = None  # used once: the first epoch of a resumed run
        self.current = float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs if logs is not None else {}
        state = {}
        if self.plateau is not None and epoch >= self.opts.warmup:
            self.plateau.on_epoch_end(epoch, dict(logs))
            best = self.plateau.best
            state = {
                "wait": int(self.plateau.wait),
                "cooldown": int(self.plateau.cooldown_counter),
                "best": None if best is None or math.isinf(best) else float(best),
                "next_lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            }
        logs[LR_COLUMN] = self.current
        if self.opts.fine_tune_at is not None:  # history.csv marks the phase change
            logs["phase"] = phase_of(self.opts, epoch + 1)
        if self.run_dir is not None and state:
            write_json(schedule_file(self.run_dir, epoch + 1), state)
            for old in rundir.state_dir(self.run_dir).glob("schedule-[0-9]*.json"):
                if old.name < schedule_file(self.run_dir, epoch).name:
                    old.unlink(missing_ok=True)


def schedule_callbacks(
    opts: TrainOptions, info: DatasetInfo, run_dir: Path | None, initial_epoch: int
) -> list:
    """The callbacks a run needs for its phases and learning rate (before the run folder
    writer, so the epoch's rate reaches history.csv): none for a plain constant run."""
    if not uses_lr_column(opts):
        return []
    cbs = []
    if opts.fine_tune_at is not None:
        cbs.append(PhaseChange(opts, recompile_for(opts, info)))
    initial = read_schedule_state(run_dir, initial_epoch) if run_dir and initial_epoch else None
    cbs.append(LearningRate(opts, run_dir, initial))
    return cbs
