"""A model traced into one graph: every layer's output (nested models expanded into their
inner layers), and the layers a user chooses by name, index or group.

`trace_model(model)` calls the model on a fresh Input layer by layer and records each
layer's symbolic output, so `Probe.build(chosen)` makes ONE Keras model whose outputs are
the chosen layers' outputs and then the model's own output. activations and embed both
read a model through it. TensorFlow/Keras are imported inside the functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnncli.errors import ModelError, UsageError
from cnncli.training.augment import is_augmentation

GROUPS = ("conv", "pool", "dense", "all")


@dataclass
class LayerInfo:
    index: int  # position in the expanded layer list (what --layers indexes)
    name: str  # "conv2d" or, inside a nested model, "inner/conv2d"
    type: str  # class name: Conv2D, MaxPooling2D, ...
    shape: tuple  # output shape without the batch axis
    augmentation: bool = False  # a random preprocessing layer: the identity outside training

    @property
    def kind(self) -> str:
        if len(self.shape) in (2, 3):
            return "spatial"
        return "vector"

    @property
    def draws_maps(self) -> bool:
        """Spatial output with more than one position per channel: drawn as a grid of maps.
        A 1x1 map (a global pooling kept 2-D) is one number per channel: drawn as values."""
        return self.kind == "spatial" and any(d != 1 for d in self.shape[:-1])

    @property
    def file_stem(self) -> str:
        return f"{self.index:02d}_{re.sub(r'[^0-9A-Za-z_.-]+', '-', self.name)}"

    @property
    def shape_text(self) -> str:
        return "(" + ", ".join(["None"] + [str(d) for d in self.shape]) + ")"


@dataclass
class Probe:
    """The model's input, each layer's symbolic output, and the final output."""

    keras_model: object
    inputs: object
    layers: list[LayerInfo]
    outputs: list  # symbolic output of layers[i]
    final: object  # the model's output

    def select(self, selection: str | Sequence | None) -> list[LayerInfo]:
        return select_layers(self.layers, selection)

    def build(self, chosen: Sequence[LayerInfo]) -> Any:
        """One Keras model whose outputs are the chosen layers' outputs, then the final output."""
        import keras

        return keras.Model(self.inputs, [self.outputs[li.index] for li in chosen] + [self.final])


def trace_model(model: Any) -> Probe:
    """Call the model on a fresh Input, layer by layer (nested models expanded), recording
    every layer's symbolic output. Works for Sequential models built without an Input."""
    import keras

    shape = _input_shape(model)
    inp = keras.Input(shape=shape[1:], name="image")
    record: list[tuple[str, object, object]] = []
    final = _trace(model, (inp,), {}, record, prefix="", top=True)
    if isinstance(final, (list, tuple)):
        final = final[0]
    layers = [
        LayerInfo(i, name, type(layer).__name__, tuple(_dims(out)), is_augmentation(layer))
        for i, (name, layer, out) in enumerate(record)
    ]
    return Probe(model, inp, layers, [out for _, _, out in record], final)


def _dims(tensor) -> list:
    out = tensor[0] if isinstance(tensor, (list, tuple)) else tensor
    return [None if d is None else int(d) for d in tuple(out.shape)[1:]]


def _input_shape(model) -> tuple:
    try:
        inputs = model.inputs
        if inputs:
            if len(inputs) != 1:
                raise ModelError(
                    f"the model has {len(inputs)} inputs; cnncli shows one-image models"
                )
            return tuple(inputs[0].shape)
    except (AttributeError, ValueError):
        pass
    for attr in ("input_shape", "_build_shapes_dict"):
        try:
            value = getattr(model, attr)
        except (AttributeError, ValueError):
            continue
        if isinstance(value, dict) and value:
            value = next(iter(value.values()))
        if value:
            return tuple(value)
    raise ModelError(
        "the model has no known input shape (a Sequential model never built)",
        "build it on an Input or call it once on data before saving",
    )


def _is_functional(layer) -> bool:
    return hasattr(layer, "_run_through_graph") and hasattr(layer, "_nodes_by_depth")


def _trace(layer, args, kwargs, record, prefix: str, top: bool = False):
    import keras

    inner = "" if top else f"{prefix}{layer.name}/"
    if isinstance(layer, keras.Sequential):
        x = args[0]
        for sub in layer.layers:
            if isinstance(sub, keras.layers.InputLayer):
                continue
            x = _trace(sub, (x,), {}, record, inner)
        return x
    if isinstance(layer, keras.Model) and _is_functional(layer):

        def op_fn(op):
            return lambda *a, **k: _trace(op, a, k, record, inner)

        return layer._run_through_graph(args[0], operation_fn=op_fn)
    if isinstance(layer, keras.layers.InputLayer):
        return args[0]
    out = layer(*args, **kwargs)
    record.append((f"{prefix}{layer.name}", layer, out))
    return out


def layer_group(info: LayerInfo) -> set[str]:
    t = info.type
    groups = {"all"}
    if "Conv" in t:
        groups.add("conv")
    if "Pool" in t:
        groups.add("pool")
    if t in ("Dense", "Flatten", "EinsumDense"):
        groups.add("dense")
    return groups


def default_layers(layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    """Every layer with spatial output, plus Flatten and Dense layers; augmentation layers
    (in models saved by hand or by earlier cnncli versions) are left out: they pass the image
    through unchanged outside training. Inside a backbone (cnncli train --backbone), one
    layer per stage: the last before the resolution changes."""
    return backbone_stages(
        [
            li
            for li in layers
            if not li.augmentation and (li.kind == "spatial" or li.type in ("Flatten", "Dense"))
        ]
    )


def backbone_stages(layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    """`layers` with those of a nested backbone (named "backbone/...") thinned to the last
    of each run of one output size: its named blocks' outputs, a few instead of hundreds."""
    from cnncli.models.backbones import BACKBONE_LAYER

    layers = [
        li
        for li in layers  # padding is not a stage of its own
        if not (li.name.startswith(f"{BACKBONE_LAYER}/") and "Padding" in li.type)
    ]
    inside = [li.name.startswith(f"{BACKBONE_LAYER}/") for li in layers]
    keep = []
    for i, li in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        last_of_stage = nxt is None or not inside[i + 1] or nxt.shape[:-1] != li.shape[:-1]
        if not inside[i] or last_of_stage:
            keep.append(li)
    return keep


def select_layers(
    layers: Sequence[LayerInfo], selection: str | Sequence[str | int] | None
) -> list[LayerInfo]:
    """`selection`: None (the default set), or names, indexes and groups (conv, pool,
    dense, all), as a comma-separated string or a list. Returned in layer order."""
    if selection is None or (isinstance(selection, str) and not selection.strip()):
        return default_layers(layers)
    tokens = selection.split(",") if isinstance(selection, str) else list(selection)
    chosen: set[int] = set()
    by_name: dict[str, int] = {}
    for li in layers:
        by_name.setdefault(li.name, li.index)
        by_name.setdefault(li.name.rsplit("/", 1)[-1], li.index)
    for raw in tokens:
        token = str(raw).strip()
        if not token:
            continue
        if token.lower() in GROUPS:
            chosen.update(li.index for li in layers if token.lower() in layer_group(li))
        elif token in by_name:
            chosen.add(by_name[token])
        elif re.fullmatch(r"-?\d+", token):
            i = int(token)
            if not -len(layers) <= i < len(layers):
                raise UsageError(
                    f"--layers: index {i} is out of range",
                    f"the model has layers 0 to {len(layers) - 1}",
                )
            chosen.add(layers[i].index)
        else:
            names = ", ".join(li.name for li in layers[:30])
            raise UsageError(
                f"--layers: no layer or group named {token!r}",
                f"use names ({names}), indexes, or {', '.join(GROUPS)}",
            )
    return [li for li in layers if li.index in chosen]
