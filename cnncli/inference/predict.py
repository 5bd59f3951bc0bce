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
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from cnncli.datasets.workers import default_workers, ordered_thread_map
from cnncli.errors import ImageError, UsageError
from cnncli.images import Conversions, collect_images, load_image
from cnncli.inference.answers import answers
from cnncli.inference.info import ModelInfo
from cnncli.inference.model import DEFAULT_BATCH, open_model, probabilities
from cnncli.inference.tta import tta_note, tta_probabilities
from cnncli.models.head import predicted_classes
from cnncli.progress import Counter, Progress


@dataclass
class Prediction:
    file: str
    class_name: str
    class_index: int
    probability: float
    top_k: list[tuple[str, float]]  # (class name, probability), best first
    # multilabel: class_name the labels above their thresholds ("a;b"), top_k those labels
    # and scores every label's probability; regression: top_k and scores each target's value
    task: str = "classify"
    scores: dict[str, float] = field(default_factory=dict)

    def cells(self) -> list[str]:
        """The row as CSV cells, in csv_header's order (also the streamed plain lines)."""
        if self.task == "multilabel":
            return [self.file, self.class_name, *(f"{p:.6f}" for p in self.scores.values())]
        if self.task == "regression":
            return [self.file, *(f"{v:.6g}" for v in self.scores.values())]
        row = [self.file, self.class_name, f"{self.probability:.6f}"]
        for c, p in self.top_k[1:]:
            row += [c, f"{p:.6f}"]
        return row

    def to_json(self) -> dict:
        if self.task == "multilabel":
            return {
                "file": self.file,
                "labels": [{"label": n, "probability": p} for n, p in self.top_k],
                "probabilities": dict(self.scores),
            }
        if self.task == "regression":
            return {"file": self.file, "values": dict(self.scores)}
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
            "runtime": self.model.runtime,
            "conversion": self.conversion,
            "notes": list(self.notes),
            **({"task": self.model.task} if self.model.task != "classify" else {}),
            "top_k": self.top_k,
            "predictions": [r.to_json() for r in self.rows],
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
        }

    def to_csv(self) -> str:
        """file, class, probability, then class_2, probability_2 ... for top_k > 1."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(csv_header(self.top_k, self.model))
        w.writerows(r.cells() for r in self.rows)
        return buf.getvalue()


def csv_header(top_k: int, model: ModelInfo | None = None) -> list[str]:
    """The columns of Prediction.cells(): file, class, probability, class_2, probability_2...;
    for a multi-label `model` file, labels, probability_<label>...; for a regression one
    file and each target's name."""
    task = model.task if model is not None else "classify"
    if model is not None and task == "multilabel":
        return ["file", "labels", *(f"probability_{n}" for n in model.class_names)]
    if model is not None and task == "regression":
        return ["file", *model.class_names]
    header = ["file", "class", "probability"]
    for i in range(2, top_k + 1):
        header += [f"class_{i}", f"probability_{i}"]
    return header


def predict(model: Any, inputs: Sequence, top_k: int = 1, **options) -> PredictResult:
    """Predict the class of each image file (or the images in each folder).

    Files that cannot be read as images are skipped and listed in `skipped` with the
    reason; when none can be read, ImageError names the first one. Returns rows (file,
    class, probability, top-k) in input order. `options`: those of predict_batches
    (batch_size, progress(done, total) counting files read or skipped, unsafe, and
    class_names and pixel_scale, which replace what is stored with the model: --classes,
    --scale, see cnncli.inference.model.open_model), which gives the same rows batch by
    batch, as they are ready.
    """
    stream = predict_batches(model, inputs, top_k, **options)
    return stream.result([row for batch in stream for row in batch])


def predict_batches(
    model: Any,
    inputs: Sequence,
    top_k: int = 1,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    unsafe: bool = False,
    class_names: str | Sequence[str] | None = None,
    pixel_scale: str | float | None = None,
    threads: int | None = None,
    tta: bool = False,
) -> PredictStream:
    """`predict`, streamed: checks the arguments and opens the model now, and returns a
    PredictStream; iterating it yields each batch's rows (a list of Prediction, input order)
    as soon as the model has answered, while the next images are decoded in `threads`
    threads (default: one per core). `skipped` and the conversion notes are complete once
    the iteration ends; `result(rows)` makes the PredictResult. `tta`: probabilities averaged
    over shifted views (cnncli.inference.tta; not for a regression model, said in notes)."""
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    files = collect_images(inputs)
    info = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    n_classes = len(info.class_names)
    if top_k > 1 and info.task != "classify":
        raise UsageError(
            f"--top-k is for classifiers; this is a {info.task} model",
            "leave out --top-k: every label above its threshold is shown"
            if info.task == "multilabel"
            else "leave out --top-k: every target's value is shown",
        )
    if top_k > n_classes:
        raise UsageError(
            f"--top-k {top_k} is more than the model's {n_classes} classes",
            f"use --top-k {n_classes} or less",
        )
    threads = default_workers() if threads is None else threads
    return PredictStream(info, files, top_k, batch_size, progress, threads, tta=tta)


@dataclass
class PredictStream:
    """Rows batch by batch (see predict_batches). `total`: the image files to be read."""

    model: ModelInfo
    files: list
    top_k: int
    batch_size: int
    progress: Progress | None = None
    threads: int = 1
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    changed: Conversions = field(default_factory=Conversions)
    ran_full: bool = False  # a batch of batch_size went through the model
    tta: bool = False  # test-time augmentation (cnncli.inference.tta)

    @property
    def total(self) -> int:
        return len(self.files)

    @property
    def conversion(self) -> str:
        return self.model.conversion

    @property
    def notes(self) -> list[str]:
        note = tta_note(self.model) if self.tta else None
        said = [note] if note else []
        return self.model.notes + self.changed.notes() + said

    def result(self, rows: list[Prediction]) -> PredictResult:
        return PredictResult(rows, self.skipped, self.model, self.top_k, self.changed.notes())

    def __iter__(self) -> Iterator[list[Prediction]]:
        counter = Counter(self.progress, len(self.files))
        first_error: ImageError | None = None
        batch: list[np.ndarray] = []
        names: list[str] = []
        produced = 0
        load = partial(_decode, spec=self.model.image)
        with closing(
            ordered_thread_map(load, self.files, self.threads, ahead=2 * self.batch_size)
        ) as decoded:
            for f, arr, changed in decoded:
                if isinstance(arr, ImageError):
                    first_error = first_error or arr
                    self.skipped.append((str(f), arr.reason))
                    counter.add()
                    continue
                self.changed.merge(changed)
                batch.append(arr)
                names.append(str(f))
                if len(batch) >= self.batch_size:
                    rows = self._rows(np.stack(batch), names)
                    produced += len(rows)
                    counter.add(len(batch))
                    batch.clear()
                    names.clear()
                    yield rows
        if batch:
            rows = self._rows(np.stack(batch), names)
            produced += len(rows)
            counter.add(len(batch))
            yield rows
        if not produced and first_error is not None:
            if len(self.skipped) == 1:
                raise first_error
            raise ImageError(
                first_error.path,
                f"{first_error.reason} (and {len(self.skipped) - 1} other file(s) could not "
                "be read)",
            )

    def _rows(self, images: np.ndarray, names: list[str]) -> list[Prediction]:
        """One forward pass over a batch -> its rows (the head decides what a row says)."""
        info, top_k = self.model, self.top_k
        n = len(images)
        if self.ran_full and n < self.batch_size:
            # the last, short batch padded to the full size: a batch of another shape makes
            # TensorFlow trace the model again (measured: 0.7 s on the digits model)
            pad = np.zeros((self.batch_size - n, *images.shape[1:]), images.dtype)
            images = np.concatenate([images, pad])
        self.ran_full = self.ran_full or n == self.batch_size
        tta = self.tta and not tta_note(info)
        probs = (tta_probabilities if tta else probabilities)(info, images)[:n]
        if info.task != "classify":
            return task_rows(info, probs, names)
        classes = predicted_classes(probs, info.head)
        rows = []
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
        return rows


def task_rows(info: ModelInfo, outputs: np.ndarray, names: list[str]) -> list[Prediction]:
    """The rows of a multilabel or regression model (cnncli.inference.answers)."""
    rows = []
    for name, a in zip(names, answers(info, outputs), strict=True):
        top = a.top
        label = ";".join(a.names) if a.task == "multilabel" else a.text
        rows.append(Prediction(name, label, -1, top, a.chosen, a.task, a.scores))
    return rows


def _decode(path, spec) -> tuple:
    """(path, array or the ImageError, what the conversion changed): one image, in a
    decoding thread (its own tally, merged by the caller: Conversions is not thread-safe)."""
    changed = Conversions()
    try:
        return path, load_image(path, spec, changed), changed
    except ImageError as e:
        return path, e, None
