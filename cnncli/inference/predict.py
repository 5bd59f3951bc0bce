"""Class names and probabilities for image files, from a saved model.

`predict(model, inputs, top_k=1)` converts each image with cnncli.images.load_image, the
function the dataset build used, with the image spec stored with the model, so the same
pixels reach the model as at training. For a model saved elsewhere (no cnncli metadata) the
model's input shape decides the conversion, pixels are scaled by 1/255 and classes are named
by output index; the result's `notes` say so.

The model is opened by cnncli.inference.model.open_model and its outputs read by
cnncli.models.head, as in evaluate, activations and embed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cnncli.errors import ImageError, UsageError
from cnncli.images import Conversions, collect_images, load_image
from cnncli.inference.model import DEFAULT_BATCH, ModelInfo, open_model, probabilities
from cnncli.models.head import predicted_classes
from cnncli.progress import Counter, Progress


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
    conversions: list[str] = field(default_factory=list)  # what the conversion changed, once

    @property
    def conversion(self) -> str:
        return self.model.conversion

    @property
    def notes(self) -> list[str]:
        return self.model.notes + self.conversions

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

    def to_csv(self) -> str:
        """file, class, probability, then class_2, probability_2 ... for top_k > 1."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        header = ["file", "class", "probability"]
        for i in range(2, self.top_k + 1):
            header += [f"class_{i}", f"probability_{i}"]
        w.writerow(header)
        for r in self.rows:
            row = [r.file, r.class_name, f"{r.probability:.6f}"]
            for c, p in r.top_k[1:]:
                row += [c, f"{p:.6f}"]
            w.writerow(row)
        return buf.getvalue()


def predict(
    model,
    inputs: Sequence,
    top_k: int = 1,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    unsafe: bool = False,
    class_names=None,
    pixel_scale=None,
) -> PredictResult:
    """Predict the class of each image file (or the images in each folder).

    Files that cannot be read as images are skipped and listed in `skipped` with the
    reason; when none can be read, ImageError names the first one. `progress(done, total)`
    counts files, read or skipped. Returns rows (file, class, probability, top-k) in input
    order. `class_names` and `pixel_scale` (--classes, --scale) replace what is stored with
    the model (see cnncli.inference.model.open_model).
    """
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    files = collect_images(inputs)
    info = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    n_classes = len(info.class_names)
    if top_k > n_classes:
        raise UsageError(
            f"--top-k {top_k} is more than the model's {n_classes} classes",
            f"use --top-k {n_classes} or less",
        )
    counter = Counter(progress, len(files))
    changed = Conversions()
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
        counter.add(len(batch))
        batch.clear()
        names.clear()

    for f in files:
        try:
            arr = load_image(f, info.image, changed)
        except ImageError as e:
            first_error = first_error or e
            skipped.append((str(f), e.reason))
            counter.add()
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
    return PredictResult(rows, skipped, info, top_k, changed.notes())
