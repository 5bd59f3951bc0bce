"""Train a CNN on a cnncli dataset into a run folder, and resume an interrupted run.

`train(dataset_dir, ...)` builds the trained model (raw pixels -> Rescaling(1/255) ->
augmentation -> the architecture), compiles it for the dataset (2 classes: sigmoid + binary
cross-entropy; more: softmax + sparse categorical cross-entropy), fits it on a tf.data
pipeline and writes the run folder (see cnncli.training.rundir). `resume(run_dir)` continues
from the last finished epoch with the same weights, optimizer state, seeds, best value and
history, so an interrupted and resumed run equals an uninterrupted one (CPU, fixed seed).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras

from cnncli import __version__
from cnncli.atomic import write_json
from cnncli.datasets.store import DatasetInfo, open_dataset
from cnncli.drawing.plots import plot_history
from cnncli.errors import CnnError, ExitCode, InputError, ModelError, UsageError
from cnncli.models.head import model_head
from cnncli.training import distribute, rundir
from cnncli.training.augment import (
    AugmentOptions,
    augmentation_layers,
    existing_augmentation,
    make_shear_portable,
)
from cnncli.training.callbacks import (
    EventsCallback,
    ResumableEarlyStopping,
    RunFolderCallback,
    RunState,
    TrainEvents,
    monitor_mode,
    set_seed_states,
)

OPTIMIZERS = ("adam", "rmsprop", "sgd", "adadelta")
CACHE_MODES = ("memory", "disk", "none")
DEFAULT_CHECKPOINT = "checkpoints/save-{epoch:02d}-{val_loss:.4f}.keras"
NO_VAL_CHECKPOINT = "checkpoints/save-{epoch:02d}-{loss:.4f}.keras"


class TrainingInterrupted(CnnError):
    """Ctrl-C during training: the last finished epoch is saved and can be resumed."""

    exit_code = ExitCode.INTERRUPTED


@dataclass
class TrainOptions:
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's Keras default
    seed: int = 0
    early_stop: int | None = None  # patience in epochs
    monitor: str | None = None  # default: val_loss (loss when there is no val split)
    class_weight: str | None = None  # None or "auto" (balanced from the train counts)
    tensorboard: bool = False
    cache: str = "memory"
    augment: AugmentOptions | None = None
    checkpoint: str | None = None  # default: DEFAULT_CHECKPOINT
    save_best_only: bool = True
    deterministic: bool = True

    def check(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"unknown optimizer {self.optimizer!r}", f"use one of {', '.join(OPTIMIZERS)}"
            )
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.cache not in CACHE_MODES:
            raise UsageError(
                f"unknown cache {self.cache!r}", f"use one of {', '.join(CACHE_MODES)}"
            )
        if self.class_weight not in (None, "auto"):
            raise UsageError(f"unknown --class-weight {self.class_weight!r}", "use auto")
        if self.early_stop is not None and self.early_stop < 1:
            raise UsageError(f"--early-stop must be at least 1 epoch, got {self.early_stop}")
        if self.augment is not None:
            self.augment.check()
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise UsageError(
                    "--tensorboard needs the tensorboard package, which is not installed",
                    "pip install tensorboard, or leave out --tensorboard",
                )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.to_dict() if self.augment else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainOptions:
        d = dict(d)
        if d.get("augment"):
            d["augment"] = AugmentOptions(**d["augment"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_value: float | None
    monitor: str
    history: list = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int = 0
    notes: list = field(default_factory=list)
    distribute: dict = field(default_factory=dict)  # several workers: who read what
    wrote: bool = True  # False on a worker that is not the chief (it writes nothing)

    @property
    def best_metrics(self) -> dict:
        for row in self.history:
            if row["epoch"] == self.best_epoch:
                return row
        return {}

    def to_dict(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "best_metrics": self.best_metrics,
            "stopped_early": self.stopped_early,
            "resumed_from": self.resumed_from,
            "distribute": self.distribute,
            "history": self.history,
        }


# ----------------------------------------------------------------------- the model
def _save(model, path: Path, metadata: dict) -> None:
    """Save with cnncli.models.io (metadata stored with the model; atomic)."""
    from cnncli.models.io import save_model

    save_model(model, path, metadata=metadata)


def _source_model(source: dict, info: DatasetInfo):
    """The architecture as a Keras model, from --arch, --spec or --from (a saved model).
    Returns (model, takes_raw_pixels)."""
    shape, n = info.image.shape, info.num_classes
    kind, value = source["kind"], source["value"]
    if kind == "model":  # a Keras model object (library use, tests)
        import tensorflow as tf

        if tf.distribute.has_strategy():  # its variables live outside the scope: a copy in it
            clone = keras.models.clone_model(value)
            clone.set_weights(value.get_weights())
            return clone, False
        return value, False
    if kind == "arch":
        from cnncli.models.presets import build_architecture

        return build_architecture(value, input_shape=shape, num_classes=n), False
    if kind == "spec":
        from cnncli.models.spec import build_from_spec

        return build_from_spec(value, input_shape=shape, num_classes=n), False
    if kind == "from":
        from cnncli.models.io import load_model

        loaded = load_model(value, compile=False)
        # a cnncli model takes raw pixels (its own Rescaling); one saved elsewhere gets ours
        return loaded.model, float(loaded.metadata.pixel_scale) == 1.0
    raise UsageError(f"unknown model source {kind!r}")


def _head(model, num_classes: int) -> tuple[str, bool]:
    """('binary'|'categorical', from_logits) for a model's output and the class count
    (the last layer's activation, looking inside a nested model: predict.model_head)."""
    head = model_head(model)
    if num_classes == 2 and head.units == 1:
        return "binary", head.from_logits
    if head.units == num_classes:
        return "categorical", head.from_logits
    raise ModelError(
        f"the model's output has {head.units} unit(s) but the dataset has {num_classes} classes",
        "use an architecture built for this dataset's classes (1 sigmoid unit for 2 classes, "
        "or one unit per class)",
    )


def build_training_model(
    arch, info: DatasetInfo, augment: AugmentOptions | None, seed: int = 0, raw_pixels: bool = False
):
    """Input (raw 0..255 pixels) -> Rescaling(1/255) -> augmentation -> `arch`."""
    shape = info.image.shape
    want = tuple(arch.inputs[0].shape[1:]) if arch.inputs else None
    if (
        want is not None
        and any(a is not None and a != b for a, b in zip(want, shape, strict=False))
        or (want is not None and len(want) != 3)
    ):
        raise ModelError(
            f"the architecture expects images of shape {_shape(want)} but the dataset's images "
            f"are {_shape(shape)} ({info.image.describe()})",
            "rebuild the dataset with matching --size/--color, or choose another architecture",
        )
    aug = augmentation_layers(augment, seed=seed)
    present = existing_augmentation(arch)
    if aug and present:
        raise UsageError(
            f"the model already has augmentation layers ({', '.join(present)}); "
            "the augmentation options would add a second set on top",
            "leave out --augment and the transform options: the model's own augmentation "
            "stays active while training",
        )
    make_shear_portable(arch)  # a loaded model's shear layers (--from) save loadably too
    if raw_pixels and not aug:
        return arch
    inputs = keras.Input(shape=shape, name="pixels")
    x = inputs if raw_pixels else keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if isinstance(arch, keras.Sequential):
        for layer in aug:
            x = layer(x)
        for layer in arch.layers:
            x = layer(x)
        return keras.Model(inputs, x, name=arch.name)
    for layer in aug:
        x = layer(x)
    return keras.Model(inputs, arch(x), name=arch.name)


def _shape(s) -> str:
    return "x".join("?" if d is None else str(d) for d in s)


def _compile(model, opts: TrainOptions, head: str, from_logits: bool) -> None:
    config = {} if opts.lr is None else {"learning_rate": opts.lr}
    optimizer = keras.optimizers.get({"class_name": opts.optimizer, "config": config})
    if head == "binary":
        loss = keras.losses.BinaryCrossentropy(from_logits=from_logits)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def class_weights(info: DatasetInfo) -> dict[int, float]:
    """Balanced weights n / (k * n_c) from the train split's counts."""
    counts = info.per_class("train")
    names = info.class_names
    total = sum(counts.values())
    return {
        i: (total / (len(names) * counts[name]) if counts.get(name) else 1.0)
        for i, name in enumerate(names)
    }


def versions() -> dict:
    import tensorflow as tf

    return {
        "cnncli": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "numpy": __import__("numpy").__version__,
    }


def _check_checkpoint_pattern(pattern: str, has_val: bool) -> None:
    keys = {"loss": 0.5, "accuracy": 0.5}
    if has_val:
        keys.update(val_loss=0.5, val_accuracy=0.5)
    try:
        pattern.format(epoch=1, **keys)
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError(
            f"--checkpoint pattern {pattern!r} cannot be filled ({type(e).__name__}: {e})",
            "use {epoch}, {loss}, {accuracy}"
            + (", {val_loss}, {val_accuracy}" if has_val else " (no val split)"),
        ) from None
    if not pattern.endswith((".keras", ".h5")):
        raise UsageError(f"--checkpoint pattern {pattern!r} must end in .keras or .h5")


# ----------------------------------------------------------------------- train / resume
@dataclass
class _Where:
    """The strategy a run trains under and the folder it writes: RUN_DIR on the chief (and
    on one machine); a temporary folder, deleted at the end, on the other workers."""

    plan: distribute.StrategyPlan
    strategy: object = None  # a tf.distribute strategy, or None: TensorFlow's default
    out_dir: Path | None = None

    @property
    def scope(self):
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def writes_elsewhere(self) -> bool:
        return not self.plan.is_chief


def _start(plan, info: DatasetInfo, check=None) -> _Where:
    """Checks that need no TensorFlow first (shards per worker, `check`: can the run folder
    be written), then the strategy, before any other TensorFlow work."""
    if plan.multi_worker:
        distribute.check_shards(len(info.shard_paths("train")), plan.num_workers, info.path)
    if check is not None and plan.is_chief:
        check()
    return _Where(plan, distribute.create_strategy(plan))


def _out_dir(where: _Where, prepare) -> Path:
    """RUN_DIR (made by `prepare`) on the chief, a temporary folder on the other workers."""
    if where.plan.is_chief:
        return prepare()
    return Path(tempfile.mkdtemp(prefix="cnncli-worker-"))


def train(
    dataset_dir,
    run_dir,
    *,
    arch: str | None = None,
    spec=None,
    from_model=None,
    model=None,
    options: TrainOptions | None = None,
    overwrite: bool = False,
    events: TrainEvents | None = None,
    callbacks: Sequence = (),
    strategy: str | distribute.StrategyPlan = "auto",
) -> TrainResult:
    """Train on DATASET_DIR into RUN_DIR. Exactly one of `arch` (a preset name), `spec` (a
    spec file or dict), `from_model` (a saved model file) or `model` (a Keras model) names
    the architecture. `strategy`: a --strategy name or a distribute.StrategyPlan (several
    workers: only the chief writes RUN_DIR). Raises TrainingInterrupted (exit 130) on
    Ctrl-C after saving."""
    opts = options or TrainOptions()
    opts.check()
    plan = strategy if isinstance(strategy, distribute.StrategyPlan) else (
        distribute.plan_strategy(strategy))  # fmt: skip
    sources = [(k, v) for k, v in (("arch", arch), ("spec", spec), ("from", from_model),
                                   ("model", model)) if v is not None]  # fmt: skip
    if len(sources) != 1:
        raise UsageError("give exactly one of --arch, --spec or --from")
    kind, value = sources[0]
    info = open_dataset(dataset_dir)
    if "train" not in info.splits or info.count("train") == 0:
        raise InputError(
            f"dataset {info.path} has no training images", "build it with a train split"
        )
    has_val = info.count("val") > 0
    monitor = opts.monitor or ("val_loss" if has_val else "loss")
    if monitor.startswith("val_") and not has_val:
        raise UsageError(f"--monitor {monitor} needs a val split, and {info.path} has none")
    pattern = opts.checkpoint or (DEFAULT_CHECKPOINT if has_val else NO_VAL_CHECKPOINT)
    _check_checkpoint_pattern(pattern, has_val)
    opts.monitor, opts.checkpoint = monitor, pattern

    where = _start(plan, info, lambda: rundir.check_run_dir(run_dir, overwrite=overwrite))
    _seed_everything(opts)
    source = {"kind": kind, "value": value}
    with where.scope:
        arch_model, raw = _source_model(source, info)
        net = build_training_model(arch_model, info, opts.augment, seed=opts.seed, raw_pixels=raw)
        head, from_logits = _head(net, info.num_classes)
        _compile(net, opts, head, from_logits)
    where.out_dir = _out_dir(where, lambda: rundir.prepare_run_dir(run_dir, overwrite=overwrite))

    source_desc = {"kind": kind, "value": str(value) if kind != "model" else net.name}
    run = {
        "format": "cnncli-run",
        "format_version": 1,
        "command": "train",
        "status": "running",
        "started": _now(),
        "dataset": {
            "path": str(Path(dataset_dir).resolve()),
            "sha256": info.sha256,
            "class_names": info.class_names,
            "image": info.image.to_dict(),
            "counts": {s: info.count(s) for s in info.splits},
        },
        "model": {
            "source": source_desc,
            "name": net.name,
            "params": int(net.count_params()),
            "head": head,
            "from_logits": from_logits,
            "loss": type(net.loss).__name__,
        },
        "options": opts.to_dict(),
        "versions": versions(),
        "metadata": _metadata(info),
    }
    write_json(where.out_dir / rundir.RUN_JSON, run)
    return _fit(net, info, Path(run_dir), where, run, opts, RunState(), events, callbacks)


def resume(
    run_dir,
    *,
    dataset_dir=None,
    epochs: int | None = None,
    events: TrainEvents | None = None,
    callbacks: Sequence = (),
    strategy: str | distribute.StrategyPlan = "auto",
) -> TrainResult:
    """Continue RUN_DIR from its last finished epoch (after Ctrl-C or kill -9). With several
    workers, every worker reads the chief's RUN_DIR (a shared folder, or a copy at the same
    path) and only the chief writes it."""
    plan = strategy if isinstance(strategy, distribute.StrategyPlan) else (
        distribute.plan_strategy(strategy))  # fmt: skip
    run_dir = Path(run_dir)
    state = rundir.read_state(run_dir)
    run = rundir.read_run_json(run_dir)
    opts = TrainOptions.from_dict(run["options"])
    if epochs is not None:
        opts.epochs = epochs
        run["options"]["epochs"] = epochs
    dataset_dir = Path(dataset_dir or run["dataset"]["path"])
    info = open_dataset(dataset_dir)
    if info.sha256 != run["dataset"]["sha256"]:
        raise InputError(
            f"{run_dir} was trained on another dataset (sha256 {run['dataset']['sha256'][:12]}), "
            f"not {dataset_dir} (sha256 {info.sha256[:12]})",
            "resume with the dataset the run started on, or start a new run",
        )
    if state["epoch"] >= opts.epochs:
        raise UsageError(
            f"{run_dir} already finished {state['epoch']} of {opts.epochs} epochs",
            "pass --epochs with a larger total to train further",
        )
    where = _start(plan, info)
    where.out_dir = _out_dir(where, lambda: run_dir)
    _seed_everything(opts)
    model_path = rundir.state_dir(run_dir) / state["model"]
    try:
        with where.scope:
            net = keras.models.load_model(model_path, compile=True)
    except Exception as e:  # a damaged state file
        raise InputError(f"cannot load the resume state {model_path} ({e})") from None
    make_shear_portable(net)
    set_seed_states(net, state.get("seed_states", []))
    st = RunState(
        epoch=state["epoch"],
        best_value=state.get("best_value"),
        best_epoch=state.get("best_epoch", 0),
        history=list(state.get("history", [])),
        epoch_seconds=list(state.get("epoch_seconds", [])),
        early_stop=state.get("early_stop"),
    )
    # history.csv may hold a row of an epoch whose state was never committed: rewrite it
    rundir.write_history(where.out_dir / rundir.HISTORY_CSV, st.history)
    run["status"] = "running"
    run.setdefault("resumes", []).append({"at_epoch": st.epoch, "time": _now()})
    write_json(where.out_dir / rundir.RUN_JSON, run)
    return _fit(net, info, run_dir, where, run, opts, st, events, callbacks)


def _seed_everything(opts: TrainOptions) -> None:
    keras.utils.set_random_seed(opts.seed)
    if opts.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _metadata(info: DatasetInfo) -> dict:
    return {
        "format_version": 1,
        "class_names": info.class_names,
        "image": info.image.to_dict(),
        "pixel_scale": 1.0,
        "dataset_sha256": info.sha256,
        "cnncli_version": __version__,
    }


def _plot(run_dir: Path, st: RunState) -> None:
    """history.png, drawn when training ends or is interrupted (not every epoch: a figure
    costs about as much as a small epoch; a run killed with -9 gets it on resume)."""
    if st.history:
        plot_history(run_dir / rundir.HISTORY_CSV, run_dir / rundir.HISTORY_PNG)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _datasets(info: DatasetInfo, opts: TrainOptions, where: _Where, initial_epoch: int,
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


def _fit(net, info, run_dir: Path, where: _Where, run: dict, opts: TrainOptions, st: RunState,
         events, extra_callbacks) -> TrainResult:  # fmt: skip
    """Fit `net` from epoch st.epoch to opts.epochs, writing where.out_dir (RUN_DIR on the
    chief; a temporary folder, removed at the end, on the other workers)."""
    import numpy as np

    initial_epoch = st.epoch
    out = where.out_dir
    # --cache disk: a cache file per process in the run folder, removed when training ends
    # (a half-written cache of an interrupted run would otherwise block the next one)
    cache_dir = out / f"cache-{os.getpid()}" if opts.cache == "disk" else None
    train_ds, val_ds, steps, weights, detail = _datasets(info, opts, where, initial_epoch,
                                                         cache_dir)  # fmt: skip
    if where.strategy is not None:
        batch = min(opts.batch_size, info.count("train"))
        zeros = (np.zeros((batch, *info.image.shape), "float32"), np.zeros((batch,), "int32"))
        distribute.prepare_model(net, where.strategy, zeros)
    run["distribute"] = detail or where.plan.to_dict()
    metadata = run["metadata"]

    def save(model, path):
        _save(model, path, metadata)

    def on_epoch_saved(state: RunState):
        run["epoch_seconds"] = state.epoch_seconds
        run["epochs_finished"] = state.epoch
        run["best"] = {
            "epoch": state.best_epoch,
            "monitor": opts.monitor,
            "value": state.best_value,
            "metrics": next((r for r in state.history if r["epoch"] == state.best_epoch), {}),
        }
        write_json(out / rundir.RUN_JSON, run)

    early = None
    cbs: list = []
    if opts.early_stop:
        early = ResumableEarlyStopping(
            monitor=opts.monitor, patience=opts.early_stop, mode=monitor_mode(opts.monitor),
            initial=st.early_stop,
        )  # fmt: skip
        cbs.append(early)
    cbs.append(
        RunFolderCallback(
            out,
            epochs=opts.epochs,
            save_model=save,
            checkpoint_pattern=opts.checkpoint,
            save_best_only=opts.save_best_only,
            monitor=opts.monitor,
            state=st,
            early_stopping=early,
            events=events,
            on_epoch_saved=on_epoch_saved,
        )  # fmt: skip
    )
    if events is not None:
        cbs.insert(0, EventsCallback(events, steps))
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
    if opts.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard")))
    cbs.extend(extra_callbacks)

    try:
        with distribute.keras_workarounds(where.plan):
            _fit_or_interrupt(net, train_ds, val_ds, opts, initial_epoch, steps, weights, cbs,
                              run_dir, out, run, st, where.plan)  # fmt: skip
        _plot(out, st)
        stopped = st.epoch < opts.epochs
        run["status"] = "early-stopped" if stopped else "finished"
        run["finished"] = _now()
        write_json(out / rundir.RUN_JSON, run)
    finally:
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)
        if where.writes_elsewhere():  # the Keras multi-worker habit: write, then delete
            shutil.rmtree(out, ignore_errors=True)
    return TrainResult(
        run_dir=run_dir,
        epochs_run=st.epoch,
        best_epoch=st.best_epoch,
        best_value=st.best_value,
        monitor=opts.monitor,
        history=st.history,
        stopped_early=stopped,
        resumed_from=initial_epoch,
        distribute=detail,
        wrote=where.plan.is_chief,
    )


def _fit_or_interrupt(net, train_ds, val_ds, opts, initial_epoch, steps, weights, cbs, run_dir,
                      out, run, st, plan) -> None:  # fmt: skip
    """model.fit; Ctrl-C becomes TrainingInterrupted once the finished epochs are saved, and
    a broken cluster (another worker stopped) one clear line."""
    import tensorflow as tf

    try:
        net.fit(
            train_ds,
            epochs=opts.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=val_ds,
            class_weight=weights,
            shuffle=False,  # the dataset is shuffled per epoch (seeded)
            callbacks=cbs,
            verbose=0,
        )
    except KeyboardInterrupt:
        _plot(out, st)
        run["status"] = "interrupted"
        write_json(out / rundir.RUN_JSON, run)
        raise TrainingInterrupted(
            f"training interrupted after {st.epoch} finished epoch(s); "
            f"the state of epoch {st.epoch} is saved in {run_dir}"
            if st.epoch
            else f"training interrupted before the first epoch finished (nothing to resume in "
            f"{run_dir})",
            (
                f"continue with: cnncli train --resume {run_dir}"
                + (" on every worker, with the same --workers" if plan.multi_worker else "")
            )
            if st.epoch
            else None,
        ) from None
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError) as e:  # fmt: skip
        if not plan.multi_worker:
            raise
        run["status"] = "interrupted"
        write_json(out / rundir.RUN_JSON, run)
        raise CnnError(
            f"worker {plan.rank} of {plan.num_workers}: the cluster broke off after {st.epoch} "
            f"finished epoch(s): another worker stopped or cannot be reached "
            f"({type(e).__name__})",
            f"start every worker again with cnncli train --resume {run_dir} and the same "
            "--workers (each with its --worker-index)"
            if st.epoch
            else "check that every worker runs and that the ports are open, then start again",
        ) from None
