"""The model a run trains: the architecture from its source (--arch, --spec, --from or a
Keras model), wrapped to take raw pixels (raw 0..255 pixels -> Rescaling(1/255) ->
augmentation -> the architecture), its head read from the layers (cnncli.models.head),
compiled for the dataset (2 classes: sigmoid + binary cross-entropy; more: softmax + sparse
categorical cross-entropy), balanced class weights, and the model a resume continues.
"""

from __future__ import annotations

from pathlib import Path

import keras

from cnncli.datasets.store import DatasetInfo
from cnncli.errors import InputError, ModelError, UsageError
from cnncli.models.head import Head, model_head
from cnncli.training.augment import (
    AugmentOptions,
    augmentation_layers,
    existing_augmentation,
    make_shear_portable,
)
from cnncli.training.callbacks import set_seed_states
from cnncli.training.options import ModelSource, TrainOptions


def build_model(source: ModelSource, info: DatasetInfo, opts: TrainOptions) -> tuple:
    """(compiled training model, its Head) for `source` on the dataset `info`. Call it in
    the strategy's scope."""
    arch, raw_pixels = source_model(source, info)
    net = build_training_model(arch, info, opts.augment, seed=opts.seed, raw_pixels=raw_pixels)
    head = training_head(net, info.num_classes)
    compile_model(net, opts, head)
    return net, head


def source_model(source: ModelSource, info: DatasetInfo) -> tuple:
    """The architecture as a Keras model: (model, takes_raw_pixels)."""
    shape, n = info.image.shape, info.num_classes
    if source.kind == "model":  # a Keras model object (library use, tests)
        import tensorflow as tf

        if tf.distribute.has_strategy():  # its variables live outside the scope: a copy in it
            clone = keras.models.clone_model(source.value)
            clone.set_weights(source.value.get_weights())
            return clone, False
        return source.value, False
    if source.kind == "arch":
        from cnncli.models.presets import build_architecture

        return build_architecture(source.value, input_shape=shape, num_classes=n), False
    if source.kind == "spec":
        from cnncli.models.spec import build_from_spec

        return build_from_spec(source.value, input_shape=shape, num_classes=n), False
    if source.kind == "from":
        from cnncli.models.io import load_model

        loaded = load_model(source.value, compile=False)
        # a cnncli model takes raw pixels (its own Rescaling); one saved elsewhere gets ours
        return loaded.model, float(loaded.metadata.pixel_scale) == 1.0
    raise UsageError(f"unknown model source {source.kind!r}")


def training_head(model, num_classes: int) -> Head:
    """The model's Head (read from its last layer, nested models included), checked
    against the dataset's class count."""
    head = model_head(model)
    if head.num_classes == num_classes:
        return head
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
    if raw_pixels and not aug:
        return arch
    inputs = keras.Input(shape=shape, name="pixels")
    x = inputs if raw_pixels else keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for layer in aug:
        x = layer(x)
    if isinstance(arch, keras.Sequential):
        for layer in arch.layers:
            x = layer(x)
        return keras.Model(inputs, x, name=arch.name)
    return keras.Model(inputs, arch(x), name=arch.name)


def _shape(s) -> str:
    return "x".join("?" if d is None else str(d) for d in s)


def compile_model(model, opts: TrainOptions, head: Head) -> None:
    config = {} if opts.lr is None else {"learning_rate": opts.lr}
    optimizer = keras.optimizers.get({"class_name": opts.optimizer, "config": config})
    if head.kind == "binary":
        loss = keras.losses.BinaryCrossentropy(from_logits=head.from_logits)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=head.from_logits)
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


def resume_model(path: Path, seed_states: list):
    """The model a resume continues (weights and optimizer state) with the random seed
    states of its last finished epoch. Call it in the strategy's scope."""
    try:
        net = keras.models.load_model(path, compile=True)
    except Exception as e:  # a damaged state file
        raise InputError(f"cannot load the resume state {path} ({e})") from None
    make_shear_portable(net)
    set_seed_states(net, seed_states)
    return net
