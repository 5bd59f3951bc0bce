"""The sidecar `PATH.cnncli.json` beside every exported model (docs/FORMAT.md): what a runtime
needs to give the same answers as cnncli (class names, task, head, image conversion, pixel
scale, thresholds), where the file came from (the source model's sha256, the cnncli
version) and the agreement check's figures. Read back by cnncli.inference.runtimes, so
predict and evaluate take an exported file as they take a .keras one. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, fields
from pathlib import Path

from cnncli.errors import InputError, ModelFileError, UsageError
from cnncli.images import ImageSpec
from cnncli.models.head import Head

SIDECAR_SUFFIX = ".cnncli.json"
SIDECAR_VERSION = 1
SIDECAR_LIMIT = 2**20  # what cnncli writes is a few KB
_AGAIN = "export it again with cnncli export"


def sidecar_path(exported: str | os.PathLike) -> Path:
    """`PATH.cnncli.json` beside the exported file or SavedModel folder `PATH`."""
    exported = Path(exported)
    return exported.with_name(exported.name.rstrip("/") + SIDECAR_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def make_sidecar(info, fmt: str, int8: bool, stored: dict | None, source=None) -> dict:
    """The sidecar of `info` (a ModelInfo) exported as `fmt`: `stored` is the metadata read
    from the source model file (task, thresholds), `source` its path (hashed)."""
    from cnncli import __version__

    stored = stored or {}
    side = {
        "format_version": SIDECAR_VERSION,
        "format": fmt,
        "int8": bool(int8),
        "task": getattr(info, "task", None) or stored.get("task") or "classify",
        "class_names": list(info.class_names),
        "head": asdict(info.head),
        "image": info.image.to_dict(),
        "pixel_scale": float(info.pixel_scale),
        "input_shape": [None, *info.image.shape],
    }
    for key in ("thresholds", "targets"):  # a multilabel / regression model's, where stored
        value = getattr(info, key, None) or stored.get(key)
        if value:
            side[key] = value
    if source is not None and Path(source).is_file():
        side["source"] = {"path": str(source), "sha256": file_sha256(source)}
    side["cnncli_version"] = __version__
    return side


def onnx_properties(side: dict) -> dict[str, str]:
    """The sidecar as ONNX metadata_props (string -> string): each key, JSON-encoded where it
    is not a string, and the whole sidecar under "cnncli"."""
    props = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
             for k, v in side.items()}  # fmt: skip
    props["cnncli"] = json.dumps(side, ensure_ascii=False)
    return props


def read_sidecar(exported: str | os.PathLike) -> dict:
    """The checked sidecar of an exported model; InputError when it is missing, ModelFileError
    when it is not one cnncli can use."""
    path = sidecar_path(exported)
    if not path.is_file():
        raise InputError(
            f"{exported} has no {path.name} beside it (class names, image size, pixel scale)",
            "export the model with cnncli export, which writes it, and keep the two together",
        )
    if path.stat().st_size > SIDECAR_LIMIT:
        raise ModelFileError(f"{path} is over {SIDECAR_LIMIT // 2**20} MiB", _AGAIN)
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path} is not valid JSON", _AGAIN) from None
    return _checked(side, path)


def checked_sidecar(side, where) -> dict:
    """A sidecar read from elsewhere (an .onnx file's metadata_props), checked as read_sidecar
    checks a sidecar file; ModelFileError naming `where` otherwise."""
    return _checked(side, Path(where))


def _checked(side, path: Path) -> dict:
    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: {what}", _AGAIN)

    if not isinstance(side, dict):
        raise bad("is not a JSON object")
    version = side.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("has no whole-number format_version")
    if version > SIDECAR_VERSION:
        raise bad(f"format_version {version} is newer than this cnncli reads ({SIDECAR_VERSION})")
    names = side.get("class_names")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise bad("has no list of class_names")
    try:
        ImageSpec.from_dict(side.get("image"))
    except UsageError as e:
        raise bad(f"has an image conversion that cannot be used: {e.message}") from None
    scale = side.get("pixel_scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise bad("has no positive pixel_scale")
    head_from_sidecar(side, path)
    return side


def head_from_sidecar(side: dict, path=None) -> Head:
    """The Head stored in a sidecar (its known fields; ModelFileError when it has none)."""
    stored = side.get("head")
    known = {f.name for f in fields(Head)}
    if not isinstance(stored, dict) or not {"kind", "units"} <= set(stored):
        raise ModelFileError(f"{path or 'the sidecar'}: has no head (kind, units)", _AGAIN)
    try:
        return Head(**{k: v for k, v in stored.items() if k in known})
    except TypeError as e:
        raise ModelFileError(
            f"{path or 'the sidecar'}: its head {stored} is not one", _AGAIN
        ) from e
