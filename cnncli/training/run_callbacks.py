"""The callbacks a fit runs (cnncli.training.loop): events, resumable early stopping, the
run folder writer (the model for use saved at each epoch end), the watch of val accuracy at
chance, TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import keras

from cnncli.datasets.store import DatasetInfo
from cnncli.drawing.figures import load_in_background
from cnncli.models.io import save_model
from cnncli.training import rundir
from cnncli.training.callbacks import (
    ChanceWatch,
    EventsCallback,
    ResumableEarlyStopping,
    RunFolderCallback,
    RunState,
    monitor_mode,
)
from cnncli.training.events import TrainEvents
from cnncli.training.options import TrainOptions


def run_callbacks(
    out: Path,
    run: dict,
    opts: TrainOptions,
    st: RunState,
    events: TrainEvents | None,
    steps: int,
    deployed: Any,
    sync: Callable[[], Any],
    info: DatasetInfo,
) -> tuple[list, RunFolderCallback]:
    """Early stopping (resumable), the run folder writer (saving `deployed`, the model for
    use), events (and the watch of val accuracy at chance), TensorBoard."""
    assert opts.epochs is not None  # _fit compared it with the epoch reached
    # filled in by TrainOptions.for_dataset (a resumed run: from its run.json)
    monitor, pattern = cast(str, opts.monitor), cast(str, opts.checkpoint)
    metadata = run["metadata"]

    def on_epoch_saved(state: RunState):
        rundir.record_epoch(out, run, state, opts.monitor)

    early = None
    cbs: list = []
    if events is not None:
        cbs.append(EventsCallback(events, steps))
    if opts.early_stop:
        early = ResumableEarlyStopping(
            monitor=monitor,
            patience=opts.early_stop,
            mode=monitor_mode(monitor),
            initial=st.early_stop,
        )
        cbs.append(early)
    folder = RunFolderCallback(
        out,
        epochs=opts.epochs,
        save_model=lambda _training, path: save_model(sync() or deployed, path, metadata=metadata),
        checkpoint_pattern=pattern,
        save_best_only=opts.save_best_only,
        monitor=monitor,
        state=st,
        early_stopping=early,
        events=events,
        on_epoch_saved=on_epoch_saved,
    )
    cbs.append(folder)
    if events is not None and info.task == "classify" and info.count("val"):
        val = info.per_class("val")
        chance = max(val.values()) / max(1, sum(val.values()))
        cbs.append(
            ChanceWatch(
                events, chance, opts.backbone is not None and str(opts.weights).lower() == "none"
            )
        )
    if opts.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard")))
    return [*cbs, LoadPlotting()], folder


class LoadPlotting(keras.callbacks.Callback):
    """After the first epoch of a fit (its train step traced: from then on TensorFlow
    computes without the GIL), load what history.png is drawn with in the background, so
    the end of the run does not wait for matplotlib's import."""

    def __init__(self) -> None:
        super().__init__()
        self.started = False

    def on_epoch_end(self, epoch, logs=None):
        if not self.started:
            self.started = True
            load_in_background("cnncli.drawing.plots")
