"""Model files: save with what later commands need stored IN the file, load safely.

- `.keras` (a zip): the metadata is an extra archive member `cnncli.json`.
- `.h5` (HDF5, also as saved by tf.keras 2.x `model.save('x.h5')`): the metadata is the
  root attribute `cnncli_metadata`.
See docs/FORMAT.md for the keys. Loading never runs code from the file unless `unsafe`:
the stored model config is read (zipfile / h5py) and checked for Lambda layers and custom
objects BEFORE Keras deserialises anything, and Keras' own `safe_mode` stays on; the weights
it declares are bounded by what the file stores (cnncli.models.declared) before Keras
builds a layer.
Reading the file without Keras (bounded: a zip bomb is refused unread) is
cnncli.models.files; what the metadata holds, checked, is cnncli.models.metadata.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli.errors import InputError, ModelError, UsageError
from cnncli.images import ImageSpec
from cnncli.models.declared import check_declared_weights
from cnncli.models.files import (  # check_model_file, read_*: re-exported (__all__)
    H5_ATTRIBUTE,
    KERAS_MEMBER,
    check_model_file,
    damaged,
    file_sha256,
    kind_from_extension,
    read_config,
    read_metadata,
)
from cnncli.models.metadata import (
    ModelMetadata,
    default_metadata,
    format_version_for,
    model_metadata,
)
from cnncli.models.model_file import ModelFile, read_model_file

_CODE_LAYERS = {"Lambda", "TFSMLayer", "__lambda__", "JaxLayer", "FlaxLayer", "TorchModuleWrapper"}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
CnnErrorTypes = (ModelError, InputError, UsageError)
_UNSAFE_HINT = "pass --unsafe (unsafe=True) only if you trust where the file comes from"


@dataclass
class LoadedModel:
    model: Any
    metadata: ModelMetadata
    path: Path


# ------------------------------------------------------------------ Keras' save cache
def memoise_keras_skipsets() -> None:
    """Make Keras' saving and loading remember which attributes of a Layer, an Optimizer, a
    Metric... it skips. Keras 3 (3.15.1 at least) stores that set under the global key
    `saving_attr_skipset_*` but looks it up under `saving_attr_skiplist_*`, so every save
    and every load builds reference Layer, Optimizer and Metric objects again: about 20 ms
    of a 40 ms `.keras` save of the course's MNIST model, once per epoch of training. The
    set depends only on the object type, so remembering it changes nothing saved. Call it
    before a save or a load; it patches once, and never where Keras has no such function."""
    import functools

    from keras.src.saving import saving_lib

    skipset = getattr(saving_lib, "get_attr_skipset", None)
    if skipset is None or getattr(skipset, "cnncli_memoised", False):
        return
    memoised = functools.cache(lambda obj_type: frozenset(skipset(obj_type)))
    memoised.cnncli_memoised = True  # type: ignore[attr-defined]  # a marker on the wrapper
    saving_lib.get_attr_skipset = memoised


# --------------------------------------------------------------------------- saving
def save_model(model: Any, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save `model` to `path` (.keras or .h5 by extension), atomically, with `metadata`
    (class_names, image, pixel_scale, ...) stored inside the file. Returns the path."""
    from cnncli import __version__
    from cnncli.atomic import atomic_file

    path = Path(path)
    kind = kind_from_extension(path)
    meta = {"format_version": format_version_for(metadata or {}), **dict(metadata or {})}
    meta.setdefault("cnncli_version", __version__)
    if isinstance(meta.get("image"), ImageSpec):
        meta["image"] = meta["image"].to_dict()
    text = json.dumps(meta, ensure_ascii=False, default=str)
    memoise_keras_skipsets()
    # scratch_beside: Keras' temporary folder beside `path`, not in the system temp folder
    with atomic_file(path, scratch_beside=True) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "HDF5 is a legacy format" notice
        if kind == "keras":
            model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(KERAS_MEMBER, text.encode("utf-8"))
        else:
            model.save(tmp)
            import h5py

            with h5py.File(tmp, "a") as f:
                f.attrs[H5_ATTRIBUTE] = text
    return path


def store_metadata(
    path: str | os.PathLike, changes: dict, expect_sha256: str | None = None
) -> Path:
    """Update the cnncli metadata stored in the model file `path` with `changes` (say, a
    multi-label model's tuned thresholds), atomically and without Keras: the weights and
    the rest of the file stay as they are. `expect_sha256`: the file's digest when the
    changes were worked out; a file replaced since (a training's new best.keras) is left as
    it is (ModelError). Returns the path."""
    from cnncli.atomic import atomic_file
    from cnncli.models.metadata import check_stored

    path = Path(path)
    kind = check_model_file(path)
    if expect_sha256 is not None and file_sha256(path) != expect_sha256:
        raise ModelError(
            f"{path} was replaced while its metadata was worked out; nothing was stored in it",
            "run the command again on the model as it is now",
        )
    meta = {**(read_metadata(path) or {}), **changes}
    meta["format_version"] = max(int(meta.get("format_version", 1)), format_version_for(meta))
    text = json.dumps(check_stored(meta, path), ensure_ascii=False, default=str)
    with atomic_file(path, overwrite=True) as tmp:
        if kind == "keras":
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
                for item in src.infolist():
                    if item.filename != KERAS_MEMBER:
                        dst.writestr(item, src.read(item.filename))
                dst.writestr(KERAS_MEMBER, text.encode("utf-8"))
        else:
            import shutil

            import h5py

            shutil.copyfile(path, tmp)
            with h5py.File(tmp, "a") as f:
                f.attrs[H5_ATTRIBUTE] = text
    return path


# ------------------------------------------------------------------------- safety
def unsafe_reasons(config: dict) -> list[str]:
    """What in a stored model config would run code or needs classes cnncli lacks."""
    import keras

    known = {n for n in dir(keras.layers) if not n.startswith("_")} | _MODEL_CLASSES
    reasons: list[str] = []

    def layer_name(d: dict) -> str:
        cfg = d.get("config")
        return cfg.get("name", "?") if isinstance(cfg, dict) else "?"

    def walk(node: Any, is_layer: bool) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, is_layer)
            return
        if not isinstance(node, dict):
            return
        cls = node.get("class_name")
        if isinstance(cls, str):
            module = node.get("module")
            registered = node.get("registered_name")
            if cls in _CODE_LAYERS:
                reasons.append(f"a {cls} layer {layer_name(node)!r} (Python code in the file)")
                return
            elif isinstance(module, str) and not (module == "keras" or module.startswith("keras.")):
                reasons.append(f"custom object {registered or cls!r} from module {module!r}")
            elif isinstance(registered, str) and ">" in registered:
                reasons.append(f"custom object {registered!r}")
            elif is_layer and cls not in known:
                reasons.append(f"custom layer class {cls!r} ({layer_name(node)!r})")
        for key, value in node.items():
            if key == "layers":
                walk(value, True)
            elif key in ("config", "layer", "backward_layer", "cell", "build_config"):
                walk(value, key in ("layer", "backward_layer", "cell"))
            elif isinstance(value, (dict, list)):
                walk(value, False)

    walk(config, True)
    return reasons


# ------------------------------------------------------------------------- loading
def load_model(
    path: str | os.PathLike | ModelFile, *, unsafe: bool = False, compile: bool = False
) -> LoadedModel:
    """Load a .keras or .h5 model with its metadata; refuse code unless `unsafe`. `path`:
    the file, or its ModelFile as a caller read it (read again if the file changed since).

    A model saved elsewhere (no cnncli metadata) gets defaults, each stated in
    `metadata.notes`: class names "0".."N-1" (["0","1"] for one sigmoid unit), the image
    conversion its input shape implies, and pixel_scale 1/255.
    """
    file = read_model_file(path)  # one open of the file before Keras' own
    path, kind = file.path, file.kind
    stored = file.metadata
    config = file.config
    check_declared_weights(path, kind, config, file.weight_bytes)  # before Keras builds
    reasons = unsafe_reasons(config)
    if reasons and not unsafe:
        raise ModelError(
            f"refusing to load {path}: it contains {reasons[0]}"
            + (f" and {len(reasons) - 1} more" if len(reasons) > 1 else "")
            + "; loading it could run code from the file",
            _UNSAFE_HINT,
        )
    model = _deserialize(path, kind, unsafe, compile)
    return LoadedModel(model, model_metadata(model, stored, path), path)


def _deserialize(path: Path, kind: str, unsafe: bool, compile: bool):
    import keras

    from cnncli.atomic import clean_scratch, scratch

    clean_scratch()  # what loads stopped by a kill left
    memoise_keras_skipsets()
    try:  # Keras' temporary folder (left when it refuses a file): ours, named by pid
        with warnings.catch_warnings(), scratch():
            warnings.simplefilter("ignore")  # legacy argument names in tf.keras 2.x files
            if kind == "keras" and path.suffix.lower() != ".keras":
                # Keras picks its loader by extension: a .h5-named zip -> open as .keras
                return _load_renamed(path, ".keras", unsafe, compile)
            if kind == "h5" and path.suffix.lower() == ".keras":
                return _load_renamed(path, ".h5", unsafe, compile)
            return keras.models.load_model(path, compile=compile, safe_mode=not unsafe)
    except CnnErrorTypes:
        raise
    except Exception as e:
        text = " ".join(str(e).split())
        if "Unknown layer" in text or "custom_object" in text or "Could not locate" in text:
            raise ModelError(
                f"cannot load {path}: it uses a custom object Keras does not know "
                f"({text.split('.')[0][:120]})",
                "cnncli loads models made of built-in Keras layers only",
            ) from None
        if "safe_mode" in text:
            raise ModelError(f"refusing to load {path}: {text[:200]}", _UNSAFE_HINT) from None
        if any(w in text.lower() for w in ("truncated", "unable to open", "bad zip", "eof")):
            raise damaged(path, text[:120]) from None
        raise ModelError(f"cannot load {path}: {text[:300]}") from None


def _load_renamed(path: Path, suffix: str, unsafe: bool, compile: bool):
    import shutil
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"model{suffix}"
        shutil.copyfile(path, copy)
        return keras.models.load_model(copy, compile=compile, safe_mode=not unsafe)


__all__ = [
    "LoadedModel",
    "ModelFile",
    "ModelMetadata",
    "check_model_file",
    "default_metadata",
    "load_model",
    "memoise_keras_skipsets",
    "read_config",
    "read_metadata",
    "read_model_file",
    "save_model",
    "store_metadata",
    "unsafe_reasons",
]
