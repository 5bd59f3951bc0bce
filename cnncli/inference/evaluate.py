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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnncli.datasets.shards import SPLITS
from cnncli.errors import DatasetError, ModelError, OutputExistsError, UsageError
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
from cnncli.inference.model import DEFAULT_BATCH, ModelInfo, open_model, probabilities
from cnncli.models.head import predicted_classes
from cnncli.progress import Counter, Progress
from cnncli.training.rundir import RUN_JSON

DEFAULT_PLACE = "default"  # confusion_png: the run folder or the current folder (see above)
__all__ = ["DEFAULT_PLACE", "EvaluationResult", "Misclassified", "error_title", "evaluate"]


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


def run_folder_of(model_path) -> Path | None:
    """The train run folder a model file belongs to: the folder beside it holding run.json
    (best.keras, last.keras), or the one above its checkpoints/ folder; else None."""
    parent = Path(model_path).parent
    for folder in (parent, parent.parent) if parent.name == "checkpoints" else (parent,):
        if (folder / RUN_JSON).is_file():
            return folder
    return None


def default_confusion_path(model, split: str) -> Path:
    """Where the confusion plot goes by default: `<model name>.confusion-<split>.png` in the
    model's run folder when it belongs to a writable one, else in the current folder;
    never beside a model elsewhere (a shared or read-only folder)."""
    path = _model_path(model)
    name = f"{path.stem if path else 'model'}.confusion-{split}.png"
    run = run_folder_of(path) if path else None
    if run is not None and os.access(run, os.W_OK):
        return run / name
    return Path(name)


def _model_path(model) -> Path | None:
    if isinstance(model, (str, os.PathLike)):
        return Path(model)
    path = getattr(model, "path", None)
    return Path(path) if path else None


def check_outputs(paths, overwrite: bool) -> None:
    """Refuse an output that exists (unless `overwrite`) before any work is done."""
    for path in paths:
        if path is not None and Path(path).exists() and not overwrite:
            raise OutputExistsError(path)


def _check_fit(model: ModelInfo, info) -> tuple[list[str], list[int] | None]:
    """Refuse a model that cannot take this dataset; return notes on softer mismatches,
    and the model's output column for each dataset class when the model names the same
    classes in another order (matched by name), else None."""
    notes, order = [], None
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
    overwrite: bool = False,
    class_names=None,
    pixel_scale=None,
) -> EvaluationResult:
    """Evaluate `model` (a path, a loaded model or a keras.Model) on a split of the dataset
    at `dataset_dir` (default split: test if it has images, else val). Writes the errors
    sheet, errors CSV and confusion plot when their paths are given (`confusion_png=
    DEFAULT_PLACE`: see default_confusion_path); an existing one is refused unless
    `overwrite`, before the model is loaded. `class_names` and `pixel_scale` (--classes,
    --scale) are as in open_model; a model whose class names are the dataset's in another
    order is matched by name. `progress(done, total)` counts images; it is first called
    once the model and dataset are open and checked, so a bad input fails before any
    progress shows."""
    from cnncli.datasets.store import open_dataset

    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if split is not None and split not in SPLITS:  # before any loading
        raise UsageError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    info = open_dataset(dataset_dir)
    split = _chosen_split(info, split)
    if isinstance(confusion_png, str) and confusion_png == DEFAULT_PLACE:
        confusion_png = default_confusion_path(model, split)
    check_outputs((errors_png, errors_csv, confusion_png), overwrite)
    m = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    fit_notes, order = _check_fit(m, info)
    notes = list(m.notes) + fit_notes + [f"converted at build: {c}" for c in info.conversions]
    names = list(info.class_names)
    counter = Counter(progress, info.count(split))
    counter.start()

    labels, probs, paths = [], [], []
    wrong, close = Smallest(SHEET_MAX), Smallest(CLOSE_CALLS)  # images for the errors sheet
    seen = 0
    for x, y, p in _batches(info, split, batch_size):
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
    result.per_class = per_class_metrics(result.confusion, names)
    table = (y_true, y_pred, pr, paths, names)
    result.misclassified = rows(
        np.flatnonzero(y_pred != y_true), *table,
        key=lambda r: wrong_key(pr[r.index], r.actual_index, r.predicted_index, r.index),
    )  # fmt: skip
    if not result.misclassified:
        right = sorted(np.flatnonzero(y_pred == y_true), key=lambda i: margin_key(pr[i], i))
        result.close_calls = rows(
            right[:CLOSE_CALLS], *table, key=lambda r: margin_key(pr[r.index], r.index)
        )
    _write(result, errors_png, errors_csv, confusion_png, wrong, close, overwrite)
    return result


def _write(result, errors_png, errors_csv, confusion_png, wrong, close, overwrite) -> None:
    if errors_csv is not None:
        write_errors_csv(result.misclassified, errors_csv, overwrite=overwrite)
        result.files["errors_csv"] = str(errors_csv)
    if errors_png is not None:
        shown = result.misclassified[:SHEET_MAX] or result.close_calls
        images = (wrong if result.misclassified else close).images()
        title = sheet_title(result.count, result.split, len(result.misclassified), len(shown))
        write_errors_sheet(shown, images, title, errors_png, overwrite=overwrite)
        result.files["errors_png"] = str(errors_png)
    if confusion_png is not None:
        from cnncli.drawing.plots import plot_confusion

        title = f"Confusion matrix: {result.split} ({result.count} images, "
        title += f"accuracy {result.accuracy:.3f})"
        plot_confusion(result.confusion, result.class_names, confusion_png, title=title)
        result.files["confusion_png"] = str(confusion_png)
