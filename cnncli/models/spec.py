"""Spec files: a model described as a list of Keras layers by class name, in YAML or JSON.

```yaml
name: facade
input_shape: [500, 500, 4]
layers:
  - Conv2D: {filters: 10, kernel_size: 5, padding: same}
  - LeakyReLU: {}
  - MaxPooling2D: 5          # one positional argument
  - Dense: [10, relu]        # positional arguments, as the course writes Dense(10, 'relu')
```

Safety: a spec never runs code. Layers are looked up by name among `keras.layers` classes
only (no dotted class paths, no `Lambda`, no wrappers), and argument values must be plain
numbers, strings, booleans, null or lists of them (no nested configs that Keras would
deserialise into arbitrary objects).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnncli.errors import InputError, UsageError
from cnncli.models.shapes import check_shapes, smallest_input

SPEC_VERSION = 1

# Layers that could run code or wrap other objects, and layers the spec places itself.
FORBIDDEN_LAYERS = {
    "Lambda": "a Lambda layer runs arbitrary Python code",
    "TFSMLayer": "it loads a TensorFlow SavedModel (code)",
    "Layer": "it is the abstract base class",
    "InputLayer": "the input comes from `input_shape`",
    "Input": "the input comes from `input_shape`",
    "Wrapper": "wrappers take other layers as arguments",
    "Bidirectional": "wrappers take other layers as arguments",
    "TimeDistributed": "wrappers take other layers as arguments",
    "RNN": "it takes cell objects as arguments",
    "JaxLayer": "it wraps arbitrary JAX code",
    "FlaxLayer": "it wraps arbitrary Flax code",
    "TorchModuleWrapper": "it wraps arbitrary PyTorch code",
}
# Keyword arguments every Keras layer accepts through **kwargs.
_BASE_KWARGS = {"name", "dtype", "trainable", "autocast", "input_shape", "input_dim", "batch_size"}


# ----------------------------------------------------------------------------- files
def load_spec(path: str | os.PathLike) -> dict:
    """Read a spec file (.yaml/.yml or .json) and return it as a dict (not yet checked)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"spec file {path} not found", "give the path of a .yaml or .json spec")
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)  # safe_load: no Python object tags
    except Exception as e:
        detail = " ".join(str(e).split())[:200]
        raise UsageError(f"spec file {path} is not valid YAML/JSON: {detail}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"spec file {path} must hold a mapping with 'input_shape' and 'layers'",
            "see `cnncli summary --arch tiny --export spec.yaml` for an example",
        )
    return data


def write_spec(spec: dict, path: str | os.PathLike) -> Path:
    """Write `spec` as YAML (.yaml/.yml) or JSON (.json), atomically. Returns the path."""
    from cnncli.atomic import write_json, write_text

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return write_json(path, spec)
    if suffix in (".yaml", ".yml"):
        import yaml

        class _Flow(yaml.SafeDumper):  # layer arguments on one line, as the course writes them
            pass

        def _repr_dict(dumper, data):
            flow = all(not isinstance(v, (dict, list)) for v in data.values()) and len(data) < 8
            return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)

        def _repr_list(dumper, data):
            flow = all(not isinstance(v, (dict, list)) for v in data)
            return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

        _Flow.add_representer(dict, _repr_dict)
        _Flow.add_representer(list, _repr_list)
        text = yaml.dump(spec, Dumper=_Flow, sort_keys=False, allow_unicode=True, width=100)
        return write_text(path, text)
    raise UsageError(
        f"cannot tell the spec format from {path.name!r}", "name it .yaml, .yml or .json"
    )


# ------------------------------------------------------------------------- parsing
def _layer_class(name: Any, pos: int):
    import keras

    if not isinstance(name, str) or not name.isidentifier():
        raise UsageError(
            f"spec layer {pos}: {name!r} is not a Keras layer class name",
            "write the class name alone, e.g. Conv2D (no module paths)",
        )
    if name in FORBIDDEN_LAYERS:
        raise UsageError(
            f"spec layer {pos}: {name} is not allowed in a spec ({FORBIDDEN_LAYERS[name]})",
            "use built-in layers only",
        )
    cls = getattr(keras.layers, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
        close = [n for n in _layer_names() if n.lower() == name.lower()]
        hint = f"did you mean {close[0]}?" if close else "use a class name from keras.layers"
        raise UsageError(f"spec layer {pos}: unknown layer {name!r}", hint)
    return cls


def _layer_names() -> list[str]:
    import keras

    return sorted(
        n
        for n in dir(keras.layers)
        if inspect.isclass(getattr(keras.layers, n))
        and issubclass(getattr(keras.layers, n), keras.layers.Layer)
        and n not in FORBIDDEN_LAYERS
    )


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


def _parameters(cls) -> tuple[list[str], set[str]]:
    """(positional parameter names in order, every accepted keyword) of a layer class."""
    params = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return [p.name for p in params], {p.name for p in params} | _BASE_KWARGS


def parse_layer(entry: Any, pos: int) -> tuple[str, dict]:
    """One spec entry ({Class: args}) -> (class name, keyword arguments), checked."""
    if isinstance(entry, str):
        entry = {entry: None}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise UsageError(
            f"spec layer {pos}: expected one mapping `ClassName: {{arguments}}`, got {entry!r}"
        )
    ((name, args),) = entry.items()
    cls = _layer_class(name, pos)
    positional, accepted = _parameters(cls)
    if args is None:
        kwargs: dict = {}
    elif isinstance(args, dict):
        kwargs = dict(args)
    else:
        values = list(args) if isinstance(args, list) else [args]
        if len(values) > len(positional):
            raise UsageError(
                f"spec layer {pos} ({name}): {len(values)} positional arguments, "
                f"it takes at most {len(positional)}",
                f"name them: {', '.join(positional[:4])}",
            )
        kwargs = dict(zip(positional, values, strict=False))
    for key, value in kwargs.items():
        if not isinstance(key, str) or key not in accepted:
            import difflib

            close = difflib.get_close_matches(str(key), sorted(accepted), n=1)
            raise UsageError(
                f"spec layer {pos} ({name}): unknown argument {key!r}",
                f"did you mean {close[0]!r}?" if close else f"{name} takes {', '.join(positional)}",
            )
        if not _plain(value):
            raise UsageError(
                f"spec layer {pos} ({name}): argument {key!r} must be a number, string, "
                "boolean or a list of them",
                "nested configurations are not allowed in spec files",
            )
    return name, kwargs


def make_layer(name: str, kwargs: dict, pos: int) -> Any:
    """Instantiate a checked layer; a bad argument value -> UsageError naming the key."""
    cls = _layer_class(name, pos)
    try:
        return cls(**kwargs)
    except Exception as e:
        detail = " ".join(str(e).split())[:200]
        keys = [k for k in kwargs if k in str(e)] or list(kwargs)
        which = f"argument {keys[0]!r}" if len(keys) == 1 else f"arguments {keys}"
        raise UsageError(f"spec layer {pos} ({name}): bad {which}: {detail}") from None


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.lower().replace(",", "x").split("x") if v.strip()]
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a list of positive integers, got {value!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise UsageError(f"{what} must be a list of positive integers, got {value!r}")
    return shape


# ---------------------------------------------------------------------- building
def head_entry(num_classes: int, task: str = "classify") -> tuple[str, dict]:
    """The last layer for `num_classes`: 2 -> Dense(1, sigmoid); more -> Dense(N, softmax);
    `task` multilabel: Dense(N, sigmoid); regression: Dense(N) linear (cnncli.training.tasks)."""
    if task != "classify" and num_classes >= 1:
        act = {"activation": "sigmoid"} if task == "multilabel" else {}
        return "Dense", {"units": num_classes, **act}
    if num_classes < 2:
        raise UsageError(f"--classes must be 2 or more, got {num_classes}")
    if num_classes == 2:
        return "Dense", {"units": 1, "activation": "sigmoid"}
    return "Dense", {"units": num_classes, "activation": "softmax"}


def build_layers(
    entries: list[tuple[str, dict]],
    input_shape: tuple[int, ...],
    name: str,
    describe: Callable[[int], str] | None = None,
    error: type[Exception] = UsageError,
) -> Any:
    """A keras.Sequential from checked (class name, kwargs) entries."""
    import keras

    describe = describe or (lambda i: f"spec layer {i + 1} ({entries[i][0]})")
    layers = [make_layer(cls, kwargs, i + 1) for i, (cls, kwargs) in enumerate(entries)]
    check_shapes(layers, tuple(input_shape), describe, error)
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape)))
    for i, layer in enumerate(layers):
        try:
            model.add(layer)
        except Exception as e:
            detail = " ".join(str(e).split())[:200]
            raise error(f"{describe(i)}: {detail}") from None
    return model


def build_from_spec(
    spec: dict | str | os.PathLike,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    task: str = "classify",
) -> Any:
    """A Keras model from a spec (a dict, or the path of a spec file).

    `input_shape` overrides the spec's; `num_classes` replaces the last layer (which must
    be Dense) by the `task`'s head for that many classes, labels or targets (head_entry).
    Mistakes raise UsageError naming the layer's position (1-based) and the key.
    """
    if not isinstance(spec, dict):
        spec = load_spec(spec)
    unknown = set(spec) - {"name", "input_shape", "layers", "classes", "format_version", "notes"}
    if unknown:
        raise UsageError(
            f"spec: unknown key {sorted(unknown)[0]!r}",
            "a spec has name, input_shape, layers and optionally classes",
        )
    version = spec.get("format_version", SPEC_VERSION)
    if not isinstance(version, int) or version > SPEC_VERSION:
        raise UsageError(
            f"spec: format_version {version!r} is not one this cnncli reads ({SPEC_VERSION})",
            "upgrade cnncli or write the spec again",
        )
    if input_shape is None:
        if "input_shape" not in spec:
            raise UsageError("spec: missing key 'input_shape'", "add e.g. input_shape: [64, 64, 3]")
        shape = _shape(spec["input_shape"], "spec: 'input_shape'")
    else:
        shape = _shape(input_shape, "input shape")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise UsageError("spec: 'layers' must be a non-empty list of `ClassName: {arguments}`")
    entries = [parse_layer(entry, i + 1) for i, entry in enumerate(layers)]
    if num_classes is not None:
        if entries[-1][0] != "Dense":
            raise UsageError(
                f"spec layer {len(entries)} ({entries[-1][0]}): cannot set the number of "
                "classes, the last layer is not Dense",
                "end the spec with a Dense layer or leave out --classes",
            )
        entries[-1] = head_entry(int(num_classes), task)
    name = str(spec.get("name") or "spec_model")
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return build_layers(entries, shape, name)


def with_overrides(
    spec: dict, input_shape: tuple[int, ...] | None = None, num_classes: int | None = None
) -> dict:
    """A copy of `spec` with another input shape and/or the head for `num_classes`, as
    build_from_spec(spec, input_shape, num_classes) builds it (for writing it back out)."""
    spec = dict(spec)
    if input_shape is not None:
        spec["input_shape"] = list(input_shape)
    if num_classes is not None:
        name, kwargs = head_entry(int(num_classes))
        spec["layers"] = [*spec["layers"][:-1], {name: kwargs}]
    return spec


__all__ = [
    "build_from_spec",
    "build_layers",
    "head_entry",
    "load_spec",
    "write_spec",
    "smallest_input",
    "with_overrides",
]
