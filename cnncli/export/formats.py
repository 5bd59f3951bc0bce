"""The export formats and what a request needs, checked without TensorFlow: the format's
name, the packages of the `cnncli[export]` extra it runs with, where its output goes by
default, and the options that only make sense together (--int8 with litert and a
calibration dataset)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

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
    "litert": Format("litert", ".tflite", False, ("ai_edge_litert",), "LiteRT (.tflite) file",
                     ("ai_edge_litert",)),
    "onnx": Format("onnx", ".onnx", False, ("tf2onnx", "onnx", "onnxruntime"), "ONNX (.onnx) file",
                   ("onnxruntime",)),
}  # fmt: skip
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


def require_packages(fmt: Format, purpose: str = "export", what=None) -> None:
    """UsageError naming the packages to install when one `fmt` needs to `purpose`
    ("export", or "run" the exported file `what`) is missing: running an .onnx file needs
    onnxruntime alone, writing one tf2onnx and onnx too."""
    missing = missing_packages(fmt, purpose)
    if not missing:
        return
    needs = f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed"
    if purpose == "run":
        raise UsageError(f"running {what or fmt.what} needs {needs}",
                         f"pip install {' '.join(missing)} (or {EXTRA})")  # fmt: skip
    raise UsageError(f"--format {fmt.name} needs {needs}", f"install the export extra: {EXTRA}")


def check_request(fmt: Format, int8: bool, calibration) -> None:
    """--int8 needs litert and a calibration dataset; UsageError otherwise."""
    if int8 and fmt.name != "litert":
        raise UsageError(
            f"--int8 quantizes LiteRT files only, not --format {fmt.name}",
            "use --format litert --int8 --calibration DATASET_DIR",
        )
    if int8 and calibration is None:
        raise UsageError(
            "--int8 needs --calibration DATASET_DIR (images to set the int8 ranges from)",
            "give a dataset built with cnncli dataset build at the model's image size",
        )
    if calibration is not None and not int8:
        raise UsageError(
            "--calibration is for --int8 only", "add --int8, or give the images to --check"
        )


def default_output(model_path: Path, fmt: Format, int8: bool = False) -> Path:
    """`<model name><suffix>` (`best.tflite`, `best.int8.tflite`, `best_savedmodel`) in the
    model's train run folder when it belongs to a writable one, else in the current folder;
    never beside a model from elsewhere (a shared or read-only folder)."""
    from cnncli.inference.evaluate import run_folder_of

    name = model_path.stem + (".int8" if int8 else "") + fmt.suffix
    run = run_folder_of(model_path)
    if run is not None and os.access(run, os.W_OK):
        return run / name
    return Path(name)


def checked_output(output: Path, fmt: Format) -> Path:
    """The output path as given, with a LiteRT/ONNX file's extension required."""
    output = Path(output)
    if not fmt.folder and output.suffix.lower() != fmt.suffix:
        raise UsageError(
            f"-o {output}: a {fmt.what} must end in {fmt.suffix}",
            f"name it like {output.with_suffix(fmt.suffix).name}",
        )
    return output
