"""THE reader and checker of the sidecar `PATH.cnncli.json` beside an exported model
(docs/FORMAT.md), without TensorFlow or a runtime:

- `read_sidecar(exported)`: the sidecar, checked for its own keys (format_version, head)
  and for the keys it shares with a model file's metadata by the same function that checks
  those (models.metadata.check_model_keys: class names, image, pixel scale, task,
  thresholds, targets), and for agreement between them (head and task, names and outputs).
- `check_pair(exported, side)`: the exported model is the one the sidecar was written for
  (its sha256, `model_sha256`, recorded since format_version 2).
- `check_model_fits(side, path, inputs, outputs)`: the runtime's real input and output
  shapes agree with the sidecar (image size and channels, units).
- `check_onnx_props(side, props, path)`: an ONNX file's own copy of the sidecar (its
  metadata_props) agrees with the sidecar.
Each raises ModelFileError (exit 2) with one line; the caller (cnncli.inference.runtimes
for predict and evaluate) runs nothing before they pass.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from dataclasses import fields
from pathlib import Path

from cnncli.errors import InputError, ModelFileError
from cnncli.images import ImageSpec
from cnncli.images.spec import shown
from cnncli.models.files import file_sha256
from cnncli.models.head import Head
from cnncli.models.metadata import check_model_keys, check_names_fit

SIDECAR_SUFFIX = ".cnncli.json"
# 2: "model_sha256", the digest of the exported file (or SavedModel folder) it goes with
SIDECAR_VERSION = 2
SIDECAR_LIMIT = 2**20  # what cnncli writes is a few KB
MAX_UNITS = 10**6  # outputs of a head: far above any classifier's classes
HEAD_KINDS = {
    "binary": "classify",
    "categorical": "classify",
    "multilabel": "multilabel",
    "regression": "regression",
}
AGAIN = "export it again with cnncli export"
_SHARED_KEYS = ("class_names", "head", "image", "pixel_scale", "task", "thresholds", "targets")


def sidecar_path(exported: str | os.PathLike) -> Path:
    """`PATH.cnncli.json` beside the exported file or SavedModel folder `PATH`."""
    exported = Path(exported)
    return exported.with_name(exported.name.rstrip("/") + SIDECAR_SUFFIX)


def model_sha256(path: str | os.PathLike) -> str:
    """The digest the sidecar records of its exported model: a file's sha256; for a
    SavedModel folder, the sha256 of each regular file's relative path and sha256, in path
    order (saved_model.pb and its variables together). Symbolic links are not followed."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return h.hexdigest()


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
        raise ModelFileError(f"{path} is over {SIDECAR_LIMIT // 2**20} MiB", AGAIN)
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path} is not valid JSON", AGAIN) from None
    return check_sidecar(side, path)


def check_sidecar(side: object, path: str | os.PathLike, embedded: bool = False) -> dict:
    """`side` (parsed JSON) if it is a sidecar cnncli can use; else ModelFileError naming
    `path` and what is wrong. `embedded`: the copy an .onnx file keeps in its own
    metadata_props, which cannot hold the file's own digest (the file is what it describes)."""

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: {what}", AGAIN)

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
    if not side.get("image"):
        raise bad("has no image conversion")
    if "pixel_scale" not in side:
        raise bad("has no pixel_scale")
    check_model_keys(side, bad)
    head = head_from_sidecar(side, path)
    task = side.get("task", "classify")
    if HEAD_KINDS[head.kind] != task:
        raise bad(f"has a {head.kind} head for task {shown(task)}")
    if task == "regression" and len(side.get("targets") or []) != head.units:
        raise bad(f"names {len(side.get('targets') or [])} targets for {head.units} outputs")
    check_names_fit(len(names), head, path, "its sidecar")
    digest = side.get("model_sha256")
    if version >= 2 and not embedded and not (isinstance(digest, str) and len(digest) == 64):
        raise bad("has no model_sha256 (the digest of the model it goes with)")
    return side


def head_from_sidecar(side: dict, path: str | os.PathLike | None = None) -> Head:
    """The Head stored in a sidecar; ModelFileError when it has none or an impossible one."""
    where = path or "the sidecar"
    stored = side.get("head")
    if not isinstance(stored, dict) or not {"kind", "units"} <= set(stored):
        raise ModelFileError(f"{where}: has no head (kind, units)", AGAIN)
    kind, units = stored.get("kind"), stored.get("units")
    logits = stored.get("from_logits", False)
    if (
        kind not in HEAD_KINDS
        or isinstance(units, bool)
        or not isinstance(units, int)
        or not 1 <= units <= MAX_UNITS
        or not isinstance(logits, bool)
        or (kind == "binary") != (units == 1)
    ):
        raise ModelFileError(f"{where}: its head {shown(stored, 80)} is not one", AGAIN)
    known = {f.name for f in fields(Head)}
    return Head(**{"from_logits": False, **{k: v for k, v in stored.items() if k in known}})


def check_pair(exported: str | os.PathLike, side: dict) -> list[str]:
    """ModelFileError when the exported model is not the one its sidecar was written for
    (an export stopped between writing the two, a file copied over one of them); the notes
    to show for a sidecar older than the check (format_version 1: accepted as it is)."""
    recorded = side.get("model_sha256")
    if recorded is None:
        return [
            f"{sidecar_path(exported).name} predates the check that it belongs to its model "
            f"(format_version {side.get('format_version')}): {AGAIN} to have the pair checked"
        ]
    if model_sha256(exported) != recorded:
        raise ModelFileError(
            f"{exported} is not the model its sidecar {sidecar_path(exported).name} was "
            "written for (its sha256 differs: an export stopped halfway, or one of the two "
            "was replaced)",
            AGAIN,
        )
    return []


def _dims(shape) -> list[int | None]:
    """A runtime's shape (ints of any kind, -1, None or names for free dimensions) -> ints
    and None."""
    out: list[int | None] = []
    for d in shape:
        try:
            n = operator.index(d)  # Python and NumPy integers, not floats, names or None
        except TypeError:
            n = -1
        out.append(n if n >= 0 and not isinstance(d, bool) else None)
    return out


def check_model_fits(side: dict, path: str | os.PathLike, inputs: list, outputs: list) -> None:
    """ModelFileError unless the exported model at `path` has one input of the sidecar's
    image shape (batch, height, width, channels) and a first output of the head's units.
    `inputs`, `outputs`: the runtime's shapes (free dimensions: None, -1 or a name)."""
    image = ImageSpec.from_dict(side["image"])
    head = head_from_sidecar(side, path)

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: {what}", AGAIN)

    if len(inputs) != 1:
        raise bad(f"the model takes {len(inputs)} inputs; its sidecar describes one image")
    got = _dims(inputs[0])
    want = list(image.shape)
    if len(got) != 4 or any(g is not None and g != w for g, w in zip(got[1:], want, strict=True)):
        shown_got = "x".join("?" if d is None else str(d) for d in got[1:])
        raise bad(
            f"the model takes {shown_got} inputs but its sidecar says "
            f"{'x'.join(map(str, image.shape))} images"
        )
    if not outputs:
        raise bad("the model has no output")
    out = _dims(outputs[0])
    if len(out) != 2 or (out[1] is not None and out[1] != head.units):
        units = out[-1] if out else "no"
        raise bad(
            f"the model gives {units if units is not None else '?'} output unit(s) per image "
            f"(shape {tuple(outputs[0])}) but its sidecar says {head.units} ({head.kind})"
        )


def check_onnx_props(side: dict, props: dict, path: str | os.PathLike) -> None:
    """ModelFileError when the ONNX file's own copy of its sidecar (metadata_props
    "cnncli", written by cnncli export) disagrees with the sidecar beside it on what a
    prediction reads (names, head, image, scale, task, thresholds, targets). A file
    without that copy (made elsewhere) is compared by shape only."""
    raw = props.get("cnncli")
    if raw is None:
        return
    try:
        inside = json.loads(raw)
    except (ValueError, RecursionError):
        inside = None
    if not isinstance(inside, dict):
        raise ModelFileError(f"{path}: its cnncli metadata is not a JSON object", AGAIN)
    for key in _SHARED_KEYS:
        if inside.get(key) != side.get(key):
            raise ModelFileError(
                f"{path}: its own metadata and its sidecar disagree on {key} "
                f"({shown(inside.get(key))} against {shown(side.get(key))})",
                AGAIN,
            )
