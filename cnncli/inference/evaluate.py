"""Evaluate a saved model on a split of a cnncli dataset.

`evaluate(model, dataset_dir, split=None)` reads the split through the same tf.data pipeline
as training (cnncli.datasets.tfdata.make_tf_dataset), runs the model once over it and returns
loss, accuracy, per-class precision / recall / F1 / support, the confusion matrix (rows:
actual class, columns: predicted) and the misclassified images. The loss is the one Keras'
`model.evaluate` reports for the head: binary cross-entropy for one sigmoid unit, sparse
categorical cross-entropy for one unit per class (from logits when the head has no
activation), averaged over the images.

`errors_png` draws the misclassified images, most confidently wrong first, titled as the
course does (cnncli.inference.misclassified; when nothing is wrong, the least certain
correct ones); `errors_csv` lists them in the same order; `confusion_png` draws the matrix.
No output is written beside the model: by default (`DEFAULT_PLACE`) the confusion plot goes
to the model's run folder (a run's best/last model or checkpoint) or the current folder,
and an existing output is refused unless `overwrite`, before the model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.claims import reading_arg
from cnncli.datasets.shards import SPLITS
from cnncli.datasets.store import dataset_folder
from cnncli.errors import ModelError, UsageError
from cnncli.inference.info import ModelInfo, model_file_of
from cnncli.inference.metrics import (
    ClassMetrics,
    confusion_matrix,
    cross_entropy,
    per_class_metrics,
)
from cnncli.inference.misclassified import (
    CLOSE_CALLS,
    SHEET_MAX,
    Misclassified,
    Smallest,
    error_title,
    margin_key,
    rows,
    sheet_title,
    write_errors_csv,
    write_errors_sheet,
    wrong_key,
)
from cnncli.inference.model import DEFAULT_BATCH, open_model, probabilities
from cnncli.inference.split_io import (
    DEFAULT_PLACE,
    check_input_shape,
    check_outputs,
    chosen_split,
    dataset_batches,
    default_plot_path,
    default_split,
    run_folder_of,
)
from cnncli.inference.tta import describe as describe_tta
from cnncli.inference.tta import tta_probabilities
from cnncli.models.files import check_model_task
from cnncli.models.head import predicted_classes
from cnncli.progress import Counter, Progress

__all__ = [
    "DEFAULT_PLACE",
    "EvaluationResult",
    "Misclassified",
    "default_confusion_path",
    "default_split",
    "error_title",
    "evaluate",
    "run_folder_of",
]


def default_confusion_path(model: Any, split: str) -> Path:
    """Where the confusion plot goes by default (cnncli.inference.split_io.default_plot_path)."""
    return default_plot_path(model, split, "confusion")


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
    close_calls: list[Misclassified] = field(default_factory=list)  # least certain correct
    tta: dict | None = None  # --tta: what was averaged and the accuracy without it

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
            **({"tta": dict(self.tta)} if self.tta else {}),
        }


def _check_fit(model: ModelInfo, info) -> tuple[list[str], list[int] | None]:
    """Refuse a model that cannot take this dataset; return notes on softer mismatches,
    and the model's output column for each dataset class when the model names the same
    classes in another order (matched by name), else None."""
    notes, order = [], None
    check_input_shape(model, info)
    if model.task != "classify":
        raise ModelError(
            f"the model is a {model.task} model but the dataset is classify",
            "evaluate it on a dataset of the task it was trained for",
        )
    if model.head.num_classes != info.num_classes:
        raise ModelError(
            f"the model predicts {model.head.num_classes} classes but the dataset has "
            f"{info.num_classes} ({', '.join(info.class_names)})",
            "evaluate it on a dataset with the classes it was trained on",
        )
    mine, theirs = list(model.class_names), list(info.class_names)
    if model.names_from != "indices" and mine != theirs:
        if sorted(mine) == sorted(theirs):
            order = [mine.index(name) for name in theirs]
            notes.append(
                f"the model's classes ({', '.join(mine)}) are the dataset's in another "
                "order: matched by name"
            )
        else:
            notes.append(
                f"the model's class names ({', '.join(mine)}) differ from the dataset's "
                f"({', '.join(theirs)}); the dataset's are used, by index"
            )
    if model.from_cnncli and model.image != info.image:
        notes.append(
            f"the model was trained on {model.image.describe()} images, the dataset holds "
            f"{info.image.describe()}"
        )
    return notes, order


@reading_arg("dataset_dir", "cnncli evaluate", dataset_folder)
def evaluate(
    model: Any,
    dataset_dir: str | os.PathLike,
    split: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    errors_png: str | os.PathLike | None = None,
    errors_csv: str | os.PathLike | None = None,
    confusion_png: str | os.PathLike | None = None,
    progress: Progress | None = None,
    unsafe: bool = False,
    overwrite: bool = False,
    class_names: str | Sequence[str] | None = None,
    pixel_scale: str | float | None = None,
    threshold: float | None = None,
    tune_thresholds: bool = False,
    scatter_png: str | os.PathLike | None = None,
    residuals_png: str | os.PathLike | None = None,
    tta: bool = False,
) -> Any:
    """Evaluate `model` (a path, a loaded model or a keras.Model) on a split of the dataset
    at `dataset_dir` (default split: test if it has images, else val). Writes the errors
    sheet, errors CSV and confusion plot when their paths are given (`confusion_png=
    DEFAULT_PLACE`: see default_confusion_path); an existing one is refused unless
    `overwrite`, before the model is loaded. `class_names` and `pixel_scale` (--classes,
    --scale) are as in open_model; a model whose class names are the dataset's in another
    order is matched by name. `progress(done, total)` counts images; it is first called
    once the model and dataset are open and checked, so a bad input fails before any
    progress shows.

    A multilabel or regression dataset is evaluated by cnncli.inference.evaluate_tasks (a
    TaskEvaluation): `threshold` (all labels) and `tune_thresholds` (picked on val, stored
    with the model) for multi-label models; `scatter_png` and `residuals_png` (or
    DEFAULT_PLACE) the plots of a regression model, where the confusion plot is none.
    `tta`: probabilities averaged over shifted views (cnncli.inference.tta); the result's
    `tta` holds the views and the accuracy without them."""
    from cnncli.datasets.store import open_dataset

    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if split is not None and split not in SPLITS:  # before any loading
        raise UsageError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    info = open_dataset(dataset_dir)
    split = chosen_split(info, split)
    check_model_task(
        model_file_of(model), info, hint="evaluate it on a dataset of the task it was trained for"
    )  # before TensorFlow loads
    if info.task != "classify":
        return _evaluate_task(
            model,
            info,
            split,
            batch_size=batch_size,
            errors_png=errors_png,
            errors_csv=errors_csv,
            confusion_png=confusion_png,
            scatter_png=scatter_png,
            residuals_png=residuals_png,
            progress=progress,
            unsafe=unsafe,
            overwrite=overwrite,
            class_names=class_names,
            pixel_scale=pixel_scale,
            threshold=threshold,
            tune_thresholds=tune_thresholds,
            tta=tta,
        )
    if threshold is not None or tune_thresholds:
        raise UsageError(
            "--threshold and --tune-thresholds are for multi-label models; this dataset's "
            "task is classify"
        )
    if isinstance(confusion_png, str) and confusion_png == DEFAULT_PLACE:
        confusion_png = default_confusion_path(model, split)
    check_outputs((errors_png, errors_csv, confusion_png), overwrite)
    m = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    fit_notes, order = _check_fit(m, info)
    notes = list(m.notes) + fit_notes + [f"converted at build: {c}" for c in info.conversions]
    names = list(info.class_names)
    counter = Counter(progress, info.count(split))
    counter.start()

    labels, probs, paths, plain = [], [], [], []
    wrong, close = Smallest(SHEET_MAX), Smallest(CLOSE_CALLS)  # images for the errors sheet
    seen = 0
    for x, y, p in dataset_batches(info, split, batch_size, m.runtime == "keras"):
        if tta:
            pr, alone = tta_probabilities(m, x, with_plain=True)
            plain.append(alone if order is None else alone[:, order])
        else:
            pr = probabilities(m, x)
        if order is not None:
            pr = pr[:, order]
        pred = predicted_classes(pr, m.head)
        if errors_png is not None:
            for i in range(len(y)):
                image = x[i].astype(np.uint8)
                if pred[i] != y[i]:
                    wrong.offer(wrong_key(pr[i], y[i], pred[i], seen + i), seen + i, image)
                else:
                    close.offer(margin_key(pr[i], seen + i), seen + i, image)
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
    if tta:
        without = predicted_classes(np.concatenate(plain), m.head) if plain else y_pred
        before = float(np.mean(without == y_true)) if len(y_true) else 0.0
        result.tta = {
            "views": describe_tta(m),
            "accuracy_without": before,
            "gain": result.accuracy - before,
        }
    result.per_class = per_class_metrics(result.confusion, names)
    table = (y_true, y_pred, pr, paths, names)
    result.misclassified = rows(
        np.flatnonzero(y_pred != y_true),
        *table,
        key=lambda r: wrong_key(pr[r.index], r.actual_index, r.predicted_index, r.index),
    )
    if not result.misclassified:
        right = sorted(np.flatnonzero(y_pred == y_true), key=lambda i: margin_key(pr[i], i))
        result.close_calls = rows(
            right[:CLOSE_CALLS], *table, key=lambda r: margin_key(pr[r.index], r.index)
        )
    _write(result, errors_png, errors_csv, confusion_png, wrong, close, overwrite)
    return result


def _evaluate_task(model, info, split, *, confusion_png, scatter_png, residuals_png, **kwargs):
    """A multilabel or regression dataset: cnncli.inference.evaluate_tasks."""
    from cnncli.inference.evaluate_tasks import evaluate_task, plot_paths

    if confusion_png is not None and str(confusion_png) != DEFAULT_PLACE:
        raise UsageError(
            f"--confusion draws a classifier's confusion matrix; this dataset's task is "
            f"{info.task}",
            "leave out --confusion"
            + (" (--scatter and --residuals name the plots)" if info.task == "regression" else ""),
        )
    plots = plot_paths(model, split, info.task, scatter_png, residuals_png)
    return evaluate_task(model, info, split, plots=plots, **kwargs)


def _write(result, errors_png, errors_csv, confusion_png, wrong, close, overwrite) -> None:
    if errors_csv is not None:
        write_errors_csv(result.misclassified, errors_csv, overwrite=overwrite)
        result.files["errors_csv"] = str(errors_csv)
    if errors_png is not None:
        shown = result.misclassified[:SHEET_MAX] or result.close_calls
        images = (wrong if result.misclassified else close).images()
        title = sheet_title(result.count, result.split, len(result.misclassified), len(shown))
        write_errors_sheet(
            shown, images, title, errors_png, overwrite=overwrite, names=result.class_names
        )
        result.files["errors_png"] = str(errors_png)
    if confusion_png is not None:
        from cnncli.drawing.plots import plot_confusion

        title = f"Confusion matrix: {result.split} ({result.count} images, "
        title += f"accuracy {result.accuracy:.3f})"
        plot_confusion(result.confusion, result.class_names, confusion_png, title=title)
        result.files["confusion_png"] = str(confusion_png)
