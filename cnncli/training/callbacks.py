"""Keras callbacks of a training run: events for the CLI (cnncli.training.events), the run
folder writer (checkpoints, best/last model, history.csv, resumable state), resumable early
stopping, and the seed generator states that make a resumed run equal an uninterrupted one.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from cnncli.atomic import atomic_file, rename
from cnncli.errors import writing
from cnncli.training import rundir
from cnncli.training.events import EpochReport, TrainEvents
from cnncli.training.options import monitor_mode  # noqa: F401 - its older home


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

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.events.epoch_begin(epoch + 1, self.steps)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.events.batch_end(batch + 1, _floats(logs))


class ChanceWatch(keras.callbacks.Callback):
    """Says once (TrainEvents.note) when validation accuracy stays at chance while training
    accuracy climbs (cnncli.training.transfer.chance_note)."""

    def __init__(self, events: TrainEvents, chance: float, random_backbone: bool):
        super().__init__()
        self.events, self.chance, self.random_backbone = events, chance, random_backbone
        self.rows: list[dict] = []
        self.said = False

    def on_epoch_end(self, epoch, logs=None) -> None:
        from cnncli.training.transfer import chance_note

        self.rows.append(_floats(logs))
        note = None if self.said else chance_note(self.rows, self.chance, self.random_backbone)
        if note:
            self.said = True
            self.events.note(note)


def _copy(src: Path, dst: Path) -> None:
    """`dst` made the same file as `src`: a hard link (no bytes written; model files are
    only ever replaced whole, never changed in place, so the two never diverge), or a
    copy where the file system has no hard links."""
    with _writing(dst, src), atomic_file(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            shutil.copyfile(src, tmp)


def _writing(path: Path, like: Path | None = None):
    """errors.writing(path) with what the write needs when known: the size of `like` (the
    file it replaces, or copies)."""
    try:
        needed = like.stat().st_size if like is not None else None
    except OSError:
        needed = None
    return writing(path, needed)


def seed_states(model: Any) -> list[list[int]]:
    """The state of every random seed generator in the model (dropout, augmentation), in
    layer order. Keras does not store these in .keras files; resume needs them so the
    dropout masks of a resumed run equal an uninterrupted run's."""
    out = []
    for layer in _layers(model):
        for gen in getattr(layer, "_seed_generators", []) or []:
            out.append([int(x) for x in gen.state.numpy().ravel()])
    return out


def set_seed_states(model: Any, states: list[list[int]]) -> None:
    gens = [g for layer in _layers(model) for g in (getattr(layer, "_seed_generators", []) or [])]
    if len(gens) != len(states):
        return  # another model structure: keep fresh seeds (resume then is not bit-exact)
    for gen, state in zip(gens, states, strict=True):
        gen.state.assign(keras.ops.convert_to_tensor(state, dtype=gen.state.dtype))


def _layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def _state_variables(model) -> list:
    opt = model.optimizer
    if opt is not None and not opt.built:
        opt.build(model.trainable_variables)
    return [*model.weights, *(opt.variables if opt is not None else [])]


def save_training_model(model: Any, path: Path) -> None:
    """state/model.keras: the training model (augmentation, dtype policies, compile
    settings) with its optimizer built, saved once when a run starts; each epoch's
    save_variables file holds its values. Call it in the strategy's scope."""
    from cnncli.models.io import memoise_keras_skipsets

    _state_variables(model)  # builds the optimizer: its variables are saved with the model
    memoise_keras_skipsets()
    with _writing(path), atomic_file(path, scratch_beside=True) as tmp:
        model.save(tmp)


def save_variables(model: Any, path: Path) -> None:
    """The resume state of an epoch: every weight of the training model and every variable
    of its optimizer, in order, as one .npz (a few ms; the model's structure is saved once,
    at the start, as state/model.keras). Write it through atomic_file."""
    import numpy as np

    variables = enumerate(_state_variables(model))
    arrays: dict[str, Any] = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in variables}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_variables(model: Any, path: Path) -> None:
    """Put the values save_variables wrote back into `model` (built from state/model.keras)
    and its optimizer; an InputError if the file does not fit the model."""
    import numpy as np

    from cnncli.errors import InputError

    variables = _state_variables(model)
    try:
        with np.load(path) as data:
            arrays = [data[k] for k in sorted(data.files)]
    except Exception as e:  # a damaged state file
        raise InputError(f"cannot read the resume state {path} ({e})") from None
    if len(arrays) != len(variables) or any(
        tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, variables, strict=True)
    ):
        raise InputError(
            f"the resume state {path} does not fit the run's model (state/{rundir.TRAIN_MODEL})",
            "start the training again",
        )
    for v, a in zip(variables, arrays, strict=True):
        v.assign(a)


@dataclass
class RunState:
    """What resume restores besides weights and optimizer (kept in state/state.json)."""

    epoch: int = 0  # finished epochs
    best_value: float | None = None
    best_epoch: int = 0
    history: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    early_stop: dict | None = None
    # state/model.keras is still to be written: a new run, or an older run's resume. Known
    # from the state every worker read, never from what is on disk now: saving builds the
    # optimizer, and under a multi-worker strategy every worker must do that, or none.
    needs_structure: bool = field(default=True, compare=False)


class RunFolderCallback(keras.callbacks.Callback):
    """At each epoch end, in this order: the resume state (state/epoch-NNNN.npz: the
    variables of the training model and its optimizer; its structure is state/model.keras,
    written once when the run starts) and the model for use (state/last-epoch-NNNN.keras,
    the one model serialisation of an epoch), then state.json, the commit point; then
    what derives from the committed epoch (`save_outputs`): history.csv, the model for use
    renamed to last.keras, best.keras (if improved) and the --checkpoint file as hard links
    to it, run.json.
    A kill, Ctrl-C or full disk before the commit leaves every file at the previous epoch
    (the new epoch's files are removed or replaced by the next try); after it, resume calls
    `save_outputs` again, which finishes the rename and the copies. So last.keras never
    holds an epoch the state does not. A write that fails for want of space (or
    permission) raises OutputWriteError naming the file."""

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

    def on_epoch_end(self, epoch, logs=None) -> None:
        seconds = time.perf_counter() - (self._t0 or time.perf_counter())
        metrics = _floats(logs)
        number = epoch + 1
        value = metrics.get(self.monitor)
        improved = self._improved(value)
        st = self.state
        sdir = rundir.state_dir(self.run_dir)
        # per-epoch names: the previous epoch's files stay valid until state.json points here
        resume_model, for_use = sdir / resume_name(number), sdir / last_name(number)
        try:
            with (
                _writing(resume_model, sdir / resume_name(st.epoch)),
                atomic_file(resume_model) as tmp,
            ):
                save_variables(self.model, tmp)  # weights + optimizer (+ augmentation seeds)
            with _writing(for_use, self.run_dir / rundir.LAST_MODEL):
                self.save_model(self.model, for_use)
            best_value, best_epoch = (value, number) if improved else (st.best_value, st.best_epoch)
            es = self.early_stopping
            early_stop = st.early_stop
            if es is not None:
                early_stop = {
                    "wait": int(es.wait),
                    "best": None if es.best is None else float(es.best),
                    "best_epoch": int(es.best_epoch),
                }
            history = [*st.history, {"epoch": number, **metrics}]
            epoch_seconds = [*st.epoch_seconds, round(seconds, 4)]
            with _writing(sdir / rundir.STATE_JSON):
                rundir.write_state(
                    self.run_dir,
                    {
                        "epoch": number,
                        "model": rundir.TRAIN_MODEL,
                        "variables": resume_model.name,
                        "last_model": for_use.name,
                        "seed_states": seed_states(self.model),
                        "monitor": self.monitor,
                        "best_value": best_value,
                        "best_epoch": best_epoch,
                        "early_stop": early_stop,
                        "history": history,
                        "epoch_seconds": epoch_seconds,
                    },
                )
        except BaseException:  # not committed: the new epoch's files go, as if never begun
            if _committed_epoch(self.run_dir) != number:
                resume_model.unlink(missing_ok=True)
                for_use.unlink(missing_ok=True)
            raise
        st.epoch, st.history, st.epoch_seconds = number, history, epoch_seconds
        st.best_value, st.best_epoch, st.early_stop = best_value, best_epoch, early_stop
        checkpoint = self.save_outputs()
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

    def save_outputs(self) -> str | None:
        """Write what derives from the committed epoch (self.state), after dropping the older
        state models: history.csv, last.keras (renamed from state/, where it was written
        before the commit), best.keras if that epoch is the best, its --checkpoint file; then
        call on_epoch_saved (run.json). Resume calls it again, for a run stopped before
        these were written (each step is done again or already done). Returns the
        checkpoint written (relative to the run folder when inside it), or None."""
        st = self.state
        number = st.epoch
        metrics = {k: v for k, v in st.history[-1].items() if k != "epoch"}
        improved = st.best_epoch == number
        sdir = rundir.state_dir(self.run_dir)
        pending = sdir / last_name(number)
        for old in sdir.glob("*epoch-*.*"):  # older states, no longer needed: space first
            if old.name not in (resume_name(number), pending.name):
                old.unlink(missing_ok=True)
        history_csv = self.run_dir / rundir.HISTORY_CSV
        with _writing(history_csv):
            rundir.write_history(history_csv, st.history)
        last = self.run_dir / rundir.LAST_MODEL
        if pending.exists():  # a rename: no space needed, never half done
            rename(pending, last)
        elif not last.exists():  # removed by hand since: saved again from the state's model
            with _writing(last):
                self.save_model(self.model, last)
        if improved:
            _copy(last, self.run_dir / rundir.BEST_MODEL)
        checkpoint = None
        if improved or not self.save_best_only:
            path = Path(self.pattern.format(epoch=number, **metrics))
            if not path.is_absolute():
                path = self.run_dir / path
            if path.suffix == last.suffix:
                _copy(last, path)
            else:  # another format (.h5)
                with _writing(path, last):
                    self.save_model(self.model, path)
            checkpoint = (
                str(path.relative_to(self.run_dir))
                if path.is_relative_to(self.run_dir)
                else str(path)
            )
        if self.on_epoch_saved is not None:
            self.on_epoch_saved(st)
        return checkpoint


def _committed_epoch(run_dir: Path) -> int | None:
    try:
        return int(rundir.read_state(run_dir)["epoch"])
    except Exception:  # no state yet, or unreadable: nothing of this epoch is committed
        return None


def resume_name(epoch: int) -> str:
    """The resume state of an epoch, in state/: the variables of the training model and its
    optimizer (save_variables)."""
    return f"epoch-{epoch:04d}.npz"


def last_name(epoch: int) -> str:
    """The model for use of an epoch, in state/ until the commit makes it last.keras."""
    return f"last-epoch-{epoch:04d}.keras"


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter and best value survive a resume."""

    def __init__(self, *args, initial: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initial = initial

    def on_train_begin(self, logs=None) -> None:
        super().on_train_begin(logs)
        if self._initial:
            self.wait = int(self._initial.get("wait", 0))
            self.best = self._initial.get("best")
            self.best_epoch = int(self._initial.get("best_epoch", 0))
