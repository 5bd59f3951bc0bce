"""Keras callbacks of a training run: events for the CLI (cnncli.training.events), the run
folder writer (checkpoints, best/last model, history.csv, resumable state), resumable early
stopping, and the seed generator states that make a resumed run equal an uninterrupted one.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from cnncli.atomic import atomic_file
from cnncli.training import rundir
from cnncli.training.events import EpochReport, TrainEvents


def _floats(logs: dict | None) -> dict:
    out = {}
    for k, v in (logs or {}).items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


class EventsCallback(keras.callbacks.Callback):
    """Forwards epoch and batch progress to a TrainEvents object."""

    def __init__(self, events: TrainEvents, steps: int):
        super().__init__()
        self.events = events
        self.steps = steps

    def on_epoch_begin(self, epoch, logs=None):
        self.events.epoch_begin(epoch + 1, self.steps)

    def on_train_batch_end(self, batch, logs=None):
        self.events.batch_end(batch + 1, _floats(logs))


def _copy(src: Path, dst: Path) -> None:
    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)


def monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor or "error" in monitor else "max"


def seed_states(model) -> list[list[int]]:
    """The state of every random seed generator in the model (dropout, augmentation), in
    layer order. Keras does not store these in .keras files; resume needs them so the
    dropout masks of a resumed run equal an uninterrupted run's."""
    out = []
    for layer in _layers(model):
        for gen in getattr(layer, "_seed_generators", []) or []:
            out.append([int(x) for x in gen.state.numpy().ravel()])
    return out


def set_seed_states(model, states: list[list[int]]) -> None:
    gens = [g for layer in _layers(model) for g in (getattr(layer, "_seed_generators", []) or [])]
    if len(gens) != len(states):
        return  # another model structure: keep fresh seeds (resume then is not bit-exact)
    for gen, state in zip(gens, states, strict=True):
        gen.state.assign(keras.ops.convert_to_tensor(state, dtype=gen.state.dtype))


def _layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


@dataclass
class RunState:
    """What resume restores besides weights and optimizer (kept in state/state.json)."""

    epoch: int = 0  # finished epochs
    best_value: float | None = None
    best_epoch: int = 0
    history: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    early_stop: dict | None = None


class RunFolderCallback(keras.callbacks.Callback):
    """At each epoch end, in this order: best.keras (if improved), the --checkpoint file,
    last.keras, the resume model file, history.csv, then state.json (the commit point),
    history.png and run.json. A kill at any moment leaves a consistent resumable state."""

    def __init__(
        self,
        run_dir: Path,
        *,
        epochs: int,
        save_model,  # save_model(model, path)
        checkpoint_pattern: str,
        save_best_only: bool,
        monitor: str,
        state: RunState,
        early_stopping=None,
        events: TrainEvents | None = None,
        on_epoch_saved=None,  # on_epoch_saved(state) -> update run.json and plot
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.epochs = epochs
        self.save_model = save_model
        self.pattern = checkpoint_pattern
        self.save_best_only = save_best_only
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.state = state
        self.early_stopping = early_stopping
        self.events = events
        self.on_epoch_saved = on_epoch_saved
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def _improved(self, value) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        best = self.state.best_value
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - (self._t0 or time.perf_counter())
        metrics = _floats(logs)
        number = epoch + 1
        value = metrics.get(self.monitor)
        improved = self._improved(value)
        st = self.state
        # the model is saved once (last.keras); best and checkpoint are copies of that file
        last = self.run_dir / rundir.LAST_MODEL
        self.save_model(self.model, last)
        if improved:
            st.best_value, st.best_epoch = value, number
            _copy(last, self.run_dir / rundir.BEST_MODEL)
        checkpoint = None
        if improved or not self.save_best_only:
            path = Path(self.pattern.format(epoch=number, **metrics))
            if not path.is_absolute():
                path = self.run_dir / path
            if path.suffix == last.suffix:
                _copy(last, path)
            else:  # another format (.h5)
                self.save_model(self.model, path)
            checkpoint = (
                str(path.relative_to(self.run_dir))
                if path.is_relative_to(self.run_dir)
                else str(path)
            )

        # resume state: the full model (weights + optimizer) under a per-epoch name, so the
        # previous one stays valid until state.json points at the new one
        sdir = rundir.state_dir(self.run_dir)
        resume_name = f"epoch-{number:04d}.keras"
        with atomic_file(sdir / resume_name) as tmp:
            self.model.save(tmp)
        st.epoch = number
        st.history.append({"epoch": number, **metrics})
        st.epoch_seconds.append(round(seconds, 4))
        es = self.early_stopping
        if es is not None:
            st.early_stop = {
                "wait": int(es.wait),
                "best": None if es.best is None else float(es.best),
                "best_epoch": int(es.best_epoch),
            }
        rundir.write_history(self.run_dir / rundir.HISTORY_CSV, st.history)
        rundir.write_state(
            self.run_dir,
            {
                "epoch": st.epoch,
                "model": resume_name,
                "seed_states": seed_states(self.model),
                "monitor": self.monitor,
                "best_value": st.best_value,
                "best_epoch": st.best_epoch,
                "early_stop": st.early_stop,
                "history": st.history,
                "epoch_seconds": st.epoch_seconds,
            },
        )
        for old in sdir.glob("epoch-*.keras"):
            if old.name != resume_name:
                old.unlink(missing_ok=True)
        if self.on_epoch_saved is not None:
            self.on_epoch_saved(st)
        if self.events is not None:
            self.events.epoch_end(
                EpochReport(
                    epoch=number,
                    epochs=self.epochs,
                    metrics=metrics,
                    seconds=seconds,
                    improved=improved,
                    best_epoch=st.best_epoch,
                    best_value=st.best_value,
                    monitor=self.monitor,
                    checkpoint=checkpoint,
                )
            )


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter and best value survive a resume."""

    def __init__(self, *args, initial: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initial = initial

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._initial:
            self.wait = int(self._initial.get("wait", 0))
            self.best = self._initial.get("best")
            self.best_epoch = int(self._initial.get("best_epoch", 0))
