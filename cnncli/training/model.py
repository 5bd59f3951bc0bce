"""The model a run trains: the architecture from its source (--arch, --spec, --from or a
Keras model), wrapped to take raw pixels (raw 0..255 pixels -> Rescaling(1/255) ->
augmentation -> the architecture), its head read from the layers (cnncli.models.head),
compiled for the dataset (2 classes: sigmoid + binary cross-entropy; more: softmax + sparse
categorical cross-entropy; multilabel and regression: cnncli.training.tasks), balanced class
weights, and the model a resume continues.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from cnncli.datasets.store import DatasetInfo
from cnncli.errors import InputError, ModelError, UsageError
from cnncli.models.head import UNITS_LAYER, Head, model_head
from cnncli.training.augment import (
    AugmentOptions,
    augmentation_layers,
    existing_augmentation,
    make_shear_portable,
    without_augmentation,
)
from cnncli.training.callbacks import set_seed_states
from cnncli.training.options import ModelSource, TrainOptions
from cnncli.training.precision import float32_model, with_policy
from cnncli.training.tasks import (
    check_from_model,
    compile_args,
    positive_weights,
    units_layer,
)


def build_model(
    source: ModelSource,
    info: DatasetInfo,
    opts: TrainOptions,
    policy_for: Callable[[Any], str] | None = None,
) -> tuple:
    """(compiled training model, its Head) for `source` on the dataset `info`. Call it in
    the strategy's scope. `policy_for(model)`: the Keras dtype policy it computes in
    (cnncli.training.precision; None: float32)."""
    arch, raw_pixels = source_model(source, info, opts)
    net = build_training_model(
        arch,
        info,
        opts.augment,
        seed=opts.seed,
        raw_pixels=raw_pixels,
        after_stem=source.kind == "default",
    )
    if policy_for is not None:
        net = with_policy(net, policy_for(net))
    head = training_head(net, info.output_size, info.task)
    compile_model(net, opts, head, info)
    return net, head


def source_model(source: ModelSource, info: DatasetInfo, opts: TrainOptions | None = None) -> tuple:
    """The architecture as a Keras model: (model, takes_raw_pixels); a built-in or spec
    architecture gets the head of the dataset's task."""
    shape, n, task = info.image.shape, info.output_size, info.task
    if source.kind == "model":  # a Keras model object (library use, tests)
        import tensorflow as tf

        if tf.distribute.has_strategy():  # its variables live outside the scope: a copy in it
            clone = keras.models.clone_model(source.value)
            clone.set_weights(source.value.get_weights())
            return clone, False
        return source.value, False
    if source.kind == "arch":
        from cnncli.models.presets import build_architecture

        return build_architecture(source.value, input_shape=shape, num_classes=n, task=task), False
    if source.kind in ("spec", "default"):  # default: the recipe's designed network
        from cnncli.models.spec import build_from_spec

        return build_from_spec(source.value, input_shape=shape, num_classes=n, task=task), False
    if source.kind == "backbone":  # takes raw pixels: its preprocessing is in the model
        from cnncli.models.backbones import backbone_for_run

        return backbone_for_run(info, opts or TrainOptions(backbone=source.value)), True
    if source.kind == "from":
        from cnncli.models.io import load_model

        loaded = load_model(source.value, compile=False)
        if task != "classify" or loaded.metadata.task != "classify":
            check_from_model(loaded.metadata, model_head(loaded.model, loaded.metadata.task), info)
        # a cnncli model takes raw pixels (its own Rescaling); one saved elsewhere gets ours
        return loaded.model, float(loaded.metadata.pixel_scale) == 1.0
    raise UsageError(f"unknown model source {source.kind!r}")


def training_head(model: Any, num_classes: int, task: str = "classify") -> Head:
    """The model's Head (read from its last layer, nested models included), checked
    against the dataset's class count (labels, targets for another `task`)."""
    head = model_head(model, task)
    if head.num_classes == num_classes:
        return head
    if task != "classify":
        what = "labels" if task == "multilabel" else "targets"
        raise ModelError(
            f"the model's output has {head.units} unit(s) but the dataset has {num_classes} {what}",
            f"use an architecture with one output unit per {what[:-1]}",
        )
    raise ModelError(
        f"the model's output has {head.units} unit(s) but the dataset has {num_classes} classes",
        "use an architecture built for this dataset's classes (1 sigmoid unit for 2 classes, "
        "or one unit per class)",
    )


def build_training_model(
    arch: Any,
    info: DatasetInfo,
    augment: AugmentOptions | None,
    seed: int = 0,
    raw_pixels: bool = False,
    after_stem: bool = False,
) -> Any:
    """Input (raw 0..255 pixels) -> Rescaling(1/255) -> augmentation -> `arch`. `after_stem`
    (the recipe's network): a Sequential `arch` whose first layer average-pools takes the
    augmentation after that pooling (the same shifts and turns as fractions of the picture,
    on 64x fewer pixels for 500x500 photos pooled 8x8)."""
    shape = info.image.shape
    want = tuple(arch.inputs[0].shape[1:]) if arch.inputs else None
    if want is not None and (
        len(want) != 3 or any(a is not None and a != b for a, b in zip(want, shape, strict=False))
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
    # regression: the outputs in the table's units (a --from model has its own already)
    units = info.task == "regression" and arch.layers[-1].name != UNITS_LAYER
    if raw_pixels and not aug and not units:
        return arch
    inputs = keras.Input(shape=shape, name="pixels")
    x = inputs if raw_pixels else keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    layers = list(arch.layers) if isinstance(arch, keras.Sequential) else None
    if after_stem and layers and isinstance(layers[0], keras.layers.AveragePooling2D):
        x = layers.pop(0)(x)  # the pooling stem first, then the augmentation
    for layer in aug:
        x = layer(x)
    if layers is not None:
        for layer in layers:
            x = layer(x)
    else:
        x = arch(x)
    if units:
        x = units_layer(info)(x)
    return keras.Model(inputs, x, name=arch.name)


def _shape(s) -> str:
    return "x".join("?" if d is None else str(d) for d in s)


ONECYCLE_WARMUP = 0.25  # share of the steps the one-cycle rate rises over
ONECYCLE_START, ONECYCLE_END = 0.1, 0.01  # its first and last rate, as shares of the peak


def make_optimizer(opts: TrainOptions, info: DatasetInfo | None = None) -> Any:
    """The optimizer of --optimizer at --lr (None: Keras' default), with the recipe's
    one-cycle rate (--lr-schedule onecycle: per step, Keras' CosineDecay with a linear
    warm-up from ONECYCLE_START x --lr over the first ONECYCLE_WARMUP of the run's steps, then
    cosine down to ONECYCLE_END x --lr) and moving average of the weights (opts.ema: its
    momentum; the weights become the average at the run's last step, so what the last
    epoch validates and saves is the average; earlier epochs train undisturbed)."""
    cls = type(keras.optimizers.get(opts.optimizer))
    kwargs: dict = {} if opts.lr is None else {"learning_rate": float(opts.lr)}
    steps = 0
    if info is not None and (opts.lr_schedule == "onecycle" or opts.ema):
        from cnncli.datasets.tfdata import steps_per_epoch

        steps = steps_per_epoch(info, "train", opts.batch_size)
    if opts.lr_schedule == "onecycle":
        kwargs["learning_rate"] = onecycle_schedule(opts, cls, steps)
    if opts.ema:  # the average replaces the weights at the run's last step
        total = steps * int(opts.epochs or 1)
        kwargs.update(
            use_ema=True, ema_momentum=float(opts.ema), ema_overwrite_frequency=total or None
        )
    return cls(**kwargs)


def onecycle_schedule(opts: TrainOptions, cls: type, steps: int) -> Any:
    """The one-cycle rate over all the run's steps (`steps` an epoch, opts.epochs epochs)
    for the optimizer class `cls` (its default rate as the peak without --lr)."""
    peak = float(opts.lr if opts.lr is not None else cls().learning_rate)
    total = max(2, steps * int(opts.epochs or 1))
    warm = max(1, round(total * ONECYCLE_WARMUP))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * ONECYCLE_START,
        decay_steps=total - warm,
        alpha=ONECYCLE_END,
        warmup_target=peak,
        warmup_steps=warm,
    )


def replan_optimizer(optimizer: Any, opts: TrainOptions, info: DatasetInfo) -> str | None:
    """Fit a resumed run's optimizer (its state kept) to opts.epochs, the run's total now:
    a one-cycle rate and the moving average's last step are planned over all the run's
    steps, as the epoch-wise schedules (cosine, step) already are, so a resume with a
    larger --epochs follows the one-cycle of a run that long from the step reached and
    ends annealed, with the average in the weights. What changed, for the start-up lines
    (None: the total is the planned one)."""
    from cnncli.datasets.tfdata import steps_per_epoch

    if opts.lr_schedule != "onecycle" and not getattr(optimizer, "use_ema", False):
        return None
    steps = steps_per_epoch(info, "train", opts.batch_size)
    total = steps * int(opts.epochs or 1)
    if opts.lr_schedule != "onecycle":
        planned = optimizer.ema_overwrite_frequency
        optimizer.ema_overwrite_frequency = total or None
        if planned == total:
            return None
        return f"the weight average now lands at the last step of epoch {opts.epochs}"
    rate = optimizer.get_config()["learning_rate"]
    cfg = rate.get("config", {}) if isinstance(rate, dict) else {}
    planned = int(cfg.get("decay_steps", 0)) + int(cfg.get("warmup_steps", 0))
    schedule = onecycle_schedule(opts, type(optimizer), steps)
    optimizer.learning_rate = schedule  # Keras takes a new schedule; the step count stays
    if optimizer.use_ema:
        optimizer.ema_overwrite_frequency = total or None
    if planned == max(2, total) or not steps:
        return None
    done = int(keras.ops.convert_to_numpy(optimizer.iterations))
    was = round(planned / steps)
    now, last = (float(keras.ops.convert_to_numpy(schedule(k))) for k in (done, total - 1))
    return (
        f"one-cycle rate re-planned over {opts.epochs} epochs (it was planned for {was}): "
        f"epoch {done // steps + 1} starts at {now:.3g} where a {opts.epochs}-epoch run "
        f"would be, falling to {last:.3g} at epoch {opts.epochs}"
        + (", where the weight average lands" if optimizer.use_ema else "")
    )


def one_hot_training(model: Any) -> bool:
    """Whether `model` trains on one-hot labels (label smoothing of a softmax head: Keras'
    sparse cross-entropy has no smoothing)."""
    return isinstance(getattr(model, "loss", None), keras.losses.CategoricalCrossentropy)


def compile_model(
    model: Any,
    opts: TrainOptions,
    head: Head,
    info: DatasetInfo | None = None,
    optimizer: Any = None,
) -> None:
    """Compile for the head (and the dataset's task); `optimizer`: one to keep (a resume).
    Label smoothing (opts.label_smoothing) of a softmax head trains on one-hot labels
    (one_hot_training); the models saved for use are compiled sparse (compile_for_use)."""
    if optimizer is None:
        optimizer = make_optimizer(opts, info)
    if head.task != "classify":
        assert info is not None  # a task head is compiled for its dataset
        model.compile(optimizer=optimizer, **compile_args(info, head, opts.loss))
        return
    smoothing = float(opts.label_smoothing or 0.0)
    if head.kind == "binary":
        loss = keras.losses.BinaryCrossentropy(
            from_logits=head.from_logits, label_smoothing=smoothing
        )
    elif smoothing:
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=head.from_logits, label_smoothing=smoothing
        )
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        return
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=head.from_logits)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def compile_for_use(deployed: Any, net: Any) -> None:
    """Compile the model saved for use (best, last, checkpoints) as `net` is, except that a
    one-hot (label-smoothed) `net` gives it the plain sparse loss, so that Keras'
    load_model + evaluate works on it with class indices."""
    deployed.compile_from_config(net.get_compile_config())
    if one_hot_training(net):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=net.loss.from_logits)
        deployed.compile(optimizer=deployed.optimizer, loss=loss, metrics=["accuracy"])


def class_weights(info: DatasetInfo) -> Any:
    """Balanced weights n / (k * n_c) from the train split's counts; a multilabel dataset:
    each label's positive weight (cnncli.training.tasks.positive_weights), an array."""
    if info.task == "multilabel":
        return positive_weights(info)
    counts = info.per_class("train")
    names = info.class_names
    total = sum(counts.values())
    return {
        i: (total / (len(names) * counts[name]) if counts.get(name) else 1.0)
        for i, name in enumerate(names)
    }


def resume_model(
    path: Path, seed_states: list, info: DatasetInfo | None = None, opts: TrainOptions | None = None
) -> Any:
    """The model a resume continues (weights and optimizer state) with the random seed
    states of its last finished epoch. Call it in the strategy's scope. A multilabel or
    regression run is compiled again from `opts` with its optimizer kept (Keras does not
    store every loss argument: Huber's delta)."""
    from cnncli.models.io import memoise_keras_skipsets

    memoise_keras_skipsets()
    try:
        net = keras.models.load_model(path, compile=True)
    except Exception as e:  # a damaged state file
        raise InputError(f"cannot load the resume state {path} ({e})") from None
    make_shear_portable(net)
    set_seed_states(net, seed_states)
    if info is not None and opts is not None and info.task != "classify":
        head = model_head(net, info.task)
        compile_model(net, opts, head, info, optimizer=net.optimizer)
    return net


def model_for_use(net: Any) -> tuple[Any, Callable[[], Any]]:
    """(the model saved as best/last/checkpoints, a function that brings its weights up to
    date): `net` without its augmentation layers (the same layers and weights) and, for a
    mixed-precision `net`, a float32 copy of that (its weights copied before each save),
    compiled as `net` is so that Keras' load_model + evaluate works on it. Call it in the
    strategy's scope."""
    plain = without_augmentation(net)
    deployed = float32_model(plain)
    if deployed is not net:
        compile_for_use(deployed, net)
    if deployed is plain:
        return deployed, lambda: None
    return deployed, lambda: deployed.set_weights(plain.get_weights())
