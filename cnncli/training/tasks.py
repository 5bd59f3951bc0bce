"""What a run's dataset task changes in training: the loss, the metrics, the model's last
layers, the label weights and what a `--from` model must already be.

- classify: sigmoid + binary cross-entropy (2 classes) or softmax + sparse categorical
  cross-entropy, accuracy (cnncli.training.model).
- multilabel: one sigmoid unit per label, binary cross-entropy over every (image, label),
  micro and macro F1 (keras.metrics.F1Score), AUC (multi_label=True) and each label's
  precision and recall. `--class-weight auto`: each label's positives weighted by its
  negatives / positives in the train split, as per-(image, label) sample weights.
- regression: one linear unit per target, then a Rescaling(scale=std, offset=mean) layer
  (`to_units`), so the model, trained and saved, gives values in the table's own units
  while its Dense layer learns standardized targets: the loss (MSE or Huber) is weighted by
  1/std^2 and Huber's delta is std, which is exactly the loss on standardized targets (for
  several targets: with their mean variance). MAE, RMSE and R^2 are in the table's units.

Every piece is a built-in Keras class, so the saved models load without --unsafe.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from cnncli.errors import ModelError
from cnncli.models.head import UNITS_LAYER, Head, outputs_text

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.models.metadata import ModelMetadata


def target_scale(info: DatasetInfo) -> float:
    """The spread the regression loss is divided by: the target's std (several targets: the
    root of their mean variance); never 0."""
    stds = np.array([t.std for t in info.targets], dtype=np.float64)
    s = float(np.sqrt(np.mean(stds**2))) if len(stds) else 1.0
    return s if s > 0 else 1.0


def units_layer(info: DatasetInfo) -> keras.layers.Layer:
    """Rescaling(scale=std, offset=mean) per target: standardized -> the table's units
    (float32, whatever the mixed-precision policy)."""
    std = [float(t.std) if t.std > 0 else 1.0 for t in info.targets]
    mean = [float(t.mean) for t in info.targets]
    return keras.layers.Rescaling(scale=std, offset=mean, name=UNITS_LAYER, dtype="float32")


def metric_slug(name: str, index: int, taken: set) -> str:
    """A label name as a metric name part: ASCII letters, digits and _, else its index."""
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_")
    slug = slug if slug and slug not in taken else str(index)
    taken.add(slug)
    return slug


def compile_args(info: DatasetInfo, head: Head, loss_name: str | None) -> dict:
    """loss, loss_weights and metrics of model.compile for the dataset's task (not
    classify: cnncli.training.model compiles that)."""
    if info.task == "multilabel":
        n = head.units
        taken: set = set()
        per_label = []
        for i, name in enumerate(info.class_names):
            slug = metric_slug(name, i, taken)
            per_label += [
                keras.metrics.Precision(thresholds=0.5, class_id=i, name=f"precision_{slug}"),
                keras.metrics.Recall(thresholds=0.5, class_id=i, name=f"recall_{slug}"),
            ]
        # axis=(): a loss per (image, label), so per-label sample weights apply to each
        loss = keras.losses.BinaryCrossentropy(from_logits=head.from_logits, axis=())
        auc = keras.metrics.AUC(
            multi_label=True, num_labels=n, from_logits=head.from_logits, name="auc"
        )
        if head.from_logits:  # F1Score, Precision and Recall threshold probabilities
            return {"loss": loss, "metrics": [auc]}
        metrics = [
            keras.metrics.F1Score(average="micro", threshold=0.5, name="f1_micro"),
            keras.metrics.F1Score(average="macro", threshold=0.5, name="f1_macro"),
            auc,
            *per_label,
        ]
        return {"loss": loss, "metrics": metrics}
    s = target_scale(info)
    if (loss_name or "mse") == "huber":
        loss = keras.losses.Huber(delta=s)  # on standardized targets: delta 1
    else:
        loss = keras.losses.MeanSquaredError()
    metrics = [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.RootMeanSquaredError(name="rmse"),
        keras.metrics.R2Score(name="r2"),
    ]
    return {"loss": loss, "loss_weights": [1.0 / s**2], "metrics": metrics}


def positive_weights(info: DatasetInfo) -> np.ndarray:
    """--class-weight auto for a multilabel dataset: each label's negatives / positives in
    the train split (1 for a label with no positives)."""
    counts = (info.manifest.get("label_counts") or {}).get("train") or {}
    n = info.count("train")
    out = []
    for name in info.class_names:
        pos = int(counts.get(name, 0))
        out.append((n - pos) / pos if pos else 1.0)
    return np.asarray(out, dtype=np.float32)


def with_label_weights(ds: Any, weights: np.ndarray) -> Any:
    """(image, multi-hot) batches -> (image, multi-hot, weight per label): a positive
    label weighs its positive weight, a negative one 1."""
    import tensorflow as tf

    w = tf.constant(weights, tf.float32)
    return ds.map(lambda x, y, *rest: (x, y, tf.where(y > 0.5, w, 1.0), *rest))


def with_one_hot_labels(ds: Any, info: DatasetInfo, one_hot: bool = True) -> Any:
    """A tf.data dataset of (images, class indices[, ...]) with the indices as one-hot
    float32 rows (what Keras' label-smoothed categorical cross-entropy takes); `ds` itself
    when not `one_hot` (or None)."""
    if not one_hot or ds is None:
        return ds
    import tensorflow as tf

    n = len(info.class_names)

    def to_one_hot(x, y, *rest):
        return (x, tf.one_hot(tf.cast(y, tf.int32), n), *rest)

    return ds.map(to_one_hot, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def label_zeros(info: DatasetInfo, batch: int, one_hot: bool = False) -> np.ndarray:
    """A batch of zero labels of the task's shape (to build a model before fit); `one_hot`:
    one-hot rows of a classifier (with_one_hot_labels)."""
    if info.task == "classify" and one_hot:
        return np.zeros((batch, len(info.class_names)), "float32")
    if info.task == "classify":
        return np.zeros((batch,), "int32")
    return np.zeros((batch, info.output_size), "float32")


def check_from_model(metadata: ModelMetadata, head: Head, info: DatasetInfo) -> None:
    """A --from model of a multilabel or regression task must be of the dataset's task,
    with as many outputs (and, for regression, the same targets)."""
    mine, theirs = metadata.task, info.task
    if mine != theirs:
        raise ModelError(
            f"the --from model is a {mine} model ({outputs_text(mine, head.num_classes)}) but the "
            f"dataset is {theirs} ({outputs_text(theirs, info.output_size)})",
            "train a new model for this dataset with --arch or --spec",
        )
    if head.units != info.output_size:
        raise ModelError(
            f"the --from model gives {head.units} output(s) but the dataset has "
            f"{outputs_text(theirs, info.output_size)}",
            "train a new model for this dataset with --arch or --spec",
        )
    if theirs == "regression":
        names = [t.name for t in info.targets]
        if list(metadata.class_names) != names:
            raise ModelError(
                f"the --from model predicts {', '.join(metadata.class_names)} but the dataset's "
                f"targets are {', '.join(names)}",
                "train a new model for this dataset with --arch or --spec",
            )
