"""Train a CNN on a cnncli dataset into a run folder, and resume an interrupted run.

`train(dataset_dir, run_dir, ...)` and `resume(run_dir)` first check everything that needs
no TensorFlow (the options, the model source, the dataset, the run folder, the resume
state), so a mistake is one line before TensorFlow loads; cnncli.training.loop then builds
the model (cnncli.training.model), fits it and writes the run folder (cnncli.training.rundir).
A resumed run continues from the last finished epoch with the same weights, optimizer
state, seeds, best value and history, so an interrupted and resumed run equals an
uninterrupted one (CPU, fixed seed). `run_training` is what `cnncli train` calls.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnncli.datasets.store import DatasetInfo, open_dataset
from cnncli.errors import InputError, UsageError
from cnncli.models.files import check_model_task
from cnncli.training import distribute, rundir
from cnncli.training.ending import early_stop_reached
from cnncli.training.events import TrainEvents, TrainingInterrupted, TrainResult
from cnncli.training.options import TrainOptions, model_source
from cnncli.training.recipes import apply_recipe

FINISHED = ("finished", "early-stopped")  # run.json statuses of a run that ended by itself

__all__ = ["TrainOptions", "TrainResult", "TrainingInterrupted", "resume", "run_training", "train"]


def run_training(
    dataset_dir: str | os.PathLike | None = None,
    run_dir: str | Path | None = None,
    *,
    arch: str | None = None,
    spec: str | os.PathLike | None = None,
    from_model: str | os.PathLike | None = None,
    resume_dir: str | os.PathLike | None = None,
    options: TrainOptions | None = None,
    overwrite: bool = False,
    events: TrainEvents | None = None,
    strategy: str | distribute.StrategyPlan = "auto",
) -> TrainResult:
    """`cnncli train`: a new run on DATASET_DIR into `run_dir` (None: the first free of
    runs/train, runs/train2, ...), or with `resume_dir` the continuation of that run, with
    its own model, folder and options (only options.epochs, a new total, may change)."""
    options = options or TrainOptions()
    if resume_dir is not None:
        if arch or spec or from_model or run_dir:
            raise UsageError(
                "--resume continues a run with its own model and folder",
                "leave out --arch/--spec/--from/-o (only --epochs may change)",
            )
        return resume(
            resume_dir,
            dataset_dir=dataset_dir,
            epochs=options.epochs,
            events=events,
            strategy=strategy,
        )
    if dataset_dir is None:
        raise UsageError("missing DATASET_DIR", "cnncli train DATASET_DIR [--arch NAME]")
    return train(
        dataset_dir,
        run_dir,
        arch=arch,
        spec=spec,
        from_model=from_model,
        options=options,
        overwrite=overwrite,
        events=events,
        strategy=strategy,
    )


def _claiming(what: str, resuming: bool = False):
    """Decorator of train and resume: the call holds the run's claims (rundir.run_claims:
    its run folder, and a read claim on its dataset) from its checks to its end, so a second
    train into the folder, or a build replacing the dataset, is refused meanwhile. run_dir
    None becomes the first free of runs/train, runs/train2, ..."""

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            if resuming and not Path(a["run_dir"]).is_dir():
                return fn(*bound.args, **bound.kwargs)  # it says what is missing
            dataset_dir = a["dataset_dir"]
            if dataset_dir is None and resuming:
                dataset_dir = rundir.dataset_of(a["run_dir"])
            chief = _plan(a["strategy"]).is_chief
            with rundir.run_claims(a["run_dir"], dataset_dir, chief, what) as run_dir:
                a["run_dir"] = run_dir
                return fn(*bound.args, **bound.kwargs)

        return call

    return wrap


@_claiming("cnncli train")
def train(
    dataset_dir: str | os.PathLike,
    run_dir: str | Path,
    *,
    arch: str | None = None,
    spec: str | os.PathLike | None = None,
    from_model: str | os.PathLike | None = None,
    model: Any = None,
    options: TrainOptions | None = None,
    overwrite: bool = False,
    events: TrainEvents | None = None,
    callbacks: Sequence = (),
    strategy: str | distribute.StrategyPlan = "auto",
) -> TrainResult:
    """Train on DATASET_DIR into RUN_DIR (None: the first free of runs/train, runs/train2,
    ...), holding both from start to end (see _claiming). At most one of `arch` (a preset
    name), `spec` (a spec file or dict), `from_model` (a saved model file) or `model` (a
    Keras model) names the architecture; none: the recipe's network for the dataset
    (cnncli.training.recipes, options.recipe). `strategy`: a --strategy name or a
    distribute.StrategyPlan (several workers: only the chief writes RUN_DIR). Raises
    TrainingInterrupted (exit 130) on Ctrl-C, TrainingTerminated (exit 143) on SIGTERM,
    after saving."""
    opts = options or TrainOptions()
    opts.check()
    plan = _plan(strategy)
    source = model_source(
        arch=arch, spec=spec, from_model=from_model, model=model, backbone=opts.backbone
    )
    info = open_dataset(dataset_dir)
    if "train" not in info.splits or info.count("train") == 0:
        raise InputError(
            f"dataset {info.path} has no training images", "build it with a train split"
        )
    if source.kind == "from":  # from the file alone, before TensorFlow loads
        check_model_task(
            source.value,
            info,
            "the --from model",
            "train a new model for this dataset with --arch or --spec",
        )
    opts, source, recipe = apply_recipe(opts, info, source)
    opts = opts.for_dataset(info)
    _check_shards(plan, info)
    if plan.is_chief:
        rundir.check_run_dir(run_dir, overwrite=overwrite)

    from cnncli.training.loop import train_run  # TensorFlow loads here, after the checks

    return train_run(
        dataset_dir, Path(run_dir), info, source, opts, plan, overwrite, events, callbacks, recipe
    )


@_claiming("cnncli train --resume", resuming=True)
def resume(
    run_dir: str | Path,
    *,
    dataset_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    events: TrainEvents | None = None,
    callbacks: Sequence = (),
    strategy: str | distribute.StrategyPlan = "auto",
) -> TrainResult:
    """Continue RUN_DIR from its last finished epoch (after Ctrl-C or kill -9); `epochs`: a
    new total. With several workers, every worker reads the chief's RUN_DIR (a shared
    folder, or a copy at the same path) and only the chief writes it."""
    plan = _plan(strategy)
    run_dir = Path(run_dir)
    state = rundir.read_state(run_dir)
    run = rundir.read_run_json(run_dir)
    opts = TrainOptions.from_dict(run["options"])
    if epochs is not None:
        opts.epochs = epochs
        run["options"]["epochs"] = epochs
    opts.check()
    dataset_dir = Path(dataset_dir or run["dataset"]["path"])
    info = open_dataset(dataset_dir)
    if info.sha256 != run["dataset"]["sha256"]:
        raise InputError(
            f"{run_dir} was trained on another dataset (sha256 {run['dataset']['sha256'][:12]}), "
            f"not {dataset_dir} (sha256 {info.sha256[:12]})",
            "resume with the dataset the run started on, or start a new run",
        )
    # a run stopped after its last epoch (Ctrl-C or kill while it finished, a full disk)
    # is not finished: resume writes what it left undone
    if run.get("status") in FINISHED:
        if state["epoch"] >= opts.epochs:
            raise UsageError(
                f"{run_dir} already finished {state['epoch']} of {opts.epochs} epochs",
                "pass --epochs with a larger total to train further",
            )
        if early_stop_reached(state.get("early_stop"), opts.early_stop, state["epoch"]):
            raise UsageError(
                f"{run_dir} stopped early after {state['epoch']} epochs ({opts.monitor} did "
                f"not improve for {opts.early_stop})",
                f"to train further, start a new run from its model: --from {run_dir}/last.keras",
            )
    _check_shards(plan, info)

    from cnncli.training.loop import resume_run  # TensorFlow loads here, after the checks

    return resume_run(run_dir, info, run, state, opts, plan, events, callbacks)


def _plan(strategy: str | distribute.StrategyPlan) -> distribute.StrategyPlan:
    if isinstance(strategy, distribute.StrategyPlan):
        return strategy
    return distribute.plan_strategy(strategy)


def _check_shards(plan: distribute.StrategyPlan, info: DatasetInfo) -> None:
    if plan.multi_worker:
        distribute.check_shards(len(info.shard_paths("train")), plan.num_workers, info.path)
