"""Two-phase training in one run (the Keras transfer learning guide's recipe): the head
trains with the backbone frozen; from --fine-tune-at the top --unfreeze layers of the
backbone are unfrozen (BatchNormalization stays frozen and in inference mode) and the model
is compiled again with --fine-tune-lr and a fresh optimizer for the new set of weights.

The change happens at the start of that epoch inside the one `model.fit` (the data order
goes on unchanged), and is saved with each epoch's model (the trainable flags and the new
optimizer), so a resume after it continues in the second phase and one before it changes
at the same epoch. `phase_of(epoch)` names the phase of a finished epoch for history.csv.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras

from cnncli.models.backbones import backbone_of

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.training.options import TrainOptions


def phase_of(opts: TrainOptions, epoch: int) -> int:
    """1 or 2: the phase the 1-based `epoch` trains in."""
    return 2 if opts.fine_tune_at is not None and epoch >= opts.fine_tune_at else 1


def unfreeze_top(model: Any, count: int | None) -> int:
    """Unfreeze the top `count` layers of the model's backbone (None: all), keeping every
    BatchNormalization frozen. Returns the number of layers unfrozen."""
    base = backbone_of(model)
    if base is None:
        return 0
    base.trainable = True
    layers = [layer for layer in base.layers if layer.weights]
    chosen = layers if count is None else layers[-count:]
    keep = {id(layer) for layer in chosen}
    unfrozen = 0
    for layer in layers:
        frozen = id(layer) not in keep or isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not frozen
        unfrozen += not frozen
    return unfrozen


def trainable_counts(model: Any) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of `model`."""
    import numpy as np

    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    frozen = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    return trainable, frozen


class PhaseChange(keras.callbacks.Callback):
    """At the start of epoch --fine-tune-at: unfreeze, recompile with the fine-tuning
    learning rate (`recompile(model, lr)`), and make Keras trace the train step again."""

    def __init__(self, opts, recompile) -> None:
        super().__init__()
        self.opts = opts
        self.recompile = recompile
        self.changed_at: int | None = None

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if self.opts.fine_tune_at is None or epoch + 1 != self.opts.fine_tune_at:
            return
        unfreeze_top(self.model, self.opts.unfreeze)
        self.recompile(self.model, self.opts.fine_tune_lr)
        self.model.make_train_function(force=True)
        self.model.make_test_function(force=True)
        self.changed_at = epoch + 1


def recompile_for(opts: Any, info: Any) -> Callable[..., Any]:
    """recompile(model, lr): compile `model` as the run did, with a new optimizer at `lr`."""

    def recompile(model, lr: float) -> None:
        from cnncli.models.head import model_head
        from cnncli.training.model import compile_model

        optimizer = keras.optimizers.get(
            {"class_name": opts.optimizer, "config": {"learning_rate": lr}}
        )
        with model.distribute_strategy.scope():
            compile_model(model, opts, model_head(model, info.task), info, optimizer=optimizer)

    return recompile


def resume_phase(model: Any, opts: TrainOptions, info: DatasetInfo, epoch: int) -> bool:
    """A resume after the phase change: `model` (the run's structure as saved when it
    started, frozen) unfrozen and compiled as the second phase was, before the epoch's
    variables (weights, and the fine-tuning optimizer's) are put back. Returns whether it
    changed the model."""
    if opts.fine_tune_at is None or epoch < opts.fine_tune_at:
        return False
    unfreeze_top(model, opts.unfreeze)
    recompile_for(opts, info)(model, opts.fine_tune_lr)
    return True
