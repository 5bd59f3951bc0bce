"""The rules of the transfer-learning and schedule options of a run (--backbone, --weights,
--alpha, --freeze, --fine-tune-at, --fine-tune-lr, --unfreeze, --lr-schedule, --warmup),
checked before TensorFlow loads; TrainOptions.check and for_dataset call them. The Keras
side lives in cnncli.models.backbones, cnncli.training.phases and cnncli.training.schedules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnncli.errors import UsageError

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo

SCHEDULES = ("constant", "step", "cosine", "plateau", "onecycle")
DEFAULT_FINE_TUNE_LR = 1e-5


def check_transfer(opts: Any) -> None:
    """Refuse a bad combination of the backbone, phase and schedule options (one line)."""
    from cnncli.models.backbones import check_alpha, get_backbone

    if opts.backbone is not None:
        check_alpha(get_backbone(opts.backbone), opts.alpha)
    else:
        for flag, given in (
            ("--weights", opts.weights is not None),
            ("--alpha", opts.alpha),
            ("--freeze", opts.freeze),
            ("--fine-tune-at", opts.fine_tune_at),
            ("--unfreeze", opts.unfreeze),
        ):
            if given:
                raise UsageError(
                    f"{flag} needs a pretrained backbone",
                    "add --backbone NAME (e.g. --backbone mobilenetv2)",
                )
    if opts.freeze and opts.fine_tune_at is not None:
        raise UsageError(
            "--freeze keeps the backbone frozen all run; --fine-tune-at unfreezes it",
            "give one of them",
        )
    if opts.fine_tune_at is not None:
        if opts.fine_tune_at < 2:
            raise UsageError(
                f"--fine-tune-at is the epoch the fine-tuning starts (2 or later), "
                f"got {opts.fine_tune_at}",
                "without a frozen first phase, leave it out",
            )
        if opts.epochs is not None and opts.fine_tune_at > opts.epochs:
            raise UsageError(
                f"--fine-tune-at {opts.fine_tune_at} is beyond --epochs {opts.epochs}",
                "give a larger --epochs or an earlier --fine-tune-at",
            )
    elif opts.unfreeze is not None:
        raise UsageError(
            "--unfreeze says how many backbone layers --fine-tune-at unfreezes",
            "add --fine-tune-at EPOCH",
        )
    if opts.unfreeze is not None and opts.unfreeze < 1:
        raise UsageError(f"--unfreeze must be at least 1 layer, got {opts.unfreeze}")
    if not opts.fine_tune_lr > 0:
        raise UsageError(f"--fine-tune-lr must be positive, got {opts.fine_tune_lr}")
    if opts.lr_schedule is not None and opts.lr_schedule not in SCHEDULES:
        raise UsageError(
            f"unknown --lr-schedule {opts.lr_schedule!r}", f"use one of {', '.join(SCHEDULES)}"
        )
    if opts.lr_schedule == "onecycle" and (opts.warmup or opts.fine_tune_at is not None):
        raise UsageError(
            "--lr-schedule onecycle warms up by itself (the first quarter of the "
            "steps) and runs one phase",
            "leave out --warmup and --fine-tune-at, or choose another --lr-schedule",
        )
    if opts.warmup < 0:
        raise UsageError(f"--warmup must be 0 or more epochs, got {opts.warmup}")
    if opts.epochs is not None and opts.warmup and opts.warmup >= opts.epochs:
        raise UsageError(
            f"--warmup {opts.warmup} leaves no epoch after it (--epochs {opts.epochs})",
            "give fewer warm-up epochs",
        )


def check_transfer_dataset(opts: Any, info: DatasetInfo) -> list[str]:
    """The dataset's images against the backbone (smallest size; grayscale/RGBA converted
    in the model) and the weights file (found, never downloaded). Returns the notes said
    at the start of training."""
    if opts.backbone is None:
        return []
    from cnncli.models.backbones import check_input, get_backbone, resolve_weights

    bb = get_backbone(opts.backbone)
    note = check_input(bb, info.image)
    resolve_weights(bb, opts.alpha, opts.weights, info.image.height)
    return [note] if note else []


CHANCE_EPOCHS, CHANCE_MARGIN, CLIMB = 3, 0.05, 0.15


def chance_note(rows: list[dict], chance: float, random_backbone: bool) -> str | None:
    """What to say when validation accuracy has stayed at chance (within CHANCE_MARGIN of
    `chance`, the share of the val split's largest class) for the last CHANCE_EPOCHS epochs
    while training accuracy climbed (by CLIMB, to CLIMB above chance); else None.
    `random_backbone`: a backbone trained from random weights (--weights none), the usual
    cause on a small set: its BatchNorm statistics never settle for unseen images."""
    if len(rows) < CHANCE_EPOCHS:
        return None
    recent = rows[-CHANCE_EPOCHS:]
    val = [v for r in recent if (v := r.get("val_accuracy")) is not None]
    acc = [a for r in rows if (a := r.get("accuracy")) is not None]
    if len(val) < len(recent) or len(acc) < len(rows):
        return None
    if max(val) > chance + CHANCE_MARGIN or acc[-1] < max(acc[0] + CLIMB, chance + CLIMB):
        return None
    said = (
        f"val accuracy has stayed at chance ({chance:.2f}: the largest class's share) for "
        f"{CHANCE_EPOCHS} epochs while training accuracy climbed to {acc[-1]:.2f}"
    )
    if random_backbone:
        return (
            f"{said}: a BatchNorm backbone trained from random weights (--weights none) "
            "on a small set stays there (plain Keras too); use the official weights "
            "(docs/BACKBONES.md), --freeze them, or a small --arch"
        )
    return (
        f"{said}: the model learns the training images by heart; try --augment, more "
        "images, a smaller model or a lower --lr"
    )


def uses_lr_column(opts: Any) -> bool:
    """Whether a run logs its learning rate per epoch (a schedule, warm-up or phases)."""
    return (
        opts.lr_schedule not in (None, "constant")
        or bool(opts.warmup)
        or opts.fine_tune_at is not None
        or opts.backbone is not None
    )


def transfer_notes(opts: Any, info: DatasetInfo) -> list[str]:
    """What training says at its start about the backbone: the colour conversion in the
    model, the weights loaded, the phases, early stopping's best weights."""
    notes = check_transfer_dataset(opts, info)
    if opts.backbone is not None:
        from cnncli.models.backbones import get_backbone, resolve_weights

        bb = get_backbone(opts.backbone)
        path = resolve_weights(bb, opts.alpha, opts.weights, info.image.height)
        notes.append(
            f"backbone {bb.describe(opts.alpha)}: "
            + (f"weights from {path}" if path else "random weights (--weights none)")
            + (", frozen all run" if opts.freeze else "")
            + (
                f", frozen until epoch {opts.fine_tune_at}, then "
                + (f"its top {opts.unfreeze} layers" if opts.unfreeze else "all of it")
                + f" trained at lr {opts.fine_tune_lr:g} (BatchNorm stays frozen)"
                if opts.fine_tune_at
                else ""
            )
        )
    if opts.early_stop:
        notes.append(
            f"early stop after {opts.early_stop} epochs without improvement; "
            "best.keras keeps the best epoch's weights"
        )
    return notes
