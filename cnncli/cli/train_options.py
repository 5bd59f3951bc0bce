"""train's option values as the run's TrainOptions: which of `cnncli train`'s parameters
are options of the run (TRAIN_OPTION_NAMES; cnncli tune takes them as the fixed options of
every trial) and which name the model (MODEL_SOURCE_NAMES), and the TrainOptions they ask
for (train_options, used by train and tune)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnncli.training.options import TrainOptions

# train_command's parameters that are options of the run (TrainOptions), not what the
# command does with it: cnncli tune takes these as the fixed options of every trial
TRAIN_OPTION_NAMES = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "seed",
    "early_stop",
    "monitor",
    "class_weight",
    "loss",
    "tensorboard",
    "cache",
    "precision",
    "steps_per_execution",
    "augment",
    "rotation",
    "shift",
    "shear",
    "zoom",
    "flip",
    "checkpoint",
    "save_best_only",
    "backbone",
    "weights",
    "alpha",
    "freeze",
    "fine_tune_at",
    "fine_tune_lr",
    "unfreeze",
    "lr_schedule",
    "warmup",
    "recipe",
    "label_smoothing",
    "ema",
)
MODEL_SOURCE_NAMES = ("arch", "spec", "from_model")


def train_options(
    *,
    epochs,
    batch_size,
    optimizer,
    lr,
    seed,
    early_stop,
    monitor,
    class_weight,
    loss,
    tensorboard,
    cache,
    precision,
    steps_per_execution,
    augment,
    rotation,
    shift,
    shear,
    zoom,
    flip,
    checkpoint,
    save_best_only,
    backbone,
    weights,
    alpha,
    freeze,
    fine_tune_at,
    fine_tune_lr,
    unfreeze,
    lr_schedule,
    warmup,
    recipe=None,
    label_smoothing=None,
    ema=None,
) -> TrainOptions:
    """The TrainOptions that train's option values (TRAIN_OPTION_NAMES) ask for."""
    from cnncli.training.augment import AugmentOptions
    from cnncli.training.options import TrainOptions

    transforms = {"rotation": rotation, "shift": shift, "shear": shear, "zoom": zoom, "flip": flip}
    return TrainOptions(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer.lower(),
        lr=lr,
        seed=seed,
        early_stop=early_stop,
        monitor=monitor,
        class_weight=class_weight,
        loss=loss,
        tensorboard=tensorboard,
        cache=cache,
        precision=precision.lower(),
        steps_per_execution=steps_per_execution,
        augment=AugmentOptions.from_options(augment, **transforms),
        checkpoint=checkpoint,
        save_best_only=save_best_only,
        backbone=backbone,
        weights=weights,
        alpha=alpha,
        freeze=freeze,
        fine_tune_at=fine_tune_at,
        fine_tune_lr=fine_tune_lr,
        unfreeze=unfreeze,
        lr_schedule=lr_schedule.lower() if lr_schedule else None,
        warmup=warmup,
        recipe=recipe.lower() if recipe else None,
        label_smoothing=label_smoothing,
        ema=ema,
    )
