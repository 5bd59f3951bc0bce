"""`ModelInfo`: a loaded model (Keras, or an exported file run by its runtime) with what
is needed to use it: class names, image conversion, pixel scale, head, task. Made by
cnncli.inference.model.open_model (and inference.runtimes for exported files), read by
every command that runs a model; here alone, so that those two modules do not import
each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.images import ImageSpec
from cnncli.models.head import Head


@dataclass
class ModelInfo:
    """A loaded Keras model with what is needed to use it."""

    model: Any  # a keras.Model, or an exported model run by its runtime
    path: Path | None
    class_names: list[str]
    image: ImageSpec
    pixel_scale: float
    from_cnncli: bool
    head: Head
    notes: list[str] = field(default_factory=list)
    image_stored: bool = False  # the image spec was stored with the model (else: input shape)
    names_from: str = "indices"  # where class_names come from: stored, given (--classes), indices
    task: str = "classify"  # classify, multilabel (class_names: the labels) or regression
    thresholds: list[float] | None = None  # multilabel: a label is predicted above its own
    targets: list[dict] = field(default_factory=list)  # regression: name, mean, std, min, max
    augment: dict | None = None  # the training's augmentation as stored (None: not stored)

    @property
    def label_thresholds(self) -> list[float]:
        """A multi-label model's threshold per label (0.5 where none is stored)."""
        from cnncli.models.head import DEFAULT_THRESHOLD

        n = len(self.class_names)
        t = list(self.thresholds or [])
        return t if len(t) == n else [DEFAULT_THRESHOLD] * n

    @property
    def runtime(self) -> str:
        """What answers: "keras", or an exported model's runtime ("onnx", "litert", ...)."""
        return getattr(self.model, "kind", None) or "keras"

    @property
    def scale_text(self) -> str:
        """The pixel scale as a person writes it: 1/255, 1, 0.5."""
        return scale_text(self.pixel_scale)

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


def scale_text(scale: float) -> str:
    """A pixel scale as a person writes it: 1/255, 1, 0.5."""
    return "1/255" if abs(scale - 1 / 255) < 1e-12 else f"{scale:.6g}"


def model_file_of(model: Any) -> Any:
    """The model file a command was given, for the checks made before anything loads: a
    path as it is, a FastModel (cnncli.export.cache: predict and evaluate's --runtime) as
    the file it opens (its ModelFile when the command's check read it: cnncli.cli.checks);
    anything else (a loaded model) as it is."""
    if hasattr(model, "open_model") and hasattr(model, "path"):
        return getattr(model, "file", None) or model.path
    return model
