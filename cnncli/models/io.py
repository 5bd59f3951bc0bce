"""Model files: save with what later commands need stored IN the file, load safely.

- `.keras` (a zip): the metadata is an extra archive member `cnncli.json`.
- `.h5` (HDF5, also as saved by tf.keras 2.x `model.save('x.h5')`): the metadata is the
  root attribute `cnncli_metadata`.
See docs/FORMAT.md for the keys. Loading never runs code from the file unless `unsafe`:
the stored model config is read (zipfile / h5py) and checked for Lambda layers and custom
objects BEFORE Keras deserialises anything, and Keras' own `safe_mode` stays on.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.errors import InputError, ModelError, ModelFileError, UsageError
from cnncli.images import ImageSpec
from cnncli.models.head import rescales_input

METADATA_VERSION = 1
KERAS_MEMBER = "cnncli.json"
H5_ATTRIBUTE = "cnncli_metadata"
EXTENSIONS = (".keras", ".h5", ".hdf5")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_OTHER_FORMATS = {
    ".pb": "a TensorFlow SavedModel",
    ".tflite": "a TensorFlow Lite model",
    ".onnx": "an ONNX model",
    ".pt": "a PyTorch model",
    ".pth": "a PyTorch model",
    ".weights.h5": "a weights-only file",
}
_CODE_LAYERS = {"Lambda", "TFSMLayer", "__lambda__", "JaxLayer", "FlaxLayer", "TorchModuleWrapper"}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
CnnErrorTypes = (ModelError, InputError, UsageError)
_UNSAFE_HINT = "pass --unsafe (unsafe=True) only if you trust where the file comes from"


@dataclass
class ModelMetadata:
    class_names: list[str]
    image: ImageSpec | None
    pixel_scale: float
    from_cnncli: bool
    raw: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the defaults used for a model saved elsewhere

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access (`metadata.get("pixel_scale")`), for callers that treat the
        metadata as the stored dict: fields first, then the stored keys."""
        if key in self.__dataclass_fields__:
            return getattr(self, key)
        return self.raw.get(key, default)


@dataclass
class LoadedModel:
    model: Any
    metadata: ModelMetadata
    path: Path


# --------------------------------------------------------------------------- saving
def save_model(model, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save `model` to `path` (.keras or .h5 by extension), atomically, with `metadata`
    (class_names, image, pixel_scale, ...) stored inside the file. Returns the path."""
    from cnncli import __version__
    from cnncli.atomic import atomic_file

    path = Path(path)
    kind = _kind_from_extension(path)
    meta = {"format_version": METADATA_VERSION, **dict(metadata or {})}
    meta.setdefault("cnncli_version", __version__)
    if isinstance(meta.get("image"), ImageSpec):
        meta["image"] = meta["image"].to_dict()
    text = json.dumps(meta, ensure_ascii=False, default=str)
    with atomic_file(path) as tmp, warnings.catch_warnings():
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


# ------------------------------------------------------------------- file inspection
def _kind_from_extension(path: Path) -> str:
    name = path.name.lower()
    for ext, what in _OTHER_FORMATS.items():
        if name.endswith(ext):
            raise InputError(
                f"{path}: {what} is not supported", "give a Keras model file (.keras or .h5)"
            )
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    raise InputError(
        f"{path}: unknown model file extension {path.suffix or '(none)'!r}",
        "give a Keras model file ending in .keras or .h5",
    )


def check_model_file(path: str | os.PathLike) -> str:
    """'keras' or 'h5' from the file's first bytes (the extension must be a model's too);
    InputError (exit 2) for a file that is missing, a folder, empty or not a model. Reads 8
    bytes, no TensorFlow: commands call it before TensorFlow loads."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file {path} not found", "give the path of a .keras or .h5 file")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise InputError(
                f"{path} is a TensorFlow SavedModel folder, not a Keras model file",
                "save the model with model.save('model.keras') and give that file",
            )
        raise InputError(
            f"{path} is a folder, not a model file",
            "give a .keras or .h5 file (a train run folder holds best.keras)",
        )
    by_name = _kind_from_extension(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        return "keras"
    if head == _HDF5_MAGIC:
        return "h5"
    if not head:
        raise ModelFileError(f"{path} is empty, not a model", "save the model again")
    what = "a .keras zip archive" if by_name == "keras" else "an HDF5 file"
    raise ModelFileError(f"{path} is not a model file (not {what})", "give a Keras model file")


def _damaged(path: Path, why: str = "") -> ModelFileError:
    detail = f" ({why})" if why else ""
    return ModelFileError(
        f"{path} is truncated or damaged{detail}", "save or copy the model file again"
    )


def _read_keras_member(path: Path, member: str) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as z:
            if member not in z.namelist():
                return None
            return z.read(member)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise _damaged(path, " ".join(str(e).split())[:120]) from None


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise _damaged(path, " ".join(str(e).split())[:120]) from None


def _h5_attr(f, name: str) -> str | None:
    raw = f.attrs.get(name)
    if raw is None:
        return None
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The cnncli metadata stored in a model file, or None (no TensorFlow import)."""
    path = Path(path)
    kind = check_model_file(path)
    if kind == "keras":
        raw = _read_keras_member(path, KERAS_MEMBER)
        text = raw.decode("utf-8") if raw is not None else None
    else:
        with _open_h5(path) as f:
            text = _h5_attr(f, H5_ATTRIBUTE)
    if text is None:
        return None
    try:
        meta = json.loads(text)
    except ValueError:
        raise ModelFileError(f"{path}: the stored cnncli metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: the stored cnncli metadata is not a JSON object")
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or version > METADATA_VERSION:
        raise ModelFileError(
            f"{path}: cnncli model metadata format_version {version} is newer than this "
            f"cnncli understands ({METADATA_VERSION})",
            "upgrade cnncli",
        )
    return meta


def read_config(path: str | os.PathLike) -> dict:
    """The model's architecture config as stored in the file (no deserialisation)."""
    path = Path(path)
    if check_model_file(path) == "keras":
        raw = _read_keras_member(path, "config.json")
        if raw is None:
            raise ModelFileError(f"{path} has no config.json: not a Keras model archive")
        text = raw.decode("utf-8")
    else:
        with _open_h5(path) as f:
            text = _h5_attr(f, "model_config")
            if text is None:
                what = "weights only" if "model_weights" in f or "layer_names" in f.attrs else ""
                raise ModelFileError(
                    f"{path} holds {what or 'no model architecture'}, not a whole model",
                    "save it with model.save(...), or build the architecture and load the weights",
                )
    try:
        config = json.loads(text)
    except ValueError:
        raise _damaged(path, "its model config is not valid JSON") from None
    if not isinstance(config, dict):
        raise _damaged(path, "its model config is not a JSON object")
    return config


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
    path: str | os.PathLike, *, unsafe: bool = False, compile: bool = False
) -> LoadedModel:
    """Load a .keras or .h5 model with its metadata; refuse code unless `unsafe`.

    A model saved elsewhere (no cnncli metadata) gets defaults, each stated in
    `metadata.notes`: class names "0".."N-1" (["0","1"] for one sigmoid unit), the image
    conversion its input shape implies, and pixel_scale 1/255.
    """
    path = Path(path)
    kind = check_model_file(path)
    stored = read_metadata(path)
    config = read_config(path)
    reasons = unsafe_reasons(config)
    if reasons and not unsafe:
        raise ModelError(
            f"refusing to load {path}: it contains {reasons[0]}"
            + (f" and {len(reasons) - 1} more" if len(reasons) > 1 else "")
            + "; loading it could run code from the file",
            _UNSAFE_HINT,
        )
    model = _deserialize(path, kind, unsafe, compile)
    return LoadedModel(model, _metadata(model, stored), path)


def _deserialize(path: Path, kind: str, unsafe: bool, compile: bool):
    import keras

    try:
        with warnings.catch_warnings():
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
            raise _damaged(path, text[:120]) from None
        raise ModelError(f"cannot load {path}: {text[:300]}") from None


def _load_renamed(path: Path, suffix: str, unsafe: bool, compile: bool):
    import shutil
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"model{suffix}"
        shutil.copyfile(path, copy)
        return keras.models.load_model(copy, compile=compile, safe_mode=not unsafe)


def _output_units(model) -> int | None:
    try:
        return int(model.outputs[0].shape[-1])
    except Exception:
        return None


def default_metadata(model) -> ModelMetadata:
    """What `load_model` reports for a model saved without cnncli metadata (a keras.Model
    in memory, say): the defaults, each stated in `notes`."""
    return _metadata(model, None)


def _metadata(model, stored: dict | None) -> ModelMetadata:
    notes: list[str] = []
    stored = stored or {}
    units = _output_units(model)

    names = stored.get("class_names")
    if not names:
        n = 2 if units == 1 else (units or 0)
        names = [str(i) for i in range(n)]
        notes.append(
            f"class names: the output indices {', '.join(names[:4])}"
            + (", ..." if len(names) > 4 else "")
            + (" (one sigmoid unit: 2 classes)" if units == 1 else "")
        )
    image = None
    if stored.get("image"):
        image = ImageSpec.from_dict(stored["image"])
    else:
        try:
            image = ImageSpec.for_input_shape(model.inputs[0].shape)
            notes.append(f"image conversion: {image.describe()}, from the model's input shape")
        except Exception:
            notes.append("image conversion: the model's input has no fixed size")
    if "pixel_scale" in stored:
        scale = float(stored["pixel_scale"])
    elif rescales_input(model):
        scale = 1.0
        notes.append("pixel scale: 1 (the model's first layer scales the pixels itself)")
    else:
        scale = 1 / 255
        notes.append("pixel scale: 1/255 (pixels divided by 255, as the course's notebooks do)")
    return ModelMetadata(
        class_names=[str(n) for n in names],
        image=image,
        pixel_scale=scale,
        from_cnncli=bool(stored),
        raw=dict(stored),
        notes=notes,
    )


__all__ = ["LoadedModel", "ModelMetadata", "check_model_file", "default_metadata", "load_model",
           "read_config", "read_metadata", "save_model", "unsafe_reasons"]  # fmt: skip
