"""The numbers evaluate reports, from labels and probabilities: the loss Keras reports,
the confusion matrix, and per-class precision / recall / F1 (NumPy); for a multi-label
model per-label precision / recall / F1, micro and macro F1, subset accuracy, Hamming loss
and tuned thresholds, for a regression model MAE, RMSE and R^2 per target against the
train-mean baseline (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ClassMetrics:
    index: int
    name: str
    precision: float
    recall: float
    f1: float
    support: int


_EPS = 1e-7  # keras.config.epsilon(): Keras clips probabilities to [eps, 1 - eps]


def cross_entropy(y_true: np.ndarray, probs: np.ndarray, kind: str) -> float:
    """Mean cross-entropy as Keras computes it from probabilities (clipped to eps)."""
    if len(y_true) == 0:
        return 0.0
    if kind == "binary":
        p = np.clip(probs[:, 1], _EPS, 1 - _EPS)
        y = y_true.astype(np.float64)
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    p = probs / probs.sum(axis=1, keepdims=True)
    p = np.clip(p[np.arange(len(y_true)), y_true], _EPS, 1 - _EPS)
    return float(np.mean(-np.log(p)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n) counts: row = actual class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def per_class_metrics(matrix: np.ndarray, class_names: Sequence[str]) -> list[ClassMetrics]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined, as
    scikit-learn's zero_division=0)."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return [
        ClassMetrics(
            i, str(name), float(precision[i]), float(recall[i]), float(f1[i]), int(actual[i])
        )
        for i, name in enumerate(class_names)
    ]


# --- multilabel and regression (scikit-learn) ------------------------------------------


@dataclass
class LabelMetrics:
    """One label of a multi-label evaluation, at its threshold."""

    name: str
    threshold: float
    precision: float
    recall: float
    f1: float
    support: int  # images with the label
    predicted: int  # images the model gives the label


def multilabel_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    names: Sequence[str],
) -> dict:
    """(N, L) 0/1 labels and probabilities at per-label `thresholds` -> per-label
    precision / recall / F1 / support, micro and macro F1, subset accuracy (every label
    right), Hamming loss (the share of wrong (image, label) pairs) and binary
    cross-entropy (as Keras computes it)."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        hamming_loss,
        precision_recall_fscore_support,
    )

    y = np.asarray(y_true, np.int64)
    pred = (probs > np.asarray(thresholds, np.float64)).astype(np.int64)
    if len(y) == 0:
        return {
            "labels": [],
            "micro_f1": 0.0,
            "macro_f1": 0.0,
            "subset_accuracy": 0.0,
            "hamming_loss": 0.0,
            "loss": 0.0,
            "predicted": pred,
        }
    p, r, f, s = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    labels = [
        LabelMetrics(
            str(n),
            float(t),
            float(p[i]),
            float(r[i]),
            float(f[i]),
            int(s[i]),
            int(pred[:, i].sum()),
        )
        for i, (n, t) in enumerate(zip(names, thresholds, strict=True))
    ]
    q = np.clip(probs, _EPS, 1 - _EPS)
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return {
        "labels": labels,
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y, pred)),
        "hamming_loss": float(hamming_loss(y, pred)),
        "loss": float(bce.mean()),
        "predicted": pred,
    }


def best_thresholds(
    y_true: np.ndarray, probs: np.ndarray, grid: Sequence[float] | np.ndarray | None = None
) -> list[float]:
    """Per label, the threshold of `grid` (default 0.05, 0.10 ... 0.95) with the best F1 on
    these images (the one nearest 0.5 among equals); 0.5 for a label without positives."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.05, 0.951, 0.05), 2) if grid is None else np.asarray(grid)
    y = np.asarray(y_true, np.int64)
    out = []
    for i in range(y.shape[1]):
        if y[:, i].sum() == 0:
            out.append(0.5)
            continue
        scores = [f1_score(y[:, i], probs[:, i] > t, zero_division=0) for t in grid]
        best = max(scores)
        ties = [t for t, sc in zip(grid, scores, strict=True) if sc >= best - 1e-12]
        out.append(float(min(ties, key=lambda t: (abs(t - 0.5), t))))
    return out


@dataclass
class TargetMetrics:
    """One target of a regression evaluation, in the table's units."""

    name: str
    mae: float
    rmse: float
    r2: float
    baseline_mae: float  # MAE of always predicting the train mean
    mean: float  # the train mean (the baseline's prediction)


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str], means: Sequence[float]
) -> list:
    """Per target MAE, RMSE and R^2 (scikit-learn) and the MAE of predicting the train
    mean (`means`), all in the table's units."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    out = []
    for i, (name, mean) in enumerate(zip(names, means, strict=True)):
        t, p = y_true[:, i], y_pred[:, i]
        if len(t) == 0:
            out.append(TargetMetrics(str(name), 0.0, 0.0, 0.0, 0.0, float(mean)))
            continue
        r2 = float(r2_score(t, p)) if len(t) > 1 else float("nan")
        out.append(
            TargetMetrics(
                str(name),
                float(mean_absolute_error(t, p)),
                float(np.sqrt(mean_squared_error(t, p))),
                r2,
                float(np.mean(np.abs(t - mean))),
                float(mean),
            )
        )
    return out
