"""What a model's output means: the head read from its layers and the task stored with the
model, never guessed from values.

For a classifier (task "classify") a head is 'binary' (one unit: P(class 1)) or
'categorical' (one unit per class); a 'multilabel' head has one sigmoid unit per label
(each its own yes/no); a 'regression' head gives one value per target, in the table's own
units (the model de-standardizes its outputs itself). A head gives logits or probabilities
as its last layer's activation says. `outputs_to_probabilities` turns raw outputs into
per-class (per-label) probabilities, or the values of a regression head, so every command
that reads a model's answer (train's metrics, predict, evaluate, activations, embed) reads
it the same way. `rescales_input` reads the other end: whether the model scales its own
pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnncli.errors import ModelError

TASKS = ("classify", "multilabel", "regression")


_OUTPUT_WORDS = {
    "classify": ("class", "classes"),
    "multilabel": ("label", "labels"),
    "regression": ("target", "targets"),
}


def output_word(task: str) -> str:
    """What one output of a `task` model is called: class, label or target."""
    return _OUTPUT_WORDS.get(task, ("output", "outputs"))[0]


def outputs_text(task: str, n: int) -> str:
    """ "3 labels", "1 target", "2 classes": what a model of `task` with `n` outputs gives."""
    one, many = _OUTPUT_WORDS.get(task, ("output", "outputs"))
    return f"{n} {one if n == 1 else many}"


DEFAULT_THRESHOLD = 0.5  # a label is predicted when its probability is above this
UNITS_LAYER = "to_units"  # a regression model's last layer: standardized -> the table's units
_LOSS_NAMES = {
    "binary": "binary_crossentropy",
    "categorical": "sparse_categorical_crossentropy",
    "multilabel": "binary_crossentropy",
    "regression": "mean_squared_error",
}


@dataclass(frozen=True)
class Head:
    """The model's output: 'binary' (1 sigmoid unit: p = P(class 1)), 'categorical' (one
    unit per class), 'multilabel' (one sigmoid unit per label) or 'regression' (one value
    per target), and whether it gives logits rather than probabilities."""

    kind: str
    from_logits: bool
    units: int

    @property
    def task(self) -> str:
        """classify, multilabel or regression."""
        return self.kind if self.kind in ("multilabel", "regression") else "classify"

    @property
    def num_classes(self) -> int:
        """Classes (a sigmoid unit: 2), labels or targets: one name per output column."""
        return 2 if self.kind == "binary" else self.units

    @property
    def loss_name(self) -> str:
        return _LOSS_NAMES[self.kind]


def model_head(model: Any, task: str = "classify") -> Head:
    """Inspect the last layer: for a classifier 1 unit -> binary, n units -> categorical;
    `task` (stored with the model) 'multilabel' -> one sigmoid unit per label, 'regression'
    -> one value per unit. Logits unless the last activation is sigmoid / softmax."""
    try:
        units = int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError):
        raise ModelError("the model has no single output with a known number of units") from None
    if len(model.outputs) != 1:
        raise ModelError(f"the model has {len(model.outputs)} outputs; cnncli needs one")
    last: Any = model.layers[-1] if model.layers else None
    while getattr(last, "layers", None):  # a nested model as the last layer: its last layer
        last = last.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    if type(last).__name__ == "Softmax":
        act = "softmax"
    if type(last).__name__ == "Activation":
        act = getattr(last.activation, "__name__", act)
    if task == "regression":
        return Head("regression", False, units)
    if task == "multilabel":
        if act == "softmax":
            raise ModelError(
                "the model ends in softmax (one class per image), not one sigmoid unit per label",
                "train a multi-label model on a multilabel dataset (cnncli train)",
            )
        return Head("multilabel", act != "sigmoid", units)
    if units == 1:
        return Head("binary", act != "sigmoid", 1)
    return Head("categorical", act != "softmax", units)


def outputs_to_probabilities(out: np.ndarray, head: Head) -> np.ndarray:
    """Raw outputs (N, units) -> (N, num_classes) probabilities: a sigmoid unit's p becomes
    [1 - p, p], logits go through sigmoid / softmax, probabilities pass as they are; a
    multilabel head gives each label's own probability, a regression head its values."""
    out = out.reshape(out.shape[0], -1)
    if head.kind == "regression":
        return out
    if head.kind == "multilabel":
        return 1 / (1 + np.exp(-out)) if head.from_logits else out
    if head.kind == "binary":
        p = 1 / (1 + np.exp(-out[:, 0])) if head.from_logits else out[:, 0]
        return np.stack([1 - p, p], axis=1)
    if head.from_logits:
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return out


def predicted_classes(probs: np.ndarray, head: Head) -> np.ndarray:
    """The class Keras' accuracy counts: p > 0.5 for a sigmoid head, argmax otherwise (a
    multilabel head: its most likely label; its labels are `predicted_labels`)."""
    if head.kind == "binary":
        return (probs[:, 1] > 0.5).astype(np.int64)
    return probs.argmax(axis=1)


def predicted_labels(
    probs: np.ndarray, thresholds: float | Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """(N, L) multilabel probabilities -> (N, L) 0/1: each label above its threshold
    (a list, one per label, or one number; default DEFAULT_THRESHOLD)."""
    t = DEFAULT_THRESHOLD if thresholds is None else thresholds
    return (probs > np.asarray(t, dtype=np.float64)).astype(np.int64)


def rescales_input(model: Any) -> bool:
    """Whether the model's first computing layer (past augmentation, inside a nested first
    model too) is Rescaling or Normalization: the model takes raw 0..255 pixels itself."""
    layers = list(getattr(model, "layers", []))
    while layers:
        first = layers[0]
        name = type(first).__name__
        if name == "InputLayer" or name.startswith("Random"):
            layers = layers[1:]
        elif getattr(first, "layers", None):  # a nested model: look inside it
            layers = list(first.layers) + layers[1:]
        else:
            return name in ("Rescaling", "Normalization")
    return False
