"""The fit itself, once cnncli.training.fit's checks have passed: the strategy a run trains
under and the folder it writes, its input pipelines, its callbacks, and `model.fit`, run
under cnncli.training.ending (Ctrl-C, SIGTERM, a full disk, a broken cluster: clear errors).

Every epoch end writes the run folder (cnncli.training.callbacks.RunFolderCallback), so an
interrupted run (Ctrl-C, SIGTERM, kill -9) resumes from its last finished epoch. The models
saved for use (best, last, checkpoints) leave augmentation out; the resume state keeps it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from cnncli.atomic import write_json
from cnncli.datasets.store import DatasetInfo
from cnncli.errors import writing
from cnncli.models.io import save_model
from cnncli.training import distribute, rundir
from cnncli.training.augment import without_augmentation
from cnncli.training.callbacks import (
    EventsCallback,
    ResumableEarlyStopping,
    RunFolderCallback,
    RunState,
    monitor_mode,
)
from cnncli.training.ending import early_stop_reached, finish_run, run_or_interrupt
from cnncli.training.events import TrainEvents, TrainResult
from cnncli.training.guard import DatasetGuard
from cnncli.training.model import build_model, class_weights, resume_model
from cnncli.training.options import ModelSource, TrainOptions


@dataclass
class Placement:
    """The strategy a run trains under and the folder it writes: RUN_DIR on the chief (and
    on one machine); a temporary folder, deleted at the end, on the other workers."""

    plan: distribute.StrategyPlan
    strategy: object = None  # a tf.distribute strategy, or None: TensorFlow's default
    out_dir: Path | None = None

    @property
    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def open_folder(self, prepare) -> Path:
        """RUN_DIR (made by `prepare`) on the chief, a temporary folder on the others."""
        if self.plan.is_chief:
            self.out_dir = prepare()
        else:
            self.out_dir = Path(tempfile.mkdtemp(prefix="cnncli-worker-"))
        return self.out_dir


def _place(plan: distribute.StrategyPlan, opts: TrainOptions) -> Placement:
    """The strategy first (collective ops are configured at start-up), then the seeds."""
    where = Placement(plan, distribute.create_strategy(plan))
    keras.utils.set_random_seed(opts.seed)
    if opts.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return where


def train_run(dataset_dir, run_dir: Path, info: DatasetInfo, source: ModelSource,
              opts: TrainOptions, plan: distribute.StrategyPlan, overwrite: bool,
              events: TrainEvents | None, callbacks: Sequence) -> TrainResult:  # fmt: skip
    """A new run: build and compile the model, make RUN_DIR, write run.json, fit."""
    where = _place(plan, opts)
    with where.scope:
        net, head = build_model(source, info, opts)
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
    with writing(out / rundir.RUN_JSON):
        write_json(out / rundir.RUN_JSON, run)
    return _fit(net, info, run_dir, where, run, opts, RunState(), events, callbacks)


def resume_run(run_dir: Path, info: DatasetInfo, run: dict, state: dict, opts: TrainOptions,
               plan: distribute.StrategyPlan, events: TrainEvents | None,
               callbacks: Sequence) -> TrainResult:  # fmt: skip
    """Continue RUN_DIR from the state of its last finished epoch (`state`: state.json)."""
    where = _place(plan, opts)
    out = where.open_folder(lambda: run_dir)
    with where.scope:
        net = resume_model(rundir.state_dir(run_dir) / state["model"], state.get("seed_states", []))
    st = RunState(
        epoch=state["epoch"],
        best_value=state.get("best_value"),
        best_epoch=state.get("best_epoch", 0),
        history=list(state.get("history", [])),
        epoch_seconds=list(state.get("epoch_seconds", [])),
        early_stop=state.get("early_stop"),
    )
    run["status"] = "running"
    for key in ("interrupted_by", "failed_by", "error"):
        run.pop(key, None)
    run.setdefault("resumes", []).append({"at_epoch": st.epoch, "time": rundir.now()})
    with writing(out / rundir.RUN_JSON):
        write_json(out / rundir.RUN_JSON, run)
    return _fit(net, info, run_dir, where, run, opts, st, events, callbacks, resumed=True)


def _inputs(info: DatasetInfo, opts: TrainOptions, where: Placement, initial_epoch: int,
            cache_dir) -> tuple:  # fmt: skip
    """(train, val or None, steps per epoch, class weights for fit, distribution details)."""
    from cnncli.datasets.tfdata import make_tf_dataset, shard_files, steps_per_epoch

    has_val = info.count("val") > 0
    weights = class_weights(info) if opts.class_weight == "auto" else None
    common = {"cache": opts.cache, "cache_dir": cache_dir}
    # one spare epoch: Keras may look one batch ahead
    epochs = {"repeat": True, "first_epoch": initial_epoch, "last_epoch": opts.epochs + 1}
    plan = where.plan
    if not plan.multi_worker:
        train_ds = make_tf_dataset(info, "train", batch_size=opts.batch_size, shuffle=True,
                                   seed=opts.seed, **epochs, **common)  # fmt: skip
        val_ds = (make_tf_dataset(info, "val", batch_size=opts.batch_size, **common)
                  if has_val else None)  # fmt: skip
        steps = steps_per_epoch(info, "train", opts.batch_size)
        return train_ds, val_ds, steps, weights, {}

    # Several workers: each reads its own train shard files and runs the same number of
    # steps (an epoch is one pass over the whole train split at the global batch); every
    # worker evaluates the whole val split, so the val metrics are those of one machine.
    n, global_batch = plan.num_workers, opts.batch_size * plan.num_workers
    steps = -(-info.count("train") // global_batch)
    read: dict[int, list[str]] = {}

    def train_fn(ctx):
        files = shard_files(info, "train", ctx.num_input_pipelines, ctx.input_pipeline_id)
        read[ctx.input_pipeline_id] = [Path(f).name for f in files]
        per_worker = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        ds = make_tf_dataset(
            info, "train", batch_size=ctx.get_per_replica_batch_size(global_batch),
            shuffle=True, seed=opts.seed, num_shards=ctx.num_input_pipelines,
            shard_index=ctx.input_pipeline_id, epoch_steps=steps * per_worker,
            class_weight=weights, **epochs, **common,
        )  # fmt: skip
        return distribute.auto_shard_off(ds)

    def val_fn(ctx):
        batch = ctx.get_per_replica_batch_size(global_batch)
        return distribute.auto_shard_off(make_tf_dataset(info, "val", batch_size=batch, **common))

    train_ds = where.strategy.distribute_datasets_from_function(train_fn)
    val_ds = where.strategy.distribute_datasets_from_function(val_fn) if has_val else None
    every = [p.name for p in info.shard_paths("train")]
    detail = {
        **plan.to_dict(),
        "worker": plan.rank,
        "per_worker_batch": opts.batch_size,
        "global_batch": global_batch,
        "steps_per_epoch": steps,
        "read_shards": read.get(plan.rank, []),
        "train_shards": {str(r): every[r::n] for r in range(n)},
    }
    return train_ds, val_ds, steps, None, detail  # class weights are in the data


def _for_use(net):
    """The model saved as best/last/checkpoints: `net` without its augmentation layers (the
    same layers and weights), compiled as `net` is so that Keras' load_model + evaluate
    works on it. Call it in the strategy's scope."""
    deployed = without_augmentation(net)
    if deployed is not net:
        deployed.compile_from_config(net.get_compile_config())
    return deployed


def _callbacks(out: Path, run: dict, opts: TrainOptions, st: RunState,
               events: TrainEvents | None, steps: int, deployed) -> list:  # fmt: skip
    """Early stopping (resumable), the run folder writer (saving `deployed`, the model for
    use), events, TensorBoard."""
    metadata = run["metadata"]

    def on_epoch_saved(state: RunState):
        run["epoch_seconds"] = state.epoch_seconds
        run["epochs_finished"] = state.epoch
        run["best"] = {
            "epoch": state.best_epoch,
            "monitor": opts.monitor,
            "value": state.best_value,
            "metrics": next((r for r in state.history if r["epoch"] == state.best_epoch), {}),
        }
        with writing(out / rundir.RUN_JSON):
            write_json(out / rundir.RUN_JSON, run)

    early = None
    cbs: list = []
    if events is not None:
        cbs.append(EventsCallback(events, steps))
    if opts.early_stop:
        early = ResumableEarlyStopping(
            monitor=opts.monitor, patience=opts.early_stop, mode=monitor_mode(opts.monitor),
            initial=st.early_stop,
        )  # fmt: skip
        cbs.append(early)
    folder = RunFolderCallback(
            out,
            epochs=opts.epochs,
            save_model=lambda _training, path: save_model(deployed, path, metadata=metadata),
            checkpoint_pattern=opts.checkpoint,
            save_best_only=opts.save_best_only,
            monitor=opts.monitor,
            state=st,
            early_stopping=early,
            events=events,
            on_epoch_saved=on_epoch_saved,
        )  # fmt: skip
    cbs.append(folder)
    if opts.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard")))
    return cbs, folder


def _fit(net, info: DatasetInfo, run_dir: Path, where: Placement, run: dict, opts: TrainOptions,
         st: RunState, events: TrainEvents | None, extra_callbacks,
         resumed: bool = False) -> TrainResult:  # fmt: skip
    """Fit `net` from epoch st.epoch to opts.epochs, writing where.out_dir (RUN_DIR on the
    chief; a temporary folder, removed at the end, on the other workers), then finish the
    run folder (history.png, run.json). `resumed`: first rewrite what the last committed
    epoch derives (a run stopped before it was written); with no epoch left to train (a run
    stopped after its last epoch), only that and the finish are done."""
    import numpy as np

    initial_epoch = st.epoch
    out = where.out_dir
    to_train = initial_epoch < opts.epochs and not early_stop_reached(
        st.early_stop, opts.early_stop, st.epoch
    )
    # --cache disk: a cache file per process in the run folder, removed when training ends
    # (a half-written cache of an interrupted run would otherwise block the next one)
    cache_dir = out / f"cache-{os.getpid()}" if opts.cache == "disk" and to_train else None
    train_ds, val_ds, steps, weights, detail = (
        _inputs(info, opts, where, initial_epoch, cache_dir) if to_train else (None,) * 4 + ({},)
    )
    if where.strategy is not None:
        batch = min(opts.batch_size, info.count("train"))
        zeros = (np.zeros((batch, *info.image.shape), "float32"), np.zeros((batch,), "int32"))
        distribute.prepare_model(net, where.strategy, zeros)
    run["distribute"] = detail or where.plan.to_dict()
    with where.scope:
        deployed = _for_use(net)
    cbs, folder = _callbacks(out, run, opts, st, events, steps or 0, deployed)
    # first: a changed dataset stops the run before an epoch that read it is saved
    guard = DatasetGuard(info.path, run["dataset"]["sha256"], run_dir, lambda: st.epoch)
    cbs = [guard, *cbs, *extra_callbacks]
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
            }
        )
    fit_args = {"x": train_ds, "epochs": opts.epochs, "initial_epoch": initial_epoch,
                "steps_per_epoch": steps, "validation_data": val_ds, "class_weight": weights,
                "callbacks": cbs}  # fmt: skip

    def work():
        if resumed and st.epoch and where.plan.is_chief:  # what the committed epoch derives
            folder.set_model(net)
            folder.save_outputs()
        if to_train:
            # shuffle=False: the dataset is shuffled per epoch (seeded)
            net.fit(**fit_args, shuffle=False, verbose=0)
        finish_run(out, run, st, opts.epochs)

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
        monitor=opts.monitor,
        history=st.history,
        stopped_early=st.epoch < opts.epochs,
        resumed_from=initial_epoch,
        notes=notes,
        distribute=detail,
        wrote=where.plan.is_chief,
    )
