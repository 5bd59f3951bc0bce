"""THE loaded-model adapter: a model file (or a keras.Model) becomes one `ModelInfo` with
the Keras model, its head (read from the layers), class names, image conversion and pixel
scale, and the notes that state the defaults used for a model saved elsewhere.

predict, evaluate, activations, embed and the demo all open models through `open_model`,
so they read the same head, names and pixels for the same file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnncli.errors import InputError, ModelError
from cnncli.images import ImageSpec
from cnncli.models.head import Head, model_head, outputs_to_probabilities

DEFAULT_BATCH = 32  # images per forward pass in predict and evaluate


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
    image_stored: bool = False  # the image spec was stored with the model (else: input shape)

    @property
    def scale_text(self) -> str:
        """The pixel scale as a person writes it: 1/255, 1, 0.5."""
        return "1/255" if abs(self.pixel_scale - 1 / 255) < 1e-12 else f"{self.pixel_scale:.6g}"

    @property
    def conversion(self) -> str:
        """The input conversion, stated once to the user: the spec, where it came from, and
        the pixel scale applied before the model."""
        how = (
            "as the dataset was built (stored with the model)"
            if self.image_stored
            else "from the model's input shape (none stored with the model)"
        )
        return f"images converted to {self.image.describe()}, {how}; pixels x {self.scale_text}"


def open_model(model, unsafe: bool = False) -> ModelInfo:
    """A model file path, a cnncli.models.io LoadedModel, a ModelInfo or a keras.Model ->
    ModelInfo, with the defaults used for a model saved elsewhere stated in `notes` (the
    image conversion is stated by `conversion`, not repeated there)."""
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
    if hasattr(model, "model") and hasattr(model, "metadata"):  # a LoadedModel
        keras_model, m = model.model, model.metadata
        path = path or getattr(model, "path", None)
    else:  # a keras.Model in memory: the defaults load_model gives a model saved elsewhere
        from cnncli.models.io import default_metadata

        keras_model, m = model, default_metadata(model)
    class_names = list(m.class_names) if getattr(m, "class_names", None) else None
    from_cnncli = bool(getattr(m, "from_cnncli", False))
    stored = getattr(m, "raw", None)
    image_stored = bool(stored.get("image")) if isinstance(stored, dict) else from_cnncli
    spec = getattr(m, "image", None) if image_stored else None
    scale = float(getattr(m, "pixel_scale", 1 / 255))
    notes = list(getattr(m, "notes", []) or [])
    head = model_head(keras_model)
    if spec is None:
        spec = ImageSpec.for_input_shape(keras_model.inputs[0].shape)
    notes = [n for n in notes if not n.startswith("image conversion")]  # said by `conversion`
    if not class_names:
        class_names = [str(i) for i in range(head.num_classes)]
        _note(notes, f"class names: the output indices {', '.join(class_names)}")
    if len(class_names) != head.num_classes:
        raise ModelError(
            f"the model's output has {head.units} unit(s) but its metadata names "
            f"{len(class_names)} classes",
            "save the model again with cnncli, or check which model file this is",
        )
    return ModelInfo(
        keras_model, path, class_names, spec, scale, from_cnncli, head, notes, image_stored
    )


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
