"""A model file read without Keras or TensorFlow: what kind it is (`check_model_file`), and
what it stores, read with bounded memory: the architecture config (`read_config`) and
cnncli's metadata (`read_metadata`).

- `.keras` (a zip): the config is the member `config.json`, the metadata `cnncli.json`.
- `.h5` (HDF5, also as saved by tf.keras 2.x): the root attributes `model_config` and
  `cnncli_metadata`.
A small file can unpack to a huge member (a zip bomb: 1 MB that inflates to 1 GiB), so a
member's size is checked in the archive's directory before it is read, and no more than the
limit is ever read (the directory can lie): config.json at most CONFIG_LIMIT, the metadata
at most METADATA_LIMIT, each refused in one line that says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

from cnncli.errors import InputError, ModelFileError
from cnncli.models.head import outputs_text
from cnncli.models.metadata import check_stored

KERAS_MEMBER = "cnncli.json"
H5_ATTRIBUTE = "cnncli_metadata"
EXTENSIONS = (".keras", ".h5", ".hdf5")
MIB = 2**20
CONFIG_LIMIT = 64 * MIB  # the largest Keras architecture configs are a few MB
METADATA_LIMIT = 1 * MIB  # what cnncli stores is a few KB
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
_OTHER_FORMATS = {
    ".pb": "a TensorFlow SavedModel",
    ".tflite": "a TensorFlow Lite model",
    ".onnx": "an ONNX model",
    ".pt": "a PyTorch model",
    ".pth": "a PyTorch model",
    ".weights.h5": "a weights-only file",
}
# what zipfile raises on a damaged archive or member (a bad CRC, a broken deflate stream,
# an unknown compression method, an encrypted member)
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    zlib.error,
)


def kind_from_extension(path: Path) -> str:
    """'keras' or 'h5' from the file name; InputError for another model format or name."""
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
    check_model_path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise unreadable(path, e) from None
    return model_kind(path, head)


def check_model_path(path: Path) -> None:
    """check_model_file's refusals made without opening the file: missing, a folder, a
    name that is not a Keras model's."""
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
    kind_from_extension(path)


def unreadable(path: Path, e: OSError) -> InputError:
    return InputError(f"cannot read model file {path} ({e.strerror or e})")


def model_kind(path: Path, head: bytes) -> str:
    """'keras' or 'h5' from the first 8 bytes `head` of the model file `path`;
    ModelFileError for an empty file or one that is not a model."""
    by_name = kind_from_extension(path)
    if head.startswith(ZIP_MAGIC):
        return "keras"
    if head == _HDF5_MAGIC:
        return "h5"
    if not head:
        raise ModelFileError(f"{path} is empty, not a model", "save the model again")
    what = "a .keras zip archive" if by_name == "keras" else "an HDF5 file"
    raise ModelFileError(f"{path} is not a model file (not {what})", "give a Keras model file")


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def damaged(path: Path, why: str | BaseException = "") -> ModelFileError:
    """The error for a model file that is truncated or damaged (`why`: the detail)."""
    detail = f" ({' '.join(str(why).split())[:120]})" if why else ""
    return ModelFileError(
        f"{path} is truncated or damaged{detail}", "save or copy the model file again"
    )


def _too_big(path: Path, what: str, size: int | None, limit: int) -> ModelFileError:
    found = f"unpacks to {size / MIB:,.1f} MiB" if size is not None else "unpacks to more"
    return ModelFileError(
        f"{path}: its {what} {found}, over the {limit / MIB:g} MiB that cnncli reads",
        "this is not a model cnncli saved (a zip bomb?): save the model again",
    )


def read_member(path: Path, member: str, limit: int) -> bytes | None:
    """A member of the .keras archive `path`, or None if it has none; refused unread when
    the archive's directory says it unpacks to more than `limit` bytes, and never more than
    `limit` bytes read (the directory can lie)."""
    try:
        with zipfile.ZipFile(path) as z:
            return archive_member(z, path, member, limit)
    except ZIP_ERRORS as e:
        raise damaged(path, e) from None


def archive_member(z: zipfile.ZipFile, path: Path, member: str, limit: int) -> bytes | None:
    """read_member from the open archive `z` of `path` (zipfile's errors, ZIP_ERRORS, are
    the caller's)."""
    try:
        info = z.getinfo(member)
    except KeyError:
        return None
    if info.file_size > limit:
        raise _too_big(path, member, info.file_size, limit)
    with z.open(info) as f:
        data = _read_at_most(f, limit + 1)
    if len(data) > limit:
        raise _too_big(path, member, None, limit)
    return data


def _read_at_most(f, most: int) -> bytes:
    """Up to `most` bytes of `f`, 1 MiB at a time (zipfile inflates as much as is asked)."""
    chunks, size = [], 0
    while size < most and (chunk := f.read(min(MIB, most - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def open_h5(path: Any, named: Path | None = None) -> Any:
    """The HDF5 file `path` (or an open file object, `named` in messages), read-only."""
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise damaged(named or path, e) from None


def h5_attribute(f: Any, path: Path, name: str, limit: int) -> bytes | None:
    """A root attribute of an HDF5 file as bytes, or None; a damaged attribute heap or an
    attribute over `limit` bytes is refused."""
    try:
        if name not in f.attrs:
            return None
        raw = f.attrs[name]
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
        raise damaged(path, f"its attribute {name!r} cannot be read: {e}") from None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    elif not isinstance(raw, bytes):
        raw = str(raw).encode("utf-8")
    if len(raw) > limit:
        raise _too_big(path, f"attribute {name!r}", len(raw), limit)
    return raw


def _parse_json(raw: bytes, path: Path, what: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise damaged(path, f"its {what} is not UTF-8 text (byte {e.start})") from None
    except (ValueError, RecursionError):
        raise damaged(path, f"its {what} is not valid JSON") from None


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The cnncli metadata stored in a model file with each key checked (models.metadata
    check_stored), or None (no TensorFlow import); models.model_file reads it with the rest."""
    path = Path(path)
    if check_model_file(path) == "keras":
        raw = read_member(path, KERAS_MEMBER, METADATA_LIMIT)
    else:
        with open_h5(path) as f:
            raw = h5_attribute(f, path, H5_ATTRIBUTE, METADATA_LIMIT)
    return parse_metadata(raw, path)


def parse_metadata(raw: bytes | None, path: Path) -> dict | None:
    """The metadata stored as `raw` (None: none stored) in the model file `path`, checked."""
    if raw is None:
        return None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(
            f"{path}: the stored cnncli metadata is not valid JSON", "save the model again"
        ) from None
    return check_stored(meta, path)


def check_model_task(
    model: Any,
    info: Any,
    role: str = "the model",
    hint: str = "use it with a dataset of the task it was trained for",
) -> None:
    """Refuse (InputError, exit 2) a Keras model file whose stored cnncli metadata names
    another task than the dataset's (`info`, a DatasetInfo), from the file alone, before
    TensorFlow loads. A model without cnncli metadata, a loaded model or another format is
    left to the checks made once it is loaded. `model` may be the file as already read
    (a cnncli.models.model_file.ModelFile): its metadata is not read again."""
    if hasattr(model, "metadata") and hasattr(model, "sha256"):  # a ModelFile
        meta = model.metadata
    elif not isinstance(model, (str, os.PathLike)):
        return
    elif Path(model).suffix.lower() not in EXTENSIONS or not Path(model).is_file():
        return
    else:
        meta = read_metadata(Path(model))
    if meta is None:
        return
    mine, task = str(meta.get("task") or "classify"), info.task
    if mine != task:
        names = meta.get("targets") if mine == "regression" else meta.get("class_names")
        n = len(info.targets) if task == "regression" else info.num_classes
        have = f" ({outputs_text(mine, len(names))})" if isinstance(names, list) and names else ""
        raise InputError(
            f"{role} is a {mine} model{have} but the dataset is {task} ({outputs_text(task, n)})",
            hint,
        )


def read_config(path: str | os.PathLike) -> dict:
    """The model's architecture config as stored in the file (no deserialisation)."""
    path = Path(path)
    if check_model_file(path) == "keras":
        raw = read_member(path, "config.json", CONFIG_LIMIT)
        if raw is None:
            raise missing_config(path, "keras")
    else:
        with open_h5(path) as f:
            raw = h5_attribute(f, path, "model_config", CONFIG_LIMIT)
            if raw is None:
                raise missing_config(path, h5_weights_only(f))
    return parse_config(raw, path)


def missing_config(path: Path, what: str) -> ModelFileError:
    """A .keras archive without config.json (`what` "keras"), an .h5 file without a model
    config (`what`: "weights only" or "")."""
    if what == "keras":
        return ModelFileError(f"{path} has no config.json: not a Keras model archive")
    return ModelFileError(
        f"{path} holds {what or 'no model architecture'}, not a whole model",
        "save it with model.save(...), or build the architecture and load the weights",
    )


def h5_weights_only(f: Any) -> str:
    return "weights only" if "model_weights" in f or "layer_names" in f.attrs else ""


def parse_config(raw: bytes, path: Path) -> dict:
    """The architecture config stored as `raw` in the model file `path`, parsed."""
    config = _parse_json(raw, path, "model config")
    if not isinstance(config, dict):
        raise damaged(path, "its model config is not a JSON object")
    return config
