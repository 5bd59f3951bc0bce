"""The sidecar `PATH.cnncli.json` beside every exported model (docs/FORMAT.md): what a runtime
needs to give the same answers as cnncli (class names, task, head, image conversion, pixel
scale, thresholds), where the file came from (the source model's sha256, the cnncli
version), the exported model's own sha256 (`model_sha256`, added by export.run once the
model is written) and the agreement check's figures. Read back and checked by
cnncli.models.sidecar, so predict and evaluate take an exported file as they take a
.keras one. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.models.model_file import ModelFile
from cnncli.models.sidecar import (  # reading and checking: re-exported (__all__)
    SIDECAR_SUFFIX,
    SIDECAR_VERSION,
    file_sha256,
    head_from_sidecar,
    model_sha256,
    read_sidecar,
    sidecar_path,
)

if TYPE_CHECKING:
    from cnncli.inference.info import ModelInfo


def make_sidecar(
    info: ModelInfo,
    fmt: str,
    int8: bool,
    stored: dict | None,
    source: str | os.PathLike | ModelFile | None = None,
) -> dict:
    """The sidecar of `info` (a ModelInfo) exported as `fmt`: `stored` is the metadata read
    from the source model file (task, thresholds), `source` its path (hashed) or its
    ModelFile (hashed as it was read)."""
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
    if isinstance(source, ModelFile):
        side["source"] = {"path": str(source.path), "sha256": source.sha256}
    elif source is not None and Path(source).is_file():
        side["source"] = {"path": str(source), "sha256": file_sha256(source)}
    side["cnncli_version"] = __version__
    return side


def onnx_properties(side: dict) -> dict[str, str]:
    """The sidecar as ONNX metadata_props (string -> string): each key, JSON-encoded where it
    is not a string, and the whole sidecar under "cnncli"."""
    props = {
        k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in side.items()
    }
    props["cnncli"] = json.dumps(side, ensure_ascii=False)
    return props


__all__ = [
    "SIDECAR_SUFFIX",
    "SIDECAR_VERSION",
    "file_sha256",
    "head_from_sidecar",
    "make_sidecar",
    "model_sha256",
    "onnx_properties",
    "read_sidecar",
    "sidecar_path",
]
