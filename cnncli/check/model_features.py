"""`dataset check --model MODEL`: a trained model's features for the label check.

The model must fit the dataset: the same task, as many classes (labels, targets) and an
input that takes the dataset's images; a model that does not is refused (UsageError, one
line) before any image is read. Its features are the input of its last Dense layer (a
Keras model), or its output probabilities (an exported model, which cnncli cannot cut);
each image is still scored out of fold: a logistic regression on those features is
trained on K-1 folds and predicts the held-out one (cnncli.check.label_issues)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.check.scan import record_order
from cnncli.datasets.store import DatasetInfo, iter_records
from cnncli.errors import ModelError, UsageError
from cnncli.inference.info import ModelInfo
from cnncli.inference.model import open_model, probabilities
from cnncli.inference.split_io import check_input_shape
from cnncli.progress import Counter

BATCH = 64


def open_fitting_model(model: Any, info: DatasetInfo, unsafe: bool = False) -> ModelInfo:
    """Open MODEL and refuse it (UsageError) unless it fits dataset `info`."""
    m = open_model(model, unsafe=unsafe)
    hint = "give a model trained on this dataset (or one built with the same options)"
    if m.task != info.task:
        raise UsageError(
            f"--model {model} is a {m.task} model but the dataset is {info.task}", hint
        )
    outputs = m.head.units if info.task == "regression" else m.head.num_classes
    if outputs != info.output_size:
        what = {"classify": "classes", "multilabel": "labels", "regression": "targets"}[info.task]
        raise UsageError(
            f"--model {model} predicts {outputs} {what} but the dataset has "
            f"{info.output_size} ({', '.join(info.class_names or [t.name for t in info.targets])})",
            hint,
        )
    if hasattr(m.model, "inputs"):
        try:
            check_input_shape(m, info)
        except ModelError as e:
            raise UsageError(f"--model {model}: {e.message}", hint) from None
    elif tuple(m.image.shape) != tuple(info.image.shape):
        raise UsageError(
            f"--model {model} takes {m.image.describe()} images, the dataset holds "
            f"{info.image.describe()}",
            hint,
        )
    return m


def _feature_model(m: ModelInfo):
    """(a Keras model giving the input of the last Dense layer, its name), or (None, None)."""
    layers = getattr(m.model, "layers", None)
    if not layers:
        return None, None
    dense = [layer for layer in layers if type(layer).__name__ == "Dense"]
    if not dense:
        return None, None
    import keras

    try:
        return keras.Model(m.model.inputs, dense[-1].input), dense[-1].name
    except (ValueError, TypeError, AttributeError):
        return None, None


def model_features(
    m: ModelInfo, info: DatasetInfo, counter: Counter | None = None
) -> tuple[np.ndarray, str]:
    """(N, D) features of every image in record order, and what they are (for the output)."""
    cut, layer = _feature_model(m)
    name = m.path.name if m.path else "the model"
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush():
        x = np.stack(batch).astype(np.float32)
        if cut is not None:
            y = np.asarray(cut.predict_on_batch(x * np.float32(m.pixel_scale)), np.float32)
            out.append(y.reshape(len(x), -1))
        else:
            out.append(np.log(np.clip(probabilities(m, x), 1e-6, None)))
        if counter is not None:
            counter.add(len(batch))
        batch.clear()

    for split in record_order(info):
        for r in iter_records(info, split):
            batch.append(r.image)
            if len(batch) == BATCH:
                flush()
    if batch:
        flush()
    what = (
        f"logistic regression on {name}'s features (the input of its layer {layer!r})"
        if cut is not None
        else f"logistic regression on {name}'s output probabilities"
    )
    return np.concatenate(out), what
