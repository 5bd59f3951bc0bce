"""Class names and probabilities for image files, from a saved model.

`predict(model, inputs, top_k=1)` converts each image with cnncli.images.load_image, the
function the dataset build used, with the image spec stored with the model, so the same
pixels reach the model as at training. For a model saved elsewhere (no cnncli metadata) the
model's input shape decides the conversion, pixels are scaled by 1/255 and classes are named
by output index; the result's `notes` say so.

The pieces `evaluate` shares with it live here too: loading (`open_model`), what the model's
head is (`Head`), and one forward pass (`probabilities`), so both commands compute the same
numbers for the same pixels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnncli.errors import ImageError, InputError, ModelError, UsageError
from cnncli.images import ImageSpec, is_image_file, load_image

Progress = Callable[[int], None]
DEFAULT_BATCH = 32


# --- the model and what it needs --------------------------------------------------------


@dataclass
class ModelInfo:
    """A loaded Keras model with what is needed to use it."""

    model: object
    path: Path | None
    class_names: list[str]
    image: ImageSpec
    pixel_scale: float
    from_cnncli: bool
    head: Head
    notes: list[str] = field(default_factory=list)

    @property
    def conversion(self) -> str:
        """The input conversion, stated once to the user."""
        how = (
            "as the dataset was built"
            if self.from_cnncli
            else "from the model's input shape (no cnncli metadata in the model)"
        )
        return f"images converted to {self.image.describe()}, {how}"


@dataclass(frozen=True)
class Head:
    """The model's output: 'binary' (1 sigmoid unit: p = P(class 1)) or 'categorical'
    (one unit per class), and whether it gives logits rather than probabilities."""

    kind: str
    from_logits: bool
    units: int

    @property
    def num_classes(self) -> int:
        return 2 if self.kind == "binary" else self.units

    @property
    def loss_name(self) -> str:
        return "binary_crossentropy" if self.kind == "binary" else "sparse_categorical_crossentropy"


def model_head(model) -> Head:
    """Inspect the last layer: 1 unit -> binary, n units -> categorical; logits unless the
    last activation is sigmoid / softmax."""
    try:
        units = int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError):
        raise ModelError("the model has no single output with a known number of units") from None
    if len(model.outputs) != 1:
        raise ModelError(f"the model has {len(model.outputs)} outputs; cnncli needs one")
    last = model.layers[-1] if model.layers else None
    while getattr(last, "layers", None):  # a nested model as the last layer: its last layer
        last = last.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    if type(last).__name__ == "Softmax":
        act = "softmax"
    if type(last).__name__ == "Activation":
        act = getattr(last.activation, "__name__", act)
    if units == 1:
        return Head("binary", act != "sigmoid", 1)
    return Head("categorical", act != "softmax", units)


def open_model(model, unsafe: bool = False) -> ModelInfo:
    """A model file path, a cnncli.models.io LoadedModel, a ModelInfo or a keras.Model ->
    ModelInfo, with defaults stated in `notes` for models saved elsewhere."""
    if isinstance(model, ModelInfo):
        return model
    path = None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise InputError(
                f"model file {path} not found", "give the path of a .keras or .h5 file"
            )
        if path.is_dir():
            raise InputError(
                f"{path} is a folder, not a model file",
                "give a .keras or .h5 file (a train run folder holds best.keras)",
            )
        model = _load(path, unsafe)
    if hasattr(model, "model") and hasattr(model, "metadata"):
        keras_model, m = model.model, model.metadata
        class_names = list(m.class_names) if getattr(m, "class_names", None) else None
        spec = getattr(m, "image", None)
        scale = float(getattr(m, "pixel_scale", 1 / 255))
        from_cnncli = bool(getattr(m, "from_cnncli", False))
        notes = list(getattr(m, "notes", []) or [])
        path = path or getattr(model, "path", None)
    else:  # a bare keras.Model
        keras_model, class_names, spec, scale, from_cnncli, notes = (
            model,
            None,
            None,
            1 / 255,
            False,
            [],
        )
    head = model_head(keras_model)
    if spec is None:
        spec = ImageSpec.for_input_shape(keras_model.inputs[0].shape)
        if not from_cnncli:
            _note(notes, f"image conversion from the model's input shape: {spec.describe()}")
    if not from_cnncli and not any("1/255" in n or "scal" in n for n in notes):
        _note(notes, "pixels scaled by 1/255 before the model (no cnncli metadata)")
    if not class_names:
        class_names = [str(i) for i in range(head.num_classes)]
        _note(notes, f"classes named by output index: {', '.join(class_names)}")
    if len(class_names) != head.num_classes:
        raise ModelError(
            f"the model's output has {head.units} unit(s) but its metadata names "
            f"{len(class_names)} classes",
            "save the model again with cnncli, or check which model file this is",
        )
    return ModelInfo(keras_model, path, class_names, spec, scale, from_cnncli, head, notes)


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _load(path: Path, unsafe: bool):
    from cnncli.models.io import load_model

    return load_model(path, unsafe=unsafe, compile=False)


# --- one forward pass -------------------------------------------------------------------


def probabilities(info: ModelInfo, images) -> np.ndarray:
    """uint8/float32 images (N, H, W, C) in 0..255 -> (N, num_classes) float probabilities.
    A sigmoid head's p becomes [1 - p, p]."""
    x = np.asarray(images, dtype=np.float32)
    if info.pixel_scale != 1.0:
        x = x * np.float32(info.pixel_scale)
    out = np.asarray(info.model.predict_on_batch(x), dtype=np.float64)
    return outputs_to_probabilities(out, info.head)


def outputs_to_probabilities(out: np.ndarray, head: Head) -> np.ndarray:
    out = out.reshape(out.shape[0], -1)
    if head.kind == "binary":
        p = 1 / (1 + np.exp(-out[:, 0])) if head.from_logits else out[:, 0]
        return np.stack([1 - p, p], axis=1)
    if head.from_logits:
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return out


def predicted_classes(probs: np.ndarray, head: Head) -> np.ndarray:
    """The class Keras' accuracy counts: p > 0.5 for a sigmoid head, argmax otherwise."""
    if head.kind == "binary":
        return (probs[:, 1] > 0.5).astype(np.int64)
    return probs.argmax(axis=1)


# --- predict ----------------------------------------------------------------------------


@dataclass
class Prediction:
    file: str
    class_name: str
    class_index: int
    probability: float
    top_k: list[tuple[str, float]]  # (class name, probability), best first

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "class": self.class_name,
            "class_index": self.class_index,
            "probability": self.probability,
            "top_k": [{"class": c, "probability": p} for c, p in self.top_k],
        }


@dataclass
class PredictResult:
    rows: list[Prediction]
    skipped: list[tuple[str, str]]  # (file, reason) for files that could not be used
    model: ModelInfo
    top_k: int

    @property
    def conversion(self) -> str:
        return self.model.conversion

    @property
    def notes(self) -> list[str]:
        return self.model.notes

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def to_json(self) -> dict:
        return {
            "model": str(self.model.path) if self.model.path else None,
            "conversion": self.conversion,
            "notes": list(self.notes),
            "top_k": self.top_k,
            "predictions": [r.to_json() for r in self.rows],
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
        }


def _natural_key(rel: Path):
    return [
        [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", part)]
        for part in rel.parts
    ]


def _images_under(folder: Path) -> list[Path]:
    """Image files (by extension) in a folder and its subfolders (class folders, say),
    hidden files and folders left out, in natural order (2 before 10)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if is_image_file(f)]
    return sorted(found, key=lambda f: _natural_key(f.relative_to(folder)))


def collect_inputs(inputs: Sequence) -> list[Path]:
    """Files as given, and the image files in each folder and its subfolders, in natural
    order (2 before 10)."""
    if not inputs:
        raise UsageError("no images given", "give image files or a folder of images")
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = _images_under(p)
            if not found:
                raise InputError(
                    f"folder {p} holds no image files", "give image files or another folder"
                )
            files.extend(found)
        else:
            files.append(p)  # a missing or broken file is reported when it is read
    return files


def predict(
    model,
    inputs: Sequence,
    top_k: int = 1,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    unsafe: bool = False,
) -> PredictResult:
    """Predict the class of each image file (or the images in each folder).

    Files that cannot be read as images are skipped and listed in `skipped` with the
    reason; when none can be read, ImageError names the first one.
    Returns rows (file, class, probability, top-k) in input order.
    """
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    files = collect_inputs(inputs)
    info = open_model(model, unsafe=unsafe)
    n_classes = len(info.class_names)
    if top_k > n_classes:
        raise UsageError(
            f"--top-k {top_k} is more than the model's {n_classes} classes",
            f"use --top-k {n_classes} or less",
        )
    rows: list[Prediction] = []
    skipped: list[tuple[str, str]] = []
    first_error: ImageError | None = None
    batch: list[np.ndarray] = []
    names: list[str] = []

    def flush():
        if not batch:
            return
        probs = probabilities(info, np.stack(batch))
        classes = predicted_classes(probs, info.head)
        for name, p, c in zip(names, probs, classes, strict=True):
            order = np.argsort(-p, kind="stable")[:top_k]
            rows.append(
                Prediction(
                    file=name,
                    class_name=info.class_names[int(c)],
                    class_index=int(c),
                    probability=float(p[int(c)]),
                    top_k=[(info.class_names[int(i)], float(p[int(i)])) for i in order],
                )
            )
        if progress:
            progress(len(batch))
        batch.clear()
        names.clear()

    for f in files:
        try:
            arr = load_image(f, info.image)
        except ImageError as e:
            first_error = first_error or e
            skipped.append((str(f), e.reason))
            if progress:
                progress(1)
            continue
        batch.append(arr)
        names.append(str(f))
        if len(batch) >= batch_size:
            flush()
    flush()
    if not rows and first_error is not None:
        if len(skipped) == 1:
            raise first_error
        raise ImageError(
            first_error.path,
            f"{first_error.reason} (and {len(skipped) - 1} other file(s) could not be read)",
        )
    return PredictResult(rows, skipped, info, top_k)
