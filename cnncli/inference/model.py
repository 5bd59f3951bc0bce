"""THE loaded-model adapter: a model file (or a keras.Model) becomes one `ModelInfo` with
the Keras model, its head (read from the layers), class names, image conversion and pixel
scale, and the notes that state the defaults used for a model saved elsewhere.

predict, evaluate, activations, embed and the demo all open models through `open_model`,
so they read the same head, names and pixels for the same file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.errors import InputError, UsageError
from cnncli.images import ImageSpec
from cnncli.inference.info import ModelInfo, scale_text
from cnncli.models.head import model_head, outputs_to_probabilities
from cnncli.models.metadata import check_names_fit, pixel_scale_problem
from cnncli.models.model_file import ModelFile

DEFAULT_BATCH = 32  # images per forward pass in predict and evaluate


def open_model(
    model: Any,
    unsafe: bool = False,
    class_names: str | Sequence[str] | None = None,
    pixel_scale: str | float | None = None,
) -> ModelInfo:
    """A model file path (or its models.model_file ModelFile, as a caller's check read it:
    not read again), a cnncli.models.io LoadedModel, a ModelInfo or a keras.Model ->
    ModelInfo, with the defaults used for a model saved elsewhere stated in `notes` (the
    image conversion is stated by `conversion`, not repeated there).

    `class_names` ("a,b,c" or a list, as --classes) and `pixel_scale` ("1/255", "1",
    0.00392, as --scale) replace what is stored with the model or the defaults, for a
    model saved elsewhere. They are checked before the model is loaded (a bad value is a
    UsageError, before TensorFlow is imported); a number of names that does not match the
    model's output is a UsageError; replacing a stored value is stated in `notes`."""
    given_names = parse_class_names(class_names)
    given_scale = parse_pixel_scale(pixel_scale)
    opener = getattr(model, "open_model", None)
    if callable(opener):  # its runtime is chosen now, after the caller's checks (FastModel)
        model = opener()
    if isinstance(model, ModelInfo):
        return _overridden(model, given_names, given_scale)
    path = None
    if isinstance(model, ModelFile):  # a Keras file as the caller's checks read it
        path, model = model.path, _load(model, unsafe)
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise InputError(
                f"model file {path} not found", "give the path of a .keras or .h5 file"
            )
        from cnncli.inference.runtimes import exported_kind, open_exported

        if exported_kind(path):  # a .tflite, .onnx or SavedModel folder from cnncli export
            return _overridden(open_exported(path, unsafe), given_names, given_scale)
        if path.is_dir():
            raise InputError(
                f"{path} is a folder, not a model file",
                "give a .keras or .h5 file (a train run folder holds best.keras)",
            )
        model = _load(path, unsafe)
    if hasattr(model, "model") and hasattr(model, "metadata"):  # a LoadedModel
        keras_model, m = model.model, model.metadata
        path = path or getattr(model, "path", None)
    else:  # a keras.Model in memory: the defaults load_model gives a model saved elsewhere
        from cnncli.models.io import default_metadata

        keras_model, m = model, default_metadata(model)
    class_names = list(m.class_names) if getattr(m, "class_names", None) else None
    from_cnncli = bool(getattr(m, "from_cnncli", False))
    stored = getattr(m, "raw", None)
    stored = stored if isinstance(stored, dict) else {}
    image_stored = bool(stored.get("image")) if stored else from_cnncli
    spec = getattr(m, "image", None) if image_stored else None
    scale = float(getattr(m, "pixel_scale", 1 / 255))
    notes = list(getattr(m, "notes", []) or [])
    task = getattr(m, "task", None) or "classify"
    head = model_head(keras_model, task)
    if spec is None:
        spec = ImageSpec.for_input_shape(keras_model.inputs[0].shape)
    notes = [n for n in notes if not n.startswith("image conversion")]  # said by `conversion`
    names_from = "stored" if stored.get("class_names") else "indices"
    if not class_names:
        class_names = [str(i) for i in range(head.num_classes)]
        _note(notes, f"class names: the output indices {', '.join(class_names)}")
    if given_names is None:
        check_names_fit(len(class_names), head, path)
    augment = stored.get("augment") if isinstance(stored.get("augment"), dict) else None
    info = ModelInfo(
        keras_model,
        path,
        class_names,
        spec,
        scale,
        from_cnncli,
        head,
        notes,
        image_stored,
        names_from,
        task,
        getattr(m, "thresholds", None),
        list(getattr(m, "targets", []) or []),
        augment,
    )
    return _overridden(info, given_names, given_scale)


def parse_class_names(value: str | Sequence[str] | None) -> list[str] | None:
    """--classes: "a,b,c" (or a list of names) -> ["a", "b", "c"]; None stays None.
    Names are stripped of spaces; an empty or repeated name is a UsageError."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = [n.strip() for n in names]
    if len(names) < 2 or any(not n for n in names):
        raise UsageError(
            f"--classes {','.join(names)!r} needs two or more names, none empty",
            "give them comma-separated in the order of the model's outputs, e.g. cat,dog",
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(
            f"--classes names {', '.join(repeated)} more than once", "give each class once"
        )
    return names


_FRACTION = re.compile(r"^\s*([0-9.eE+-]+)\s*/\s*([0-9.eE+-]+)\s*$")


def parse_pixel_scale(value: str | float | None) -> float | None:
    """--scale: "1/255", "1", "0.00392" (or a number) -> a positive float; None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, str) and (fraction := _FRACTION.match(value)):
            top, bottom = fraction.groups()
            scale = float(top) / float(bottom)
        else:
            scale = float(value)
    except (ValueError, ZeroDivisionError):
        scale = math.nan
    problem = pixel_scale_problem(scale)
    if problem:
        raise UsageError(f"--scale {value!r} is {problem}", "write it as 1/255, 1 or 0.00392")
    return scale


def _overridden(info: ModelInfo, names: list[str] | None, scale: float | None) -> ModelInfo:
    """`info` with the --classes and --scale values in place, each change stated once."""
    if names is None and scale is None:
        return info
    notes = list(info.notes)
    changes: dict = {}
    if names is not None:
        n = info.head.num_classes
        if len(names) != n:
            unit = " (one sigmoid unit: 2 classes)" if info.head.kind == "binary" else ""
            raise UsageError(
                f"--classes gives {len(names)} names but the model predicts {n} classes{unit}",
                f"give {n} names, comma-separated, in the order of the model's outputs",
            )
        notes = [x for x in notes if not x.startswith("class names:")]
        if info.names_from == "stored" and names != info.class_names:
            notes.append(
                f"class names: {', '.join(names)} from --classes, not the ones stored with "
                f"the model ({', '.join(info.class_names)})"
            )
        changes.update(class_names=names, names_from="given")
    scale_assumed = any(x.startswith("pixel scale:") for x in info.notes)
    if scale is not None:
        notes = [x for x in notes if not x.startswith("pixel scale:")]  # given, not assumed
    if scale is not None and abs(scale - info.pixel_scale) > 1e-12:
        if not scale_assumed:
            notes.append(
                f"pixel scale: {scale_text(scale)} from --scale, not the one stored with the "
                f"model ({scale_text(info.pixel_scale)})"
            )
        changes["pixel_scale"] = scale
    return replace(info, notes=notes, **changes)


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _load(path: Path | ModelFile, unsafe: bool):
    from cnncli.models.io import load_model

    return load_model(path, unsafe=unsafe, compile=False)


# --- one forward pass -------------------------------------------------------------------


def probabilities(info: ModelInfo, images: np.ndarray) -> np.ndarray:
    """uint8/float32 images (N, H, W, C) in 0..255 -> (N, num_classes) float probabilities.
    A sigmoid head's p becomes [1 - p, p]; a multi-label head gives each label's probability,
    a regression head its values in the table's units (cnncli.models.head)."""
    x = np.asarray(images, dtype=np.float32)
    if info.pixel_scale != 1.0:
        x = x * np.float32(info.pixel_scale)
    out = np.asarray(info.model.predict_on_batch(x), dtype=np.float64)
    return outputs_to_probabilities(out, info.head)
