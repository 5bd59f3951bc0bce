"""Evaluate a multi-label or regression model on a split of a dataset of its task (called
by cnncli.inference.evaluate.evaluate for such a dataset).

- multilabel: per-label precision / recall / F1 / support at each label's threshold (the
  model's, or `threshold` for all), micro and macro F1, subset accuracy, Hamming loss;
  `tune_thresholds` first picks each label's threshold on the val split (best F1) and
  stores them with the model file (cnncli.models.io.store_metadata, atomic). The error
  sheet shows the images with the most wrong labels, "실제 : … // 예측 : …".
- regression: MAE, RMSE and R^2 per target in the table's units, beside the MAE of always
  predicting the train mean; a true-vs-predicted scatter with the y = x line and a residual
  histogram (PNG); the error sheet shows the largest errors, "true 3.2 // pred 4.1".

The error list and its files (sheet, CSV, plots) are cnncli.inference.task_errors'.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.errors import DatasetError, ModelError, UsageError
from cnncli.inference.info import ModelInfo, model_file_of
from cnncli.inference.metrics import best_thresholds, multilabel_metrics, regression_metrics
from cnncli.inference.misclassified import SHEET_MAX, Smallest
from cnncli.inference.model import open_model, probabilities
from cnncli.inference.split_io import (
    DEFAULT_PLACE,
    check_input_shape,
    check_outputs,
    dataset_batches,
    default_plot_path,
    run_folder_of,
)
from cnncli.inference.task_errors import multilabel_worst, regression_worst, write_task_files
from cnncli.inference.tta import tta_note, tta_probabilities
from cnncli.progress import Counter

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo

PLOT_KINDS = ("scatter", "residuals")


@dataclass
class TaskEvaluation:
    """A multi-label or regression evaluation (see the module docstring)."""

    task: str
    model_path: str | None
    dataset: str
    split: str
    count: int
    names: list[str]  # labels or targets
    loss: float
    loss_name: str
    metrics: dict  # multilabel: micro_f1, macro_f1, subset_accuracy, hamming_loss
    labels: list = field(default_factory=list)  # LabelMetrics (multilabel)
    targets: list = field(default_factory=list)  # TargetMetrics (regression)
    worst: list[dict] = field(default_factory=list)  # the error list, worst first
    thresholds: list[float] = field(default_factory=list)
    tuned: bool = False  # thresholds picked on val and stored with the model
    conversion: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    y_true: np.ndarray | None = None
    outputs: np.ndarray | None = None  # probabilities (multilabel) or values (regression)
    paths: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {
            "task": self.task,
            "model": self.model_path,
            "dataset": self.dataset,
            "split": self.split,
            "count": self.count,
            "loss": self.loss,
            "loss_name": self.loss_name,
            **self.metrics,
        }
        if self.task == "multilabel":
            out["thresholds_tuned"] = self.tuned
            out["labels"] = [vars(m) for m in self.labels]
        else:
            out["targets"] = [vars(m) for m in self.targets]
        out.update(
            worst=self.worst,
            conversion=self.conversion,
            notes=list(self.notes),
            files=dict(self.files),
        )
        return out


def plot_paths(
    model: Any,
    split: str,
    task: str,
    scatter_png: str | os.PathLike | None,
    residuals_png: str | os.PathLike | None,
) -> dict:
    """{kind: path} of the plots to write (DEFAULT_PLACE: cnncli.inference.split_io's);
    a multi-label evaluation draws none."""
    given = {"scatter": scatter_png, "residuals": residuals_png}
    if task != "regression":
        return {}
    return {
        kind: default_plot_path(model, split, kind) if str(p) == DEFAULT_PLACE else Path(p)
        for kind, p in given.items()
        if p is not None
    }


def evaluate_task(
    model: Any, info: DatasetInfo, split: str, *, tune_thresholds: bool = False, **kwargs
) -> TaskEvaluation:
    """Evaluate `model` on `split` of the multilabel or regression dataset `info` (checked
    and chosen by evaluate); `plots`: {kind: path} from plot_paths. With `tune_thresholds`
    the model file is claimed from before it is read until the thresholds are stored in it
    (see tuning_claim). `tta`: a multi-label model's probabilities averaged over shifted
    views (cnncli.inference.tta; a regression model's values are not, and a note says so)."""
    with tuning_claim(model, tune_thresholds) as digest:
        return _evaluated(
            model, info, split, tune_thresholds=tune_thresholds, digest=digest, **kwargs
        )


@contextmanager
def tuning_claim(model: Any, tune: bool) -> Iterator[str | None]:
    """For `evaluate --tune-thresholds`, which writes the thresholds into the model file:
    refuse an exported model (it cannot store them) before anything runs; hold the write
    claim (cnncli.claims) on the model file and on the train run folder it belongs to, so a
    training cannot replace it meanwhile (a running one refuses the tuning at once); remove
    what a killed tuning left beside it; yield the file's sha256, which store_metadata
    checks again before writing. Yields None when `tune` is False or `model` is no path
    (a FastModel from predict/evaluate's --runtime is its model file's path here)."""
    model = model_file_of(model)
    model = getattr(model, "path", model)  # a ModelFile: its path
    if not tune or not isinstance(model, (str, os.PathLike)):
        yield None
        return
    from cnncli.atomic import clean_debris
    from cnncli.claims import claim
    from cnncli.models.exported_files import exported_kind
    from cnncli.models.files import check_model_file, file_sha256

    path = Path(model)
    if exported_kind(path):
        raise UsageError(
            f"--tune-thresholds stores the thresholds in the model file, and an exported "
            f"model ({path.name}) cannot store them",
            "tune them on the .keras file it was exported from, then export it again",
        )
    check_model_file(path)
    what = "cnncli evaluate --tune-thresholds"
    with ExitStack() as held:
        run = run_folder_of(path)
        if run is not None:
            held.enter_context(claim(run, what))
        held.enter_context(claim(path, what))
        clean_debris(path.parent, path.name)
        yield file_sha256(path)


def _evaluated(
    model,
    info,
    split: str,
    *,
    batch_size: int,
    errors_png=None,
    errors_csv=None,
    plots: dict | None = None,
    progress=None,
    unsafe=False,
    overwrite=False,
    class_names=None,
    pixel_scale=None,
    threshold=None,
    tune_thresholds=False,
    digest=None,
    tta=False,
) -> TaskEvaluation:
    plots = plots or {}
    task = info.task
    if task == "regression" and (threshold is not None or tune_thresholds):
        raise UsageError("--threshold and --tune-thresholds are for multi-label models")
    if threshold is not None and not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1, got {threshold}")
    if threshold is not None and tune_thresholds:
        raise UsageError(
            "--threshold and --tune-thresholds contradict each other",
            "give one threshold for all labels, or let them be tuned",
        )
    if tune_thresholds and info.count("val") == 0:
        raise DatasetError(
            f"--tune-thresholds picks thresholds on the val split, and {info.path} has none",
            "build the dataset with --val, or leave out --tune-thresholds",
        )
    check_outputs((errors_png, errors_csv, *plots.values()), overwrite)
    m = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    notes = list(m.notes) + _check_task_fit(m, info)
    notes += [f"converted at build: {c}" for c in info.conversions]
    refused = tta_note(m) if tta else None
    if refused:
        notes.append(refused)
    forward = tta_probabilities if tta and not refused else probabilities
    tuned = False
    if tune_thresholds:
        _can_store(m)  # before the val split is run
        y_val, p_val, _ = _run(m, info, "val", batch_size, None, None, forward=forward)
        m.thresholds = best_thresholds(y_val, p_val)
        _store_thresholds(m, digest)
        tuned = True
        notes.append(
            f"thresholds picked on val ({info.count('val')} images) and stored in {m.path}"
        )
    counter = Counter(progress, info.count(split))
    counter.start()
    keep = Smallest(SHEET_MAX) if errors_png is not None else None
    if task == "multilabel":
        t = m.label_thresholds if threshold is None else [threshold] * len(m.class_names)
        y, out, paths = _run(
            m, info, split, batch_size, keep, counter, np.asarray(t), forward=forward
        )
        mm = multilabel_metrics(y, out, t, m.class_names)
        result = TaskEvaluation(
            task,
            _path(m),
            str(info.path),
            split,
            len(y),
            list(m.class_names),
            mm["loss"],
            m.head.loss_name,
            {k: mm[k] for k in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")},
            labels=mm["labels"],
            thresholds=list(t),
            tuned=tuned,
        )
        result.worst = multilabel_worst(y, mm["predicted"], out, paths, m.class_names)
    else:
        y, out, paths = _run(m, info, split, batch_size, keep, counter)
        means = [tt.mean for tt in info.targets]
        targets = regression_metrics(y, out, m.class_names, means)
        loss = (
            float(np.mean(((y - out) / [t.std or 1.0 for t in info.targets]) ** 2))
            if len(y)
            else 0.0
        )
        result = TaskEvaluation(
            task,
            _path(m),
            str(info.path),
            split,
            len(y),
            list(m.class_names),
            loss,
            "mean_squared_error (standardized)",
            {
                "mae": _mean(targets, "mae"),
                "rmse": _mean(targets, "rmse"),
                "r2": _mean(targets, "r2"),
                "baseline_mae": _mean(targets, "baseline_mae"),
            },
            targets=targets,
        )
        result.worst = regression_worst(y, out, paths, m.class_names, info.targets)
    result.y_true, result.outputs, result.paths = y, out, paths
    result.conversion = (
        f"images read from the dataset ({info.image.describe()}); pixels x {m.scale_text}"
    )
    result.notes = notes
    write_task_files(result, errors_png, errors_csv, plots, keep, overwrite)
    return result


def _path(m: ModelInfo) -> str | None:
    return str(m.path) if m.path else None


def _mean(rows: list, key: str) -> float:
    return float(np.mean([getattr(r, key) for r in rows])) if rows else 0.0


def _check_task_fit(m: ModelInfo, info) -> list[str]:
    """Refuse a model of another task or output size; notes on other names."""
    check_input_shape(m, info)
    n = len(info.targets) if info.task == "regression" else info.num_classes
    if m.task != info.task:
        raise ModelError(
            f"the model is a {m.task} model but the dataset is {info.task}",
            "evaluate it on a dataset of the task it was trained for",
        )
    if m.head.units != n:
        raise ModelError(
            f"the model gives {m.head.units} output(s) but the dataset has {n} "
            f"{'targets' if info.task == 'regression' else 'labels'}",
            "evaluate it on the dataset it was trained on",
        )
    theirs = [t.name for t in info.targets] if info.task == "regression" else info.class_names
    if list(m.class_names) != list(theirs):
        return [
            f"the model's names ({', '.join(m.class_names)}) differ from the dataset's "
            f"({', '.join(theirs)}); matched by position"
        ]
    return []


def _run(
    m: ModelInfo, info, split, batch_size, keep, counter, thresholds=None, forward=probabilities
):
    """(labels, outputs, paths) of a split; `keep` (a Smallest) gets the worst images;
    `forward(m, images)`: the outputs of a batch."""
    ys, outs, paths, seen = [], [], [], 0
    std = np.array([t.std or 1.0 for t in info.targets]) if info.task == "regression" else None
    for x, y, p in dataset_batches(info, split, batch_size, m.runtime == "keras"):
        out = forward(m, x)
        if keep is not None:
            keys: list[tuple[float, ...]]
            if std is None:
                wrong = ((out > thresholds).astype(int) != y).sum(axis=1)
                keys = [
                    (-int(w), -float(np.abs(o - t).sum()))
                    for w, o, t in zip(wrong, out, y, strict=True)
                ]
            else:
                keys = [(-float(np.abs((o - t) / std).max()),) for o, t in zip(out, y, strict=True)]
            for i, key in enumerate(keys):
                keep.offer((*key, seen + i), seen + i, x[i].astype(np.uint8))
        ys.append(y)
        outs.append(out)
        paths.extend(p)
        seen += len(y)
        if counter is not None:
            counter.add(len(y))
    width = len(info.targets) if info.task == "regression" else info.num_classes
    if not ys:
        return np.zeros((0, width)), np.zeros((0, width)), paths
    return np.concatenate(ys), np.concatenate(outs), paths


def _can_store(m: ModelInfo) -> None:
    from cnncli.models.exported_files import exported_kind

    if m.path is None or not Path(m.path).is_file() or exported_kind(m.path):
        raise UsageError(
            "--tune-thresholds stores the thresholds in the model file; this model has none",
            "give the model as a .keras or .h5 file (a run folder's best.keras)",
        )


def _store_thresholds(m: ModelInfo, digest: str | None) -> None:
    """The tuned thresholds into the model file itself (atomically), as its metadata, if
    it still has the sha256 `digest` (None: not checked)."""
    from cnncli.models.io import store_metadata

    assert m.path is not None and m.thresholds is not None  # _can_store(m), then tuned
    thresholds = [round(float(t), 4) for t in m.thresholds]
    store_metadata(m.path, {"thresholds": thresholds}, expect_sha256=digest)
