"""Data augmentation as Keras preprocessing layers (active only during training, and left
out of the models a run saves for use: `without_augmentation`).

The course's ImageDataGenerator settings: rotation_range=40, width/height_shift_range=0.1,
shear_range=0.2 (0.2-0.4 in its examples), zoom_range (0.2 here: the course uses up to 0.5 in
one example, which crops/shrinks the image so much that small datasets train worse), and
horizontal_flip=True.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

from cnncli.errors import UsageError

COURSE: dict[str, Any] = {"rotation": 40.0, "shift": 0.1, "shear": 0.2, "zoom": 0.2, "flip": True}


@dataclass(frozen=True)
class AugmentOptions:
    rotation: float = 0.0  # degrees, +-
    shift: float = 0.0  # fraction of height/width, +-
    shear: float = 0.0  # shear intensity (as ImageDataGenerator's shear_range)
    zoom: float = 0.0  # fraction, +-
    flip: bool = False  # horizontal flip

    @classmethod
    def course(cls, **overrides) -> AugmentOptions:
        values = dict(COURSE)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_options(cls, course: bool = False, **transforms) -> AugmentOptions | None:
        """What --augment (`course`: the course's set, which `transforms` change one by one)
        and the transform options (rotation, shift, shear, zoom, flip; None: not given) ask
        for, or None when they ask for nothing."""
        given = {k: v for k, v in transforms.items() if v is not None}
        if course:
            return cls.course(**given)
        return cls(**given) if given else None

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.shift or self.shear or self.zoom or self.flip)

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        if not 0 <= self.rotation <= 180:
            raise UsageError(f"rotation must be 0..180 degrees, got {self.rotation}")
        for name in ("shift", "shear", "zoom"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise UsageError(f"{name} must be a fraction in 0..1, got {v}")


def augmentation_layers(options: AugmentOptions | None, seed: int = 0) -> list:
    """The Keras layers for `options` (empty when none is active)."""
    if options is None or not options.active:
        return []
    options.check()
    import keras

    layers = []
    if options.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="aug_flip"))
    if options.rotation:
        layers.append(
            keras.layers.RandomRotation(
                options.rotation / 360.0, fill_mode="nearest", seed=seed + 1, name="aug_rotation"
            )
        )
    if options.shift:
        layers.append(
            keras.layers.RandomTranslation(
                options.shift, options.shift, fill_mode="nearest", seed=seed + 2, name="aug_shift"
            )
        )
    if options.shear:
        layers.append(
            keras.layers.RandomShear(
                x_factor=options.shear,
                y_factor=options.shear,
                fill_mode="nearest",
                seed=seed + 3,
                name="aug_shear",
            )
        )
    if options.zoom:
        layers.append(
            keras.layers.RandomZoom(
                options.zoom, options.zoom, fill_mode="nearest", seed=seed + 4, name="aug_zoom"
            )
        )
    make_shear_portable(layers)
    return layers


def make_shear_portable(layers: Any) -> None:
    """Keras 3.15's RandomShear(0.2) stores its range as x_factor=[-0.2, 0.2], which its own
    constructor refuses, so a saved model with shear cannot be loaded again (nor a training
    run resumed). Give each RandomShear layer (of a list, or inside a model) a config that
    loads: the symmetric range as the one number it was built from."""
    import keras

    if isinstance(layers, keras.Model):
        layers = layers._flatten_layers(include_self=False, recursive=True)
    for layer in layers:
        if isinstance(layer, keras.layers.RandomShear):
            layer.get_config = functools.partial(_shear_config, layer)


def _shear_config(layer) -> dict:
    config = type(layer).get_config(layer)
    for key in ("x_factor", "y_factor"):
        value = config.get(key)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            lo, hi = (float(v) for v in value)
            if lo == -hi:
                config[key] = hi
    return config


def is_augmentation(layer: Any) -> bool:
    """A random preprocessing layer (RandomFlip, RandomRotation, ...): the identity outside
    training."""
    cls = type(layer)
    return cls.__name__.startswith("Random") and "preprocessing" in cls.__module__


def existing_augmentation(model: Any) -> list[str]:
    """Names of the random preprocessing layers (RandomFlip, RandomRotation, ...) a model
    already holds, nested models included: what augmentation_layers would add again."""
    layers = model._flatten_layers(include_self=False, recursive=True)
    return [layer.name for layer in layers if is_augmentation(layer)]


def without_augmentation(model: Any) -> Any:
    """`model` without its augmentation layers (nested models included), for saving: the
    same layer objects, so the same weights as training updates them. Augmentation is the
    identity outside training, so the outputs are the same; a model user (predict,
    activations, summary) never meets no-op layers. `model` itself when it has none."""
    import keras

    if not existing_augmentation(model):
        return model

    def kept(layer):
        return without_augmentation(layer) if isinstance(layer, keras.Model) else layer

    if isinstance(model, keras.Sequential):
        inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
        layers = [kept(layer) for layer in model.layers if not _only_augmentation(layer)]
        return keras.Sequential([inputs, *layers], name=model.name)

    def call(layer, *args, **kwargs):
        return args[0] if _only_augmentation(layer) else layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=kept, call_function=call)


def _only_augmentation(layer) -> bool:
    """An augmentation layer, or a nested model made of nothing else (left out whole)."""
    inner = getattr(layer, "layers", None)
    if inner:
        return all(_only_augmentation(sub) for sub in inner)
    return is_augmentation(layer)
