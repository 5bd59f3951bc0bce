"""The weights a model file's architecture config declares, bounded before Keras builds it.

Keras builds every layer (allocating its weights) before it reads a single stored weight, so
an 8.9 KB `.keras` whose config.json says `Dense(units=1e8)` or `Conv2D(filters=5e7)` takes
gigabytes and a minute before it fails. `check_declared_weights` counts, from the config
alone, a lower bound of the parameters of the common layers (Dense, Conv*, DepthwiseConv*,
SeparableConv*, Embedding, the recurrent layers, MultiHeadAttention, ... with the input
width its build_config states, else 1) and refuses the file in one line when even that
bound needs more bytes than the file stores weights (the `.keras` archive's weight
members, an `.h5` file's size). A lower bound cannot refuse a real model: its weights file
holds every parameter; layers not counted here (any other class) add nothing to the
bound, so they are held only by the weights' size. Bytes per parameter are taken as 0.5
(Keras' int4 quantization), the fewest any Keras weight takes.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

from cnncli.errors import ModelFileError, bytes_text

BYTES_PER_PARAM = 0.5  # int4: the smallest a stored Keras weight can be
SLACK_BYTES = 2**20  # what the bound may exceed the stored weights by, for safety
_CONFIG_MEMBERS = {"config.json", "metadata.json", "cnncli.json"}
_DEFLATE_MOST = 1032  # deflate's largest inflation factor: a member's size cannot lie more
_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4, "SimpleRNNCell": 1, "GRUCell": 3, "LSTMCell": 4}


def _n(value) -> float:
    """A size from the config as a number (0 for anything else: the bound stays a bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if value > 0 else 0.0


def _kernel(config: dict, key: str = "kernel_size", rank: int = 2) -> float:
    k = config.get(key, 1)
    if isinstance(k, (list, tuple)):
        return math.prod(_n(v) for v in k) if k else 0.0
    return _n(k) ** rank


def _rank(cls: str) -> int:
    return 1 if "1D" in cls else 3 if "3D" in cls else 2


def _input_width(node: dict) -> float:
    """The last dimension of the layer's input as its build_config states it, else 1."""
    shape = (
        (node.get("build_config") or {}).get("input_shape")
        if isinstance(node.get("build_config"), dict)
        else None
    )
    if isinstance(shape, list) and shape and _n(shape[-1]) >= 1:
        return _n(shape[-1])
    return 1.0


def layer_params(cls: str, config: dict, width: float = 1.0) -> float:
    """A lower bound of the parameters of one layer of class `cls` (0 when not counted)
    whose input has `width` features or channels (1 when not known)."""
    bias = 1.0 if config.get("use_bias", True) else 0.0
    if cls == "Dense":
        return _n(config.get("units")) * (width + bias)
    if cls == "Embedding":
        return _n(config.get("input_dim")) * _n(config.get("output_dim"))
    if cls.startswith("DepthwiseConv"):
        dm = _n(config.get("depth_multiplier", 1))
        return (_kernel(config, rank=_rank(cls)) * dm + dm * bias) * width
    if cls.startswith("SeparableConv"):
        dm, filters = _n(config.get("depth_multiplier", 1)), _n(config.get("filters"))
        return (_kernel(config, rank=_rank(cls)) + filters) * dm * width + filters * bias
    if cls.startswith("ConvLSTM"):
        filters = _n(config.get("filters"))
        return 4 * filters * _kernel(config, rank=_rank(cls)) * (width + filters)
    if cls.startswith("Conv"):  # Conv1D/2D/3D and their Transpose
        filters = _n(config.get("filters"))
        per_group = max(width / max(_n(config.get("groups", 1)), 1.0), 1.0)
        return filters * _kernel(config, rank=_rank(cls)) * per_group + filters * bias
    if cls in _GATES:
        units = _n(config.get("units"))
        return _GATES[cls] * units * (units + width)
    if cls == "MultiHeadAttention":
        heads, key = _n(config.get("num_heads")), _n(config.get("key_dim"))
        value = _n(config.get("value_dim")) or key
        return heads * (2 * key + value) + heads * value
    return 0.0


def declared_params(config: dict) -> float:
    """The lower bound of the parameters the architecture `config` (parsed config.json)
    declares: every layer config in it (nested models, wrapped layers) counted once."""
    total, seen = 0.0, 0
    stack: list[dict | list] = [config]
    while stack:
        node = stack.pop()
        seen += 1
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            cls, cfg = node.get("class_name"), node.get("config")
            if isinstance(cls, str) and isinstance(cfg, dict):
                total += layer_params(cls, cfg, _input_width(node))
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return total


def stored_weight_bytes(path: str | os.PathLike, kind: str) -> int:
    """The bytes of weights the file can hold: a `.keras` archive's members other than its
    configs (each at most what its compressed size inflates to, and no compressed size past
    the archive's own), an `.h5` file's size."""
    path = Path(path)
    size = path.stat().st_size
    if kind != "keras":
        return size
    try:
        with zipfile.ZipFile(path) as z:
            return archive_weight_bytes(z, size)
    except (zipfile.BadZipFile, OSError, ValueError):
        return size  # the loader says what is wrong with it


def archive_weight_bytes(z: zipfile.ZipFile, size: int) -> int:
    """stored_weight_bytes of the open `.keras` archive `z`, a file of `size` bytes."""
    members = [i for i in z.infolist() if i.filename not in _CONFIG_MEMBERS]
    unpacked = sum(i.file_size for i in members)
    packed = min(sum(i.compress_size for i in members), size)
    return min(unpacked, packed * _DEFLATE_MOST)


def check_declared_weights(
    path: str | os.PathLike, kind: str, config: dict, stored: int | None = None
) -> None:
    """ModelFileError (exit 2) when the architecture `config` of the model file `path`
    (`kind` 'keras' or 'h5') declares more weight bytes than the file stores (`stored`,
    else stored_weight_bytes): refused from the config alone, before Keras builds anything."""
    declared = declared_params(config) * BYTES_PER_PARAM
    if stored is None:
        stored = stored_weight_bytes(path, kind)
    if declared > 2 * stored + SLACK_BYTES:
        shown = bytes_text(int(declared)) if math.isfinite(declared) else "unbounded"
        raise ModelFileError(
            f"{path}: its architecture declares at least {shown} of weights but the file "
            f"stores {bytes_text(stored)}; building it would take that memory for nothing",
            "this is not a whole saved model (damaged or hostile): save the model again",
        )
