"""The numbers evaluate reports, from labels and probabilities: the loss Keras reports,
the confusion matrix, and per-class precision / recall / F1. NumPy only."""

from __future__ import annotations

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


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n, n) counts: row = actual class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def per_class_metrics(matrix: np.ndarray, class_names) -> list[ClassMetrics]:
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
