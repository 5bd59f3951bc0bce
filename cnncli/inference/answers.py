"""What a multi-label or regression model says about one image, in words and numbers, read
the same way by predict, activations (its page and Grad-CAM) and embed.

- multilabel: each label's probability, and the labels above their thresholds (stored with
  the model, 0.5 until `evaluate --tune-thresholds`), in the model's label order (as a
  table's tags: "circle;triangle");
- regression: each target's value, in the table's units (the model de-standardizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cnncli.inference.info import ModelInfo

NO_LABEL = "(no label)"  # a multi-label answer with no label above its threshold


@dataclass
class Answer:
    """One image's answer: `chosen` (multilabel: the labels above their thresholds, with
    their probabilities, in label order; regression: every target and its value) and
    `scores` (each label's probability, or each target's value, in output order)."""

    task: str
    chosen: list[tuple[str, float]]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def top(self) -> float:
        """The highest probability among the chosen labels (NaN: none, or a regression)."""
        if self.task != "multilabel" or not self.chosen:
            return float("nan")
        return max(p for _, p in self.chosen)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.chosen]

    @property
    def text(self) -> str:
        """'circle 0.93, triangle 0.71' / '(no label)'; 'brightness 123.4'."""
        if self.task == "regression":
            return ", ".join(f"{n} {format_value(v)}" for n, v in self.chosen)
        return ", ".join(f"{n} {p:.2f}" for n, p in self.chosen) or NO_LABEL


def format_value(v: float) -> str:
    """A regression value as the tables and captions show it: 4 significant digits."""
    return f"{v:.4g}"


def answers(info: ModelInfo, outputs: np.ndarray) -> list[Answer]:
    """(N, units) outputs of a multilabel or regression model (read by
    cnncli.inference.model.probabilities) -> one Answer per image. `info`: a ModelInfo."""
    names = list(info.class_names)
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    rows = []
    if info.task == "regression":
        for row in out:
            pairs = [(n, float(v)) for n, v in zip(names, row, strict=True)]
            rows.append(Answer("regression", pairs, dict(pairs)))
        return rows
    thresholds = np.asarray(info.label_thresholds, dtype=np.float64)
    for row in out:
        chosen = [(n, float(p)) for n, p, t in zip(names, row, thresholds, strict=True) if p > t]
        scores = {n: float(p) for n, p in zip(names, row, strict=True)}
        rows.append(Answer("multilabel", chosen, scores))
    return rows
