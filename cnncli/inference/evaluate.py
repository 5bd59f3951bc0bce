"""Evaluate a saved model on a split of a cnncli dataset.

`evaluate(model, dataset_dir, split=None)` reads the split through the same tf.data pipeline
as training (cnncli.datasets.tfdata.make_tf_dataset), runs the model once over it and returns
loss, accuracy, per-class precision / recall / F1 / support, the confusion matrix (rows:
actual class, columns: predicted) and the misclassified images. The loss is the one Keras'
`model.evaluate` reports for the head: binary cross-entropy for one sigmoid unit, sparse
categorical cross-entropy for one unit per class (from logits when the head has no
activation), averaged over the images.

`errors_png` draws the misclassified images titled as the course does
("실제 : 대리석 // 예측 : 벽돌" when the class names are Korean, "actual: 4 // predicted: 9"
otherwise); `errors_csv` lists them; `confusion_png` draws the matrix.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnncli.atomic import atomic_file
from cnncli.datasets.shards import SPLITS
from cnncli.errors import DatasetError, ModelError, UsageError
from cnncli.inference.metrics import (
    ClassMetrics,
    confusion_matrix,
    cross_entropy,
    per_class_metrics,
)
from cnncli.inference.model import DEFAULT_BATCH, ModelInfo, open_model, probabilities
from cnncli.models.head import predicted_classes
from cnncli.progress import Counter, Progress

BESIDE_MODEL = "beside-model"  # confusion_png: <model>.confusion-<split>.png beside the model
SHEET_MAX = 100  # images drawn in the errors sheet (the CSV lists them all)
SHEET_CELL = 200
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


@dataclass
class Misclassified:
    path: str
    actual: str
    predicted: str
    probability: float  # the model's probability for the predicted class
    actual_index: int
    predicted_index: int


@dataclass
class EvaluationResult:
    model_path: str | None
    dataset: str
    split: str
    count: int
    loss: float
    loss_name: str
    accuracy: float
    class_names: list[str]
    per_class: list[ClassMetrics]
    confusion: np.ndarray  # (classes, classes): rows actual, columns predicted
    misclassified: list[Misclassified]
    labels: np.ndarray  # (N,) actual class per image, in dataset order
    predicted: np.ndarray  # (N,) predicted class per image
    probabilities: np.ndarray  # (N, classes)
    paths: list[str]
    conversion: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # what was written: kind -> path

    @property
    def macro(self) -> dict[str, float]:
        return {
            k: float(np.mean([getattr(m, k) for m in self.per_class]))
            for k in ("precision", "recall", "f1")
        }

    @property
    def weighted(self) -> dict[str, float]:
        w = np.array([m.support for m in self.per_class], dtype=np.float64)
        total = w.sum() or 1.0
        return {
            k: float(np.dot(w, [getattr(m, k) for m in self.per_class]) / total)
            for k in ("precision", "recall", "f1")
        }

    def to_json(self) -> dict:
        return {
            "model": self.model_path,
            "dataset": self.dataset,
            "split": self.split,
            "count": self.count,
            "loss": self.loss,
            "loss_name": self.loss_name,
            "accuracy": self.accuracy,
            "classes": [
                {
                    "index": m.index,
                    "name": m.name,
                    "precision": m.precision,
                    "recall": m.recall,
                    "f1": m.f1,
                    "support": m.support,
                }
                for m in self.per_class
            ],
            "macro_avg": self.macro,
            "weighted_avg": self.weighted,
            "confusion_matrix": {
                "rows": "actual",
                "columns": "predicted",
                "labels": list(self.class_names),
                "matrix": self.confusion.astype(int).tolist(),
            },
            "misclassified": [
                {
                    "path": m.path,
                    "actual": m.actual,
                    "predicted": m.predicted,
                    "probability": m.probability,
                }
                for m in self.misclassified
            ],
            "conversion": self.conversion,
            "notes": list(self.notes),
            "files": dict(self.files),
        }


def default_split(info) -> str:
    """test when the dataset has test images, else val (else train)."""
    for split in ("test", "val", "train"):
        if info.count(split) > 0:
            return split
    raise DatasetError(f"dataset {info.path} has no images in any split")


def _chosen_split(info, split: str | None) -> str:
    """The split to evaluate: the default one, or the one asked for if it has images."""
    if split is None:
        return default_split(info)
    if info.count(split) == 0:
        have = [f"{s} ({info.count(s)})" for s in SPLITS if info.count(s) > 0]
        raise DatasetError(
            f"dataset {info.path} has no {split!r} images",
            f"use --split with one of: {', '.join(have) or 'none'}",
        )
    return split


def default_confusion_path(model: ModelInfo, split: str) -> Path:
    """Where the confusion plot goes by default: `<model>.confusion-<split>.png` beside it."""
    if model.path is None:
        raise UsageError(
            "the model has no file to put the confusion plot beside", "give confusion_png"
        )
    return model.path.with_name(f"{model.path.stem}.confusion-{split}.png")


def _check_fit(model: ModelInfo, info) -> list[str]:
    """Refuse a model that cannot take this dataset; return notes on softer mismatches."""
    notes = []
    want = tuple(model.model.inputs[0].shape[1:])
    have = tuple(info.image.shape)
    if len(want) != 3 or any(w is not None and w != h for w, h in zip(want, have, strict=False)):
        raise ModelError(
            f"the model expects images of shape {_shape(want)} but the dataset's images are "
            f"{_shape(have)} ({info.image.describe()})",
            "evaluate it on a dataset built with the same --size and --color",
        )
    if model.head.num_classes != info.num_classes:
        raise ModelError(
            f"the model predicts {model.head.num_classes} classes but the dataset has "
            f"{info.num_classes} ({', '.join(info.class_names)})",
            "evaluate it on a dataset with the classes it was trained on",
        )
    if model.from_cnncli and list(model.class_names) != list(info.class_names):
        notes.append(
            f"the model's class names ({', '.join(model.class_names)}) differ from the "
            f"dataset's ({', '.join(info.class_names)}); the dataset's are used, by index"
        )
    if model.from_cnncli and model.image != info.image:
        notes.append(
            f"the model was trained on {model.image.describe()} images, the dataset holds "
            f"{info.image.describe()}"
        )
    return notes


def _shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _batches(info, split: str, batch_size: int):
    """(uint8-valued float images, labels, paths) batches, through the training pipeline
    when cnncli.datasets.tfdata exists, else from the records in pure Python."""
    try:
        from cnncli.datasets.tfdata import make_tf_dataset
    except ImportError:
        make_tf_dataset = None
    if make_tf_dataset is not None:
        ds = make_tf_dataset(info, split, batch_size=batch_size, cache="none", with_paths=True)
        for x, y, p in ds.as_numpy_iterator():
            yield x, y.astype(np.int64).reshape(-1), [s.decode("utf-8") for s in p.reshape(-1)]
        return
    from cnncli.datasets.store import iter_records

    xs, ys, ps = [], [], []
    for rec in iter_records(info, split):
        xs.append(rec.image)
        ys.append(rec.label)
        ps.append(rec.path)
        if len(xs) == batch_size:
            yield np.stack(xs).astype(np.float32), np.array(ys), ps
            xs, ys, ps = [], [], []
    if xs:
        yield np.stack(xs).astype(np.float32), np.array(ys), ps


def evaluate(
    model,
    dataset_dir,
    split: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    errors_png: str | os.PathLike | None = None,
    errors_csv: str | os.PathLike | None = None,
    confusion_png: str | os.PathLike | None = None,
    progress: Progress | None = None,
    unsafe: bool = False,
) -> EvaluationResult:
    """Evaluate `model` (a path, a loaded model or a keras.Model) on a split of the dataset
    at `dataset_dir` (default split: test if it has images, else val). Writes the errors
    sheet, errors CSV and confusion plot when their paths are given (`confusion_png=
    BESIDE_MODEL`: `<model>.confusion-<split>.png` beside the model file, replaced if there).
    `progress(done, total)` counts images; it is first called once the model and dataset
    are open and checked, so a bad input fails before any progress shows."""
    from cnncli.datasets.store import open_dataset

    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if split is not None and split not in SPLITS:  # before any loading
        raise UsageError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    info = open_dataset(dataset_dir)
    split = _chosen_split(info, split)
    m = open_model(model, unsafe=unsafe)
    notes = list(m.notes) + _check_fit(m, info)
    names = list(info.class_names)
    if confusion_png == BESIDE_MODEL:
        confusion_png = default_confusion_path(m, split)
    counter = Counter(progress, info.count(split))
    counter.start()

    labels, probs, paths = [], [], []
    wrong_images: dict[int, np.ndarray] = {}  # kept for the errors sheet (first SHEET_MAX)
    seen = 0
    for x, y, p in _batches(info, split, batch_size):
        pr = probabilities(m, x)
        pred = predicted_classes(pr, m.head)
        if errors_png is not None:
            for i in np.flatnonzero(pred != y):
                if len(wrong_images) < SHEET_MAX:
                    wrong_images[seen + int(i)] = x[i].astype(np.uint8)
        labels.append(y)
        probs.append(pr)
        paths.extend(p)
        seen += len(y)
        counter.add(len(y))
    y_true = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    pr = np.concatenate(probs) if probs else np.zeros((0, len(names)))
    y_pred = predicted_classes(pr, m.head)

    result = EvaluationResult(
        model_path=str(m.path) if m.path else None,
        dataset=str(info.path),
        split=split,
        count=len(y_true),
        loss=cross_entropy(y_true, pr, m.head.kind),
        loss_name=m.head.loss_name,
        accuracy=float(np.mean(y_pred == y_true)) if len(y_true) else 0.0,
        class_names=names,
        per_class=[],
        confusion=confusion_matrix(y_true, y_pred, len(names)),
        misclassified=[],
        labels=y_true,
        predicted=y_pred,
        probabilities=pr,
        paths=paths,
        conversion=f"images read from the dataset ({info.image.describe()}); "
        f"pixels x {m.scale_text}",
        notes=notes,
    )
    result.per_class = per_class_metrics(result.confusion, names)
    result.misclassified = [
        Misclassified(
            path=paths[i],
            actual=names[int(y_true[i])],
            predicted=names[int(y_pred[i])],
            probability=float(pr[i, int(y_pred[i])]),
            actual_index=int(y_true[i]),
            predicted_index=int(y_pred[i]),
        )
        for i in np.flatnonzero(y_pred != y_true)
    ]
    if errors_csv is not None:
        write_errors_csv(result, errors_csv)
        result.files["errors_csv"] = str(errors_csv)
    if errors_png is not None:
        write_errors_sheet(result, wrong_images, errors_png)
        result.files["errors_png"] = str(errors_png)
    if confusion_png is not None:
        from cnncli.drawing.plots import plot_confusion

        title = f"Confusion matrix: {split} ({result.count} images, "
        title += f"accuracy {result.accuracy:.3f})"
        plot_confusion(result.confusion, names, confusion_png, title=title)
        result.files["confusion_png"] = str(confusion_png)
    return result


# --- the error files --------------------------------------------------------------------


def error_title(actual: str, predicted: str) -> str:
    """The course's title for a misclassified image: Korean when the names are Korean."""
    if HANGUL.search(actual) or HANGUL.search(predicted):
        return f"실제 : {actual} // 예측 : {predicted}"
    return f"actual: {actual} // predicted: {predicted}"


def write_errors_csv(result: EvaluationResult, path) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "actual", "predicted", "probability"])
    for m in result.misclassified:
        w.writerow([m.path, m.actual, m.predicted, f"{m.probability:.6f}"])
    with atomic_file(path) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8")
    return Path(path)


def write_errors_sheet(result: EvaluationResult, images: dict[int, np.ndarray], path) -> Path:
    """A contact sheet of the misclassified images (the first SHEET_MAX), each titled with
    its actual and predicted class and the probability of the prediction."""
    from cnncli.drawing.save import save_png
    from cnncli.drawing.sheets import contact_sheet

    wrong = [i for i in np.flatnonzero(result.predicted != result.labels)][:SHEET_MAX]
    by_index = {i: m for i, m in zip(wrong, result.misclassified, strict=False)}
    items = []
    for i in wrong:
        m = by_index[i]
        caption = f"{error_title(m.actual, m.predicted)}\n{m.probability:.2f} · {Path(m.path).name}"
        items.append((images[int(i)], caption))
    n = len(result.misclassified)
    shown = f", first {SHEET_MAX} shown" if n > SHEET_MAX else ""
    title = f"{n} misclassified of {result.count} ({result.split}{shown})"
    if not items:
        title = f"no misclassified images of {result.count} ({result.split})"
    sheet = contact_sheet(
        items,
        per_row=min(8, max(1, math.ceil(math.sqrt(len(items))))),
        cell=SHEET_CELL,
        title=title,
        font_size=12,
    )
    return save_png(sheet, path)
