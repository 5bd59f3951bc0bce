"""A model's layer table, like Keras' `model.summary()`, as data: output shapes (always
concrete, never "multiple"), parameters with Keras' exact totals, multiply-accumulate
operations (MACs) and activation memory for one image.

MACs count the multiplications of the layers that do them, per image:
- Conv1D/2D/3D: prod(output spatial) * C_out * prod(kernel) * C_in / groups
- Conv*Transpose: prod(input spatial) * C_in * prod(kernel) * C_out
- DepthwiseConv: prod(output spatial) * C_in * depth_multiplier * prod(kernel)
- SeparableConv: the depthwise part plus prod(output spatial) * C_in * depth_multiplier * C_out
- Dense: inputs * units (times the leading dimensions when the input has more than one)
- a nested model: the sum of its layers
Everything else (pooling, activations, normalisation, reshaping, dropout, bias additions)
counts 0 MACs. Activation memory is the bytes of each layer's output for one image
(batch size 1) in the output's dtype; the total sums every layer's output, input included.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.errors import ModelError, OutputExistsError, UsageError

MACS_NOTE = (
    "MACs: Conv and Dense multiply-accumulates for one image; pooling, activations, "
    "normalisation and bias additions count 0"
)


def _shape(tensor) -> list | None:
    try:
        return [None if d is None else int(d) for d in tensor.shape]
    except Exception:
        return None


def _first(x):
    if isinstance(x, (list, tuple)):
        return x[0] if x else None
    return x


def _node_tensors(layer) -> tuple[Any, Any]:
    """(input, output) symbolic tensors of a layer in its model (its first call)."""
    try:
        out = _first(layer.output)
    except Exception:
        out = None
    try:
        inp = _first(layer.input)
    except Exception:
        inp = None
    if out is None:  # a shared layer (several calls): use the first call
        nodes = getattr(layer, "_inbound_nodes", None) or []
        if nodes:
            node = nodes[0]
            return _first(node.input_tensors), _first(node.output_tensors)
    return inp, out


def _size(shape: list | None) -> int:
    if not shape:
        return 0
    return math.prod(int(d) for d in shape[1:] if d is not None)


def layer_macs(layer: Any, in_shape: list | None, out_shape: list | None) -> int:
    """Multiply-accumulates of one layer for one image (see the module docstring)."""
    kind = type(layer).__name__
    if in_shape is None or out_shape is None or any(d is None for d in out_shape[1:]):
        return 0
    config = layer.get_config() if hasattr(layer, "get_config") else {}
    channels_last = config.get("data_format", "channels_last") != "channels_first"

    def split(shape):  # (spatial dims, channels)
        dims = [int(d) for d in shape[1:]]
        return (dims[:-1], dims[-1]) if channels_last else (dims[1:], dims[0])

    kernel = config.get("kernel_size")
    kernel_n = math.prod(kernel) if isinstance(kernel, (list, tuple)) else 0
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        (out_sp, c_out), (_, c_in) = split(out_shape), split(in_shape)
        groups = int(config.get("groups", 1) or 1)
        return math.prod(out_sp) * c_out * kernel_n * c_in // groups
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        (in_sp, c_in), (_, c_out) = split(in_shape), split(out_shape)
        return math.prod(in_sp) * c_in * kernel_n * c_out
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        (out_sp, _), (_, c_in) = split(out_shape), split(in_shape)
        return math.prod(out_sp) * c_in * int(config.get("depth_multiplier", 1)) * kernel_n
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        (out_sp, c_out), (_, c_in) = split(out_shape), split(in_shape)
        mid = c_in * int(config.get("depth_multiplier", 1))
        return math.prod(out_sp) * mid * (kernel_n + c_out)
    if kind == "Dense":
        units = int(config["units"])
        return _size(in_shape) * units
    return 0


def _dtype_bytes(tensor) -> int:
    import numpy as np

    try:
        return np.dtype(str(tensor.dtype).replace("tf.", "")).itemsize
    except Exception:
        return 4


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _input_rows(model, depth: int = 0) -> list[dict]:
    """Rows for the model's inputs when its layer list does not show them (Sequential)."""
    import keras

    if any(isinstance(layer, keras.layers.InputLayer) for layer in model.layers):
        return []
    rows = []
    for tensor in model.inputs or []:
        shape = _shape(tensor)
        own = [x for x in getattr(model, "_layers", []) if isinstance(x, keras.layers.InputLayer)]
        name = own[0].name if len(own) == 1 else "input_layer"
        rows.append(_row(str(name), "InputLayer", shape, 0, True, 0, tensor, depth))
    return rows


def _row(name, kind, shape, params, trainable, macs, tensor, depth) -> dict:
    return {
        "name": name,
        "type": kind,
        "output_shape": shape,
        "params": int(params),
        "trainable": bool(trainable),
        "macs": int(macs),
        "activation_bytes": _size(shape) * (_dtype_bytes(tensor) if tensor is not None else 4),
        "depth": depth,
    }


def _layer_rows(model, expand: bool, depth: int) -> list[dict]:
    rows = _input_rows(model, depth)
    for layer in model.layers:
        inp, out = _node_tensors(layer)
        in_shape, out_shape = _shape(inp), _shape(out)
        if _is_model(layer):
            inner = _layer_rows(layer, expand, depth + 1)
            if inner and inner[0]["type"] == "InputLayer":
                inner = inner[1:]  # its input is the previous layer's output, already shown
            row = _row(
                layer.name,
                type(layer).__name__,
                out_shape,
                layer.count_params(),
                layer.trainable,
                sum(r["macs"] for r in inner if r["depth"] == depth + 1),
                out,
                depth,
            )
            # a backbone's trainable and frozen weights (the row shows both)
            row["trainable_params"] = _weights_count(layer.trainable_weights)
            row["frozen_params"] = _weights_count(layer.non_trainable_weights)
            # the nested model's activations: its layers' outputs
            row["activation_bytes"] = sum(
                r["activation_bytes"] for r in inner if r["depth"] == depth + 1
            )
            rows.append(row)
            if expand:
                rows.extend(inner)
            continue
        macs = layer_macs(layer, in_shape, out_shape)
        kind = type(layer).__name__
        rows.append(
            _row(
                layer.name, kind, out_shape, layer.count_params(), layer.trainable, macs, out, depth
            )
        )
    return rows


def _weights_count(weights) -> int:
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))


def summarize(model: Any, expand: bool = False) -> dict:
    """The summary of a built Keras model as a dict:
    {"name", "input_shape", "total_params", "trainable_params", "non_trainable_params",
     "macs", "activation_bytes", "layers": [{"name", "type", "output_shape", "params",
     "trainable", "macs", "activation_bytes", "depth"}]}.
    Totals are Keras' own (count_params, trainable_weights); shapes include the batch
    dimension (None) as Keras prints them. With `expand`, the layers of nested models
    follow their model's row with depth + 1 (not counted again in the totals)."""
    if not model.built or not model.inputs:
        raise ModelError(
            f"model {model.name!r} has no input shape yet, so its layers have no shapes",
            "give it an Input (keras.Input(shape)) or build it before summarizing",
        )
    rows = _layer_rows(model, expand, 0)
    top = [r for r in rows if r["depth"] == 0]
    inputs = [_shape(t) for t in model.inputs]
    return {
        "name": model.name,
        "input_shape": inputs[0] if len(inputs) == 1 else inputs,
        "total_params": int(model.count_params()),
        "trainable_params": _weights_count(model.trainable_weights),
        "non_trainable_params": _weights_count(model.non_trainable_weights),
        "macs": int(sum(r["macs"] for r in top)),
        "activation_bytes": int(sum(r["activation_bytes"] for r in top)),
        "layers": rows,
    }


@dataclass
class SourceSummary:
    summary: dict  # summarize()'s dict
    stored: str | None = None  # a cnncli model file: the classes and image stored with it
    notes: list[str] = field(default_factory=list)  # a model saved elsewhere: the defaults
    exported: Path | None = None  # the spec file written


def summarize_source(
    model_file: str | os.PathLike | None = None,
    *,
    arch: str | None = None,
    spec: str | os.PathLike | None = None,
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    expand: bool = False,
    unsafe: bool = False,
    export: str | os.PathLike | None = None,
    overwrite: bool = False,
    backbone: str | None = None,
    alpha: float | None = None,
) -> SourceSummary:
    """The summary of exactly one of a model file (loaded safely unless `unsafe`), a named
    architecture (`arch`) or a spec file (`spec`). `input_shape` and `classes` build --arch
    and --spec for another input or class count; `export` writes them as a spec file (an
    existing one only with `overwrite`)."""
    from cnncli.models import spec as specs

    if sum(s is not None for s in (model_file, arch, spec, backbone)) != 1:
        raise UsageError(
            "give exactly one of MODEL_FILE, --arch NAME or --spec FILE",
            "see `cnncli summary --list-arch` for the architectures",
        )
    if model_file is not None and (input_shape is not None or classes is not None):
        raise UsageError("--input and --classes apply to --arch and --spec, not to a model file")
    if model_file is not None and export is not None:
        raise UsageError("--export writes --arch or --spec as a spec file, not a model file")
    if export is not None and Path(export).exists() and not overwrite:
        raise OutputExistsError(export)
    result = SourceSummary({})
    if backbone is not None:  # frozen, as --freeze and --fine-tune-at start
        from cnncli.models.backbones import summary_model

        model = summary_model(backbone, input_shape, classes, alpha)
    elif arch is not None:
        from cnncli.models.presets import architecture_to_spec, build_architecture

        if export is not None:
            result.exported = specs.write_spec(
                architecture_to_spec(arch, input_shape, classes), export
            )
        model = build_architecture(arch, input_shape=input_shape, num_classes=classes)
    elif spec is not None:
        data = specs.load_spec(spec)
        model = specs.build_from_spec(data, input_shape=input_shape, num_classes=classes)
        if export is not None:
            result.exported = specs.write_spec(
                specs.with_overrides(data, input_shape, classes), export
            )
    else:
        from cnncli.models.io import load_model

        assert model_file is not None  # exactly one of the four is given
        loaded = load_model(model_file, unsafe=unsafe)
        model, meta = loaded.model, loaded.metadata
        if meta.from_cnncli:
            image = meta.image.describe() if meta.image else "?"
            result.stored = f"classes {', '.join(meta.class_names)}; {image}"
        result.notes = list(meta.notes)
    result.summary = summarize(model, expand=expand)
    return result


def format_shape(shape: Sequence[int | None] | None) -> str:
    """(None, 26, 26, 32), as Keras prints shapes."""
    if shape is None:
        return "?"
    if shape and isinstance(shape[0], list):
        return ", ".join(format_shape(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"


def format_count(n: int) -> str:
    """1.23 M / 456.7 K / 890 for MACs."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} G"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e4:
        return f"{n / 1e3:.1f} K"
    return f"{n:,}"


__all__ = [
    "MACS_NOTE",
    "SourceSummary",
    "format_bytes",
    "format_count",
    "format_shape",
    "layer_macs",
    "summarize",
    "summarize_source",
]
