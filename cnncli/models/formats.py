"""The export formats (the one table): each format's name, its file or folder, the packages
it needs to be written (`cnncli[export]`) and to be run (predict, evaluate), checked without
importing them. Read by export (writing), inference.runtimes and export.cache (running) and
the CLI's completion; here, below them all (DESIGN.md's layer 4: exported formats)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from cnncli.errors import UsageError


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # the output's file extension, or the folder-name ending of a SavedModel
    folder: bool  # the output is a folder (SavedModel), not a file
    packages: tuple[str, ...]  # import names needed to write it (and check it)
    what: str
    runtime: tuple[str, ...] = ()  # import names needed to run it (predict, evaluate)


FORMATS = {
    "savedmodel": Format("savedmodel", "_savedmodel", True, (), "TensorFlow SavedModel folder"),
    "litert": Format(
        "litert",
        ".tflite",
        False,
        ("ai_edge_litert",),
        "LiteRT (.tflite) file",
        ("ai_edge_litert",),
    ),
    "onnx": Format(
        "onnx",
        ".onnx",
        False,
        ("tf2onnx", "onnx", "onnxruntime"),
        "ONNX (.onnx) file",
        ("onnxruntime",),
    ),
}
EXTRA = "pip install 'cnncli[export]'"
PIP_NAMES = {"ai_edge_litert": "ai-edge-litert"}  # import name -> package name, where they differ


def get_format(name: str) -> Format:
    """The Format called `name` (any case); UsageError listing the formats otherwise."""
    fmt = FORMATS.get(str(name).strip().lower())
    if fmt is None:
        raise UsageError(f"unknown export format {name!r}", f"use --format {'|'.join(FORMATS)}")
    return fmt


def missing_packages(fmt: Format, purpose: str = "export") -> list[str]:
    """The packages `fmt` needs to `purpose` ("export": write it; "run": predict with it)
    that are not installed (found without importing them)."""
    needed = fmt.runtime if purpose == "run" else fmt.packages
    return [PIP_NAMES.get(p, p) for p in needed if importlib.util.find_spec(p) is None]


def require_packages(
    fmt: Format, purpose: str = "export", what: str | os.PathLike | None = None
) -> None:
    """UsageError naming the packages to install when one `fmt` needs to `purpose`
    ("export", or "run" the exported file `what`) is missing: running an .onnx file needs
    onnxruntime alone, writing one tf2onnx and onnx too."""
    missing = missing_packages(fmt, purpose)
    if not missing:
        return
    needs = f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed"
    if purpose == "run":
        raise UsageError(
            f"running {what or fmt.what} needs {needs}",
            f"pip install {' '.join(missing)} (or {EXTRA})",
        )
    raise UsageError(f"--format {fmt.name} needs {needs}", f"install the export extra: {EXTRA}")
