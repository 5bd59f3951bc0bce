"""Reusing what an earlier report computed (`cnncli report --no-compute`): its parts.json
read and checked, and the files it names copied into the new report.

An earlier report is a folder someone may have handed us, so nothing in it is trusted:
parts.json is read as a regular file of at most PARTS_LIMIT bytes (cnncli.safe_files), every
value is checked for its type, every file name must be a plain relative name inside the
report (no `../`, no absolute path, no `//host`, no `javascript:`), and only regular files
are copied, no link followed, each at most PART_FILE_LIMIT bytes. What is left out is said,
one line each; the rest of the report is still made.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from cnncli.errors import InputError
from cnncli.runs.compute import PARTS_JSON, SPLITS, Parts
from cnncli.safe_files import (
    copy_regular_file,
    copy_regular_tree,
    inside,
    plain_name,
    read_json_file,
)

PARTS_LIMIT = 16 * 2**20  # parts.json: evaluations with per-class tables (~100 bytes a class)
PART_FILE_LIMIT = 64 * 2**20  # each picture, page or table copied from an earlier report
MOST_MISSING = 50  # lines of "what is missing" kept from an earlier report
TEXT = 500  # characters kept of each text read from parts.json


def _text(value) -> str:
    text = str(value)
    return text if len(text) <= TEXT else f"{text[:TEXT]}… ({len(text):,} characters)"


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shape(value) -> bool:
    return value is None or isinstance(value, list)


def _summary(s) -> dict | None:
    keys = ("total_params", "trainable_params", "macs")
    if not isinstance(s, dict) or not all(_count(s.get(k)) for k in keys):
        return None
    if not _shape(s.get("input_shape")) or not isinstance(s.get("layers"), list):
        return None
    for row in s["layers"]:
        if not (
            isinstance(row, dict)
            and _count(row.get("params"))
            and _count(row.get("macs"))
            and _shape(row.get("output_shape"))
        ):
            return None
    return s


def _file(name, ext: str = ".png") -> bool:
    """A plain name inside the report with the extension the report gives such a file (so
    a picture cannot replace the page, run.json or history.csv)."""
    return plain_name(name) and name.lower().endswith(ext)


def _activation(a) -> dict | None:
    if not isinstance(a, dict) or not _number(a.get("probability")):
        return None
    if not (_file(a.get("page"), ".html") and _file(a.get("input"))):
        return None
    if a.get("gradcam") is not None and not _file(a.get("gradcam")):
        return None
    grids = a.get("grids")
    if not isinstance(grids, list) or not all(
        isinstance(g, dict) and _file(g.get("file")) for g in grids
    ):
        return None
    return {
        "image": _text(a.get("image")),
        "page": a["page"],
        "input": a["input"],
        "predicted": _text(a.get("predicted")),
        "probability": a["probability"],
        "gradcam": a.get("gradcam"),
        "grids": [
            {"name": _text(g.get("name")), "type": _text(g.get("type")), "file": g["file"]}
            for g in grids
        ],
    }


def checked_parts(data: object, where: Path) -> tuple[Parts, list[str]]:
    """The Parts of parts.json's `data`, each value of the wrong type or naming a file
    outside the report left out; (parts, one line per thing left out)."""
    notes: list[str] = []

    def drop(what: str) -> None:
        notes.append(f"{where}/{PARTS_JSON}: {what}: left out")

    if not isinstance(data, dict):
        drop("not an object")
        return Parts(), notes
    parts = Parts(computed=data.get("computed") is True)
    parts.model = _text(data["model"]) if isinstance(data.get("model"), str) else None
    if data.get("summary") is not None:
        parts.summary = _summary(data.get("summary"))
        if parts.summary is None:
            drop("the model summary is not a summary")
    evaluations = data.get("evaluations")
    for split, ev in evaluations.items() if isinstance(evaluations, dict) else ():
        if split in SPLITS and isinstance(ev, dict):
            if not isinstance(ev.get("files"), dict | None):
                ev = {**ev, "files": {}}
            parts.evaluations[split] = ev
        else:
            drop(f"evaluation {_text(split)!r} (splits: {', '.join(SPLITS)})")
    pictures = data.get("pictures")
    for key, name in pictures.items() if isinstance(pictures, dict) else ():
        if _file(name):
            parts.pictures[str(key)] = name
        else:
            drop(f"picture {_text(key)!r} names {_text(name)!r}, not a .png inside the report")
    if pictures is not None and not isinstance(pictures, dict):
        drop("pictures is not an object")
    activations = data.get("activations")
    for a in activations if isinstance(activations, list) else ():
        checked = _activation(a)
        if checked is None:
            drop("an activation entry of the wrong types or naming a file outside the report")
        else:
            parts.activations.append(checked)
    missing = data.get("missing")
    parts.missing = [
        _text(m) for m in (missing if isinstance(missing, list) else ()) if isinstance(m, str)
    ][:MOST_MISSING]
    return parts, notes


def _real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def read_parts(folder: Path) -> tuple[Parts | None, list[str]]:
    """The parts an earlier report recorded in `folder` (None when it has none) and what was
    left out, one line each (a folder that is a link is not read)."""
    if not _real_folder(folder):
        if folder.is_symlink():
            return None, [f"{folder} is a symbolic link: its report is not reused"]
        return None, []
    try:
        data = read_json_file(inside(folder, PARTS_JSON), PARTS_LIMIT)
    except FileNotFoundError:
        return None, []
    except InputError as e:
        return None, [f"{e.one_line()}: the earlier report is not reused"]
    return checked_parts(data, folder)


def reuse_parts(old: Path, new: Path) -> tuple[Parts | None, list[str]]:
    """Copy what an earlier report in `old` computed into `new`: (its Parts, or None when
    there is none to reuse; what was left out, one line each). Only regular files inside
    `old` are copied; a picture or activation whose file was not copied is left out."""
    parts, notes = read_parts(old)
    if parts is None or not parts.computed:
        return None, notes
    for name in parts.files():
        try:
            src = inside(old, name)
            if _real_folder(src):
                notes += copy_regular_tree(src, new / name, PART_FILE_LIMIT)
            else:
                (new / name).parent.mkdir(parents=True, exist_ok=True)
                copy_regular_file(src, new / name, PART_FILE_LIMIT)
        except FileNotFoundError:
            continue
        except InputError as e:
            notes.append(e.one_line())
    parts.pictures = {k: v for k, v in parts.pictures.items() if _regular(new, v)}
    parts.activations = [a for a in parts.activations if _regular(new, a["input"])]
    return parts, notes


def _regular(folder: Path, name: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(inside(folder, name)).st_mode)
    except (OSError, InputError):
        return False
