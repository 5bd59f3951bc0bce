"""The fit itself, once cnncli.training.fit's checks have passed: the strategy a run trains
under and the folder it writes, its input pipelines, its callbacks, and `model.fit`, run
under cnncli.training.ending (Ctrl-C, SIGTERM, a full disk, a broken cluster: clear errors).

Every epoch end writes the run folder (cnncli.training.callbacks.RunFolderCallback), so an
interrupted run (Ctrl-C, SIGTERM, kill -9) resumes from its last finished epoch. The models
saved for use (best, last, checkpoints) leave augmentation out and compute in float32; the
resume state keeps the training model as it is (augmentation, mixed precision). The device
and precision (cnncli.training.precision) are chosen when the run starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import keras

from cnncli.atomic import scratch_folder, write_json
from cnncli.datasets.store import DatasetInfo
from cnncli.errors import writing
from cnncli.training import distribute, rundir
from cnncli.training.augment import AugmentOptions
from cnncli.training.callbacks import (
    RunState,
    load_variables,
    save_training_model,
    set_seed_states,
)
from cnncli.training.ending import (
    early_stop_reached,
    finish_run,
    run_or_interrupt,
)
from cnncli.training.events import TrainEvents, TrainResult
from cnncli.training.guard import DatasetGuard
from cnncli.training.inputs import fit_inputs
from cnncli.training.model import (
    build_model,
    model_for_use,
    one_hot_training,
    replan_optimizer,
    resume_model,
)
from cnncli.training.options import ModelSource, TrainOptions, no_val_notes
from cnncli.training.precision import (
    Device,
    Precision,
    choose_precision,
    choose_steps_per_execution,
    detect_device,
    forward_flops,
)
from cnncli.training.run_callbacks import run_callbacks
from cnncli.training.tasks import label_zeros


@dataclass
class Placement:
    """The strategy a run trains under and the folder it writes: RUN_DIR on the chief (and
    on one machine); a temporary folder, deleted at the end, on the other workers."""

    plan: distribute.StrategyPlan
    strategy: Any = None  # a tf.distribute strategy, or None: TensorFlow's default
    out_dir: Path | None = None

    @property
    def scope(self) -> Any:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def open_folder(self, prepare) -> Path:
        """RUN_DIR (made by `prepare`) on the chief, a temporary folder on the others."""
        if self.plan.is_chief:
            self.out_dir = prepare()
        else:
            self.out_dir = scratch_folder()  # its pid in the name: debris when killed
        return self.out_dir


def _place(plan: distribute.StrategyPlan, opts: TrainOptions) -> Placement:
    """The strategy first (collective ops are configured at start-up), then the seeds."""
    where = Placement(plan, distribute.create_strategy(plan))
    keras.utils.set_random_seed(opts.seed)
    if opts.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return where


def train_run(
    dataset_dir: str | os.PathLike,
    run_dir: Path,
    info: DatasetInfo,
    source: ModelSource,
    opts: TrainOptions,
    plan: distribute.StrategyPlan,
    overwrite: bool,
    events: TrainEvents | None,
    callbacks: Sequence,
    recipe: dict | None = None,
) -> TrainResult:
    """A new run: build and compile the model, make RUN_DIR, write run.json, fit."""
    where = _place(plan, opts)
    device, chosen = detect_device(), []

    def policy_for(model) -> str:  # --precision for this device and model
        chosen.append(choose_precision(opts.precision, device, forward_flops(model) / 1e6))
        return chosen[-1].policy

    with where.scope:
        net, head = build_model(source, info, opts, policy_for)
    out = where.open_folder(lambda: rundir.prepare_run_dir(run_dir, overwrite=overwrite))
    model = {
        "source": source.describe(net.name),
        "name": net.name,
        "params": int(net.count_params()),
        "head": head.kind,
        "from_logits": head.from_logits,
        "loss": type(net.loss).__name__,
    }
    run = rundir.new_run_record(dataset_dir, info, model, opts.to_dict())
    run.update(precision=chosen[-1].to_dict(), device=device.to_dict())
    run.update({"recipe": recipe} if recipe is not None else {})
    run["metadata"]["training_precision"] = chosen[-1].name
    run["metadata"]["augment"] = (opts.augment or AugmentOptions()).to_dict()  # read by --tta
    with writing(out / rundir.RUN_JSON):
        write_json(out / rundir.RUN_JSON, run)
    return _fit(net, info, run_dir, where, run, opts, RunState(), events, callbacks)


def resume_run(
    run_dir: Path,
    info: DatasetInfo,
    run: dict,
    state: dict,
    opts: TrainOptions,
    plan: distribute.StrategyPlan,
    events: TrainEvents | None,
    callbacks: Sequence,
) -> TrainResult:
    """Continue RUN_DIR from the state of its last finished epoch (`state`: state.json)."""
    where = _place(plan, opts)
    out = where.open_folder(lambda: run_dir)
    sdir, seeds = rundir.state_dir(run_dir), state.get("seed_states", [])
    with where.scope:
        net = resume_model(sdir / state["model"], seeds, info, opts)
        if state.get("variables"):  # else an older run's state: a whole model per epoch
            from cnncli.training.phases import resume_phase

            resume_phase(net, opts, info, state["epoch"])  # past --fine-tune-at: unfrozen
            load_variables(net, sdir / state["variables"])
            set_seed_states(net, seeds)
        replanned = replan_optimizer(net.optimizer, opts, info)
    st = RunState(
        epoch=state["epoch"],
        best_value=state.get("best_value"),
        best_epoch=state.get("best_epoch", 0),
        history=list(state.get("history", [])),
        epoch_seconds=list(state.get("epoch_seconds", [])),
        early_stop=state.get("early_stop"),
        needs_structure=not state.get("variables"),
    )
    run["status"] = "running"
    for key in ("interrupted_by", "failed_by", "error"):
        run.pop(key, None)
    device = detect_device()
    run["device"] = device.to_dict()  # the device of the latest training
    run.setdefault("precision", {"name": "fp32", "policy": "float32", "reason": "an older run"})
    run.setdefault("resumes", []).append(
        {"at_epoch": st.epoch, "time": rundir.now(), "device": device.describe()}
        | ({"schedule": replanned} if replanned else {})
    )
    with writing(out / rundir.RUN_JSON):
        write_json(out / rundir.RUN_JSON, run)
    said = [replanned] if replanned else []
    return _fit(net, info, run_dir, where, run, opts, st, events, callbacks, True, said)


def _fit(
    net,
    info: DatasetInfo,
    run_dir: Path,
    where: Placement,
    run: dict,
    opts: TrainOptions,
    st: RunState,
    events: TrainEvents | None,
    extra_callbacks,
    resumed: bool = False,
    start_notes: Sequence[str] = (),
) -> TrainResult:
    """Fit `net` from epoch st.epoch to opts.epochs, writing where.out_dir (RUN_DIR on the
    chief; a temporary folder, removed at the end, on the other workers), then finish the
    run folder (history.png, run.json). `resumed`: first rewrite what the last committed
    epoch derives (a run stopped before it was written); with no epoch left to train (a run
    stopped after its last epoch), only that and the finish are done. `start_notes`: more
    start-up lines (a resume's re-planned schedule)."""
    import numpy as np

    initial_epoch = st.epoch
    out = where.out_dir
    assert out is not None  # where.open_folder() made it
    assert opts.epochs is not None  # filled in by TrainOptions.for_dataset (or the run.json)
    to_train = initial_epoch < opts.epochs and not early_stop_reached(
        st.early_stop, opts.early_stop, st.epoch
    )
    # --cache disk: a cache file per process in the run folder, removed when training ends
    # (a half-written cache of an interrupted run would otherwise block the next one)
    cache_dir = out / f"cache-{os.getpid()}" if opts.cache == "disk" and to_train else None
    one_hot = one_hot_training(net)
    train_ds, val_ds, steps, weights, detail = (
        fit_inputs(info, opts, where.plan, where.strategy, initial_epoch, cache_dir, one_hot)
        if to_train
        else (None,) * 4 + ({},)
    )
    if to_train:  # built before fit: see distribute.prepare_model
        batch = min(opts.batch_size, info.count("train"))
        labels = label_zeros(info, batch, one_hot)
        zeros = (np.zeros((batch, *info.image.shape), "float32"), labels)
        distribute.prepare_model(net, where.strategy, zeros)
    run["distribute"] = detail or where.plan.to_dict()
    flop_per_step = 3 * forward_flops(net) * opts.batch_size  # forward + backward
    spe, why = choose_steps_per_execution(
        steps or 0,
        flop_per_step,
        opts.steps_per_execution,
        (steps or 0) * (opts.epochs - initial_epoch),
    )
    net.steps_per_execution = spe  # read when fit makes its train function
    run["steps_per_execution"] = {"value": spe, "reason": why}
    with where.scope:
        deployed, sync = model_for_use(net)
    cbs, folder = run_callbacks(out, run, opts, st, events, steps or 0, deployed, sync, info)
    # first: a changed dataset stops the run before an epoch that read it is saved
    guard = DatasetGuard(info.path, run["dataset"]["sha256"], run_dir, lambda: st.epoch)
    from cnncli.training.recipes import recipe_notes
    from cnncli.training.saturation import saturation_callback
    from cnncli.training.schedules import schedule_callbacks  # phases, learning rate
    from cnncli.training.transfer import transfer_notes

    saturation = saturation_callback(run, opts, info, events, folder, initial_epoch)
    cbs = [
        guard,
        *schedule_callbacks(opts, info, out, initial_epoch),
        *([saturation] if saturation else []),  # before the folder: run.json says its end
        *cbs,
        *extra_callbacks,
    ]
    if events is not None and to_train:
        events.train_begin(
            {
                "run_dir": str(run_dir),
                "epochs": opts.epochs,
                "initial_epoch": initial_epoch,
                "steps": steps,
                "batch_size": opts.batch_size,
                "counts": {s: info.count(s) for s in info.splits},
                "monitor": opts.monitor,
                "params": int(net.count_params()),
                "strategy": where.plan.describe(),
                "distribute": detail,
                "writes": where.plan.is_chief,
                "device": Device(**run["device"]).describe(),
                "precision": Precision.from_dict(run["precision"]).describe(),
                "steps_per_execution": spe,
                "notes": [
                    *recipe_notes(run.get("recipe")),
                    *start_notes,
                    *no_val_notes(opts, info),
                    *transfer_notes(opts, info),
                ],
            }
        )
    fit_args = {
        "x": train_ds,
        "epochs": opts.epochs,
        "initial_epoch": initial_epoch,
        "steps_per_epoch": steps,
        "validation_data": val_ds,
        "class_weight": weights,
        "callbacks": cbs,
    }

    def work():
        if to_train and st.needs_structure:  # a new run (or an older run's resume)
            with where.scope:  # on every worker (the others into their scratch folder)
                save_training_model(net, rundir.state_dir(out) / rundir.TRAIN_MODEL)
        if resumed and st.epoch and where.plan.is_chief:  # what the committed epoch derives
            folder.set_model(net)
            folder.save_outputs()
        if to_train:
            # shuffle=False: the dataset is shuffled per epoch (seeded)
            net.fit(**fit_args, shuffle=False, verbose=0)
        # a callback that stopped the run for its own reason (cnncli tune's pruning) names it
        stopped_by = next(
            (cb.stop_status for cb in extra_callbacks if getattr(cb, "stop_status", None)), None
        )
        finish_run(out, run, st, opts.epochs, stopped_by)

    try:
        with distribute.keras_workarounds(where.plan):
            run_or_interrupt(guard.watching(work), run_dir, out, run, st, where.plan)
    finally:
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)
        if not where.plan.is_chief:  # the Keras multi-worker habit: write, then delete
            shutil.rmtree(out, ignore_errors=True)
    notes = []
    if not to_train:
        notes.append(
            f"{run_dir}: no epoch left to train ({st.epoch} finished); wrote what the stopped "
            "run left undone (last/best model, history.csv, history.png, run.json)"
        )
    return TrainResult(
        run_dir=run_dir,
        epochs_run=st.epoch,
        best_epoch=st.best_epoch,
        best_value=st.best_value,
        monitor=cast(str, opts.monitor),
        history=st.history,
        stopped_early=st.epoch < opts.epochs,
        resumed_from=initial_epoch,
        notes=notes,
        distribute=detail,
        wrote=where.plan.is_chief,
    )
