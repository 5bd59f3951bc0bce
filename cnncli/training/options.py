"""What a training run is asked to do, and its rules, checked before TensorFlow loads.

`TrainOptions` holds every option of a run (stored as run.json's `options`); `check()` refuses
bad values and `for_dataset(info)` fills in the defaults that depend on the dataset (epochs,
the monitored metric, the checkpoint pattern). `model_source` is the one place that says
which architecture a run trains: at most one of --arch, --spec, --from (or a Keras model);
none is the network the recipe designs (cnncli.training.recipes).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from cnncli.errors import UsageError
from cnncli.training.augment import AugmentOptions
from cnncli.training.precision import PRECISIONS

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo

DEFAULT_EPOCHS = 10
OPTIMIZERS = ("adam", "rmsprop", "sgd", "adadelta")
KERAS_DEFAULT_LR = {"adam": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2, "adadelta": 1e-3}  # no --lr
CACHE_MODES = ("memory", "disk", "none")
METRICS = ("loss", "accuracy")  # what a run logs (and --monitor may name), val_ on val
# ... for each dataset task (a multi-label run also logs precision_/recall_ per label)
TASK_METRICS = {
    "classify": METRICS,
    "multilabel": ("loss", "f1_micro", "f1_macro", "auc"),
    "regression": ("loss", "mae", "rmse", "r2"),
}
LOSSES = ("mse", "huber")  # --loss of a regression run
CHECKPOINT_DIR = "checkpoints"  # where a --checkpoint pattern without a folder writes
DEFAULT_CHECKPOINT = f"{CHECKPOINT_DIR}/save-{{epoch:02d}}-{{val_loss:.4f}}.keras"
NO_VAL_CHECKPOINT = f"{CHECKPOINT_DIR}/save-{{epoch:02d}}-{{loss:.4f}}.keras"


@dataclass
class TrainOptions:
    epochs: int | None = None  # None: DEFAULT_EPOCHS (a resumed run: its own total)
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
    checkpoint: str | None = None  # default: DEFAULT_CHECKPOINT (NO_VAL_CHECKPOINT: no val)
    save_best_only: bool = True
    deterministic: bool = True
    loss: str | None = None  # regression: mse (default) or huber, on standardized targets
    precision: str = "auto"  # auto, fp32 or bf16 (cnncli.training.precision)
    steps_per_execution: int | None = None  # None: chosen for the epoch's steps
    # transfer learning and schedules: rules in cnncli.training.transfer
    backbone: str | None = None  # a keras.applications backbone (cnncli.models.backbones)
    weights: str | None = None  # none, a file, or None: the official file in the Keras cache
    alpha: float | None = None  # MobileNet width
    freeze: bool = False  # the backbone frozen all run
    fine_tune_at: int | None = None  # the epoch (1-based) the backbone's top is unfrozen
    fine_tune_lr: float = 1e-5
    unfreeze: int | None = None  # backbone layers unfrozen from the top (None: all)
    lr_schedule: str | None = None  # None: the recipe's (course: constant)
    warmup: int = 0  # epochs of linear warm-up
    # the recipe (cnncli.training.recipes) fills what is left None here
    recipe: str | None = None  # fast or course; None: fast without an architecture, else course
    label_smoothing: float | None = None  # classification targets smoothed by this
    ema: float | None = None  # momentum of the weights' moving average (0: none)

    def check(self) -> None:
        """Refuse a bad value (UsageError naming the option and what it takes)."""
        if self.epochs is not None and self.epochs < 1:
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
        if self.loss is not None and self.loss not in LOSSES:
            raise UsageError(f"unknown --loss {self.loss!r}", f"use one of {', '.join(LOSSES)}")
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown --precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}"
            )
        if self.steps_per_execution is not None and self.steps_per_execution < 1:
            raise UsageError(
                f"--steps-per-execution must be at least 1, got {self.steps_per_execution}"
            )
        if self.early_stop is not None and self.early_stop < 1:
            raise UsageError(f"--early-stop must be at least 1 epoch, got {self.early_stop}")
        if self.augment is not None:
            self.augment.check()
        from cnncli.training.recipes import check_recipe

        check_recipe(self.recipe)
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise UsageError(f"label smoothing must be in 0..1, got {self.label_smoothing}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise UsageError(f"the weight average's momentum must be in 0..1, got {self.ema}")
        from cnncli.training.transfer import check_transfer

        check_transfer(self)
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise UsageError(
                "--tensorboard needs the tensorboard package, which is not installed",
                "pip install tensorboard, or leave out --tensorboard",
            )

    def for_dataset(self, info) -> TrainOptions:
        """A copy with the defaults that depend on the dataset (a DatasetInfo)
        filled in: epochs, the monitored metric and the checkpoint pattern (both checked
        against the dataset's splits; a pattern without a folder goes into checkpoints/)."""
        has_val = info.count("val") > 0
        task = getattr(info, "task", "classify")
        check_task_options(self, task)
        metrics = TASK_METRICS[task]
        monitor = self.monitor or ("val_loss" if has_val else "loss")
        if monitor.startswith("val_") and not has_val:
            raise UsageError(f"--monitor {monitor} needs a val split, and {info.path} has none")
        known = [*metrics, *(f"val_{m}" for m in metrics if has_val)]
        if monitor not in known:
            raise UsageError(
                f"unknown --monitor {monitor!r}"
                + ("" if task == "classify" else f" for a {task} dataset"),
                f"use one of {', '.join(known)}",
            )
        pattern = self.checkpoint or (DEFAULT_CHECKPOINT if has_val else NO_VAL_CHECKPOINT)
        check_checkpoint_pattern(pattern, has_val, metrics)
        if not os.path.dirname(pattern) and not os.path.isabs(pattern):
            pattern = f"{CHECKPOINT_DIR}/{pattern}"  # the course's bare "save-....h5" too
        epochs = DEFAULT_EPOCHS if self.epochs is None else self.epochs
        from cnncli.training.transfer import check_transfer, check_transfer_dataset

        filled = replace(
            self,
            epochs=epochs,
            monitor=monitor,
            checkpoint=pattern,
            lr_schedule=self.lr_schedule or "constant",
            label_smoothing=self.label_smoothing or 0.0,
            ema=self.ema or 0.0,
        )
        check_transfer(filled)  # --fine-tune-at against the default epochs too
        check_transfer_dataset(filled, info)
        return filled

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


def monitor_mode(monitor: str) -> str:
    """min for a loss or an error (mae, rmse), max for the others (accuracy, f1, auc, r2)."""
    lower = ("loss", "error", "mae", "rmse")
    return "min" if any(w in monitor for w in lower) else "max"


def check_task_options(opts: TrainOptions, task: str) -> None:
    """The options that only some dataset tasks take: --loss (regression), --class-weight
    auto (classify: balanced class weights; multilabel: per-label positive weights)."""
    if opts.loss is not None and task != "regression":
        raise UsageError(
            f"--loss {opts.loss} is for regression datasets; this dataset's task is {task}",
            "leave out --loss (the loss follows the dataset's task)",
        )
    if opts.class_weight and task == "regression":
        raise UsageError(
            "--class-weight is for classify and multilabel datasets; this one is regression",
            "leave out --class-weight",
        )


def no_val_notes(opts: TrainOptions, info: DatasetInfo) -> list[str]:
    """What a run on a dataset without a val split chooses by, said when training starts."""
    if info.count("val") > 0:
        return []
    stop = ", early stop watches it" if opts.early_stop else ""
    return [
        f"the dataset has no val split: best.keras is picked by the training {opts.monitor}"
        f"{stop}, and checkpoints are named {opts.checkpoint}; to choose by unseen images, "
        "build it with --val 0.2 (with --split-files too: carved out of the train list)"
    ]


def check_checkpoint_pattern(pattern: str, has_val: bool, metrics: Iterable[str] = METRICS) -> None:
    """Refuse a --checkpoint pattern that cannot be filled from an epoch's `metrics`."""
    keys = dict.fromkeys(metrics, 0.5)
    if has_val:
        keys.update({f"val_{m}": 0.5 for m in metrics})
    try:
        pattern.format(epoch=1, **keys)
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError(
            f"--checkpoint pattern {pattern!r} cannot be filled ({type(e).__name__}: {e})",
            "use {epoch}, "
            + ", ".join(f"{{{k}}}" for k in keys)
            + ("" if has_val else " (no val split)"),
        ) from None
    if not pattern.endswith((".keras", ".h5")):
        raise UsageError(f"--checkpoint pattern {pattern!r} must end in .keras or .h5")


@dataclass(frozen=True)
class ModelSource:
    """Where a run's architecture comes from: kind 'arch' (a preset name), 'spec' (a spec
    file or dict), 'from' (a saved model file) or 'model' (a Keras model object)."""

    kind: str
    value: Any  # a preset name, a spec (file or dict), a model file or a keras.Model

    def describe(self, model_name: str) -> dict:
        """run.json's model.source: the name, spec or file as given (a Keras model: its name)."""
        if self.kind in ("model", "default"):  # the default network: run.json's recipe
            return {"kind": self.kind, "value": model_name}
        return {"kind": self.kind, "value": str(self.value)}


def model_source(
    arch: str | None = None,
    spec: str | os.PathLike | None = None,
    from_model: str | os.PathLike | None = None,
    model: Any = None,
    backbone: str | None = None,
) -> ModelSource:
    """The one architecture source given (none: kind 'default', the network the recipe
    designs for the dataset); two or more is a UsageError. What can be checked
    without TensorFlow is checked here: the preset name, that the spec file reads and that
    the --from file is a model file."""
    given = [
        (kind, value)
        for kind, value in (
            ("arch", arch),
            ("spec", spec),
            ("from", from_model),
            ("model", model),
            ("backbone", backbone),
        )
        if value is not None
    ]
    if not given:
        return ModelSource("default", None)
    if len(given) != 1:
        raise UsageError(
            "say which model to train with at most one of --arch NAME, --spec FILE "
            "or --from MODEL_FILE (or --backbone NAME)",
            "see cnncli train --help",
        )
    kind, value = given[0]
    if kind == "arch":
        from cnncli.models.presets import get_architecture

        assert isinstance(value, str)  # --arch NAME
        get_architecture(value)
    elif kind == "spec" and isinstance(value, (str, os.PathLike)):
        from cnncli.models.spec import load_spec

        load_spec(value)
    elif kind == "from":
        from cnncli.models.io import read_metadata

        read_metadata(value)  # a missing, damaged or non-model file: one clear line
    return ModelSource(kind, value)
