"""`cnncli train`: a thin command over cnncli.training.fit.run_training (train a new run
or resume one); cnncli.cli.train_events renders its events and result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli import completion as complete
from cnncli.cli.options import JsonOpt, OverwriteOpt
from cnncli.cli.train_options import TRAIN_OPTION_NAMES, train_options
from cnncli.cli.train_transfer import (
    AlphaOpt,
    BackboneOpt,
    FindLrOpt,
    FineTuneAtOpt,
    FineTuneLrOpt,
    FreezeOpt,
    LrScheduleOpt,
    UnfreezeOpt,
    WarmupOpt,
    WeightsOpt,
)
from cnncli.training.options import DEFAULT_EPOCHS
from cnncli.training.recipes import FAST_EPOCHS, FAST_PEAK_LR, FAST_STEPS

_AUG = "Augmentation"
_CKPT = "Checkpoints and output"
_DIST = "Several devices or machines"


def train_command(
    dataset_dir: Annotated[
        Path | None, typer.Argument(help="Dataset folder (from cnncli dataset build).")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            help="A built-in architecture (facade, mnist, tiny, ...); default: a small "
            "network designed for the dataset (the fast recipe).",
            autocompletion=complete.archs,
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="fast (a small BatchNorm network for the dataset, one-cycle rate, label "
            "smoothing, weight averaging, shift/rotate augmentation; the default without "
            "--arch/--spec/--from) or course (the course's settings; the default with them). "
            "Options you give win over the recipe's.",
        ),
    ] = None,
    spec: Annotated[
        Path | None, typer.Option("--spec", help="A model spec file (YAML/JSON).")
    ] = None,
    from_model: Annotated[
        Path | None, typer.Option("--from", help="Continue training a saved model (.keras/.h5).")
    ] = None,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    alpha: AlphaOpt = None,
    freeze: FreezeOpt = False,
    fine_tune_at: FineTuneAtOpt = None,
    fine_tune_lr: FineTuneLrOpt = 1e-5,
    unfreeze: UnfreezeOpt = None,
    lr_schedule: LrScheduleOpt = None,
    warmup: WarmupOpt = 0,
    find_lr: FindLrOpt = False,
    json_out: JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Run folder (default: runs/train, runs/train2, ...).",
            rich_help_panel=_CKPT,
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            help=f"Total epochs (default: course {DEFAULT_EPOCHS}; fast about {FAST_STEPS} "
            f"steps, {FAST_EPOCHS[0]} to {FAST_EPOCHS[1]} epochs; with --resume: a new total).",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="Images per batch (multi-worker: per worker; the global batch is this x workers).",
        ),
    ] = 32,
    optimizer: Annotated[
        str,
        typer.Option(
            "--optimizer",
            help="adam, rmsprop, sgd or adadelta.",
            autocompletion=complete.optimizers,
        ),
    ] = "adam",
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr",
            help=f"Learning rate (default: fast recipe {FAST_PEAK_LR:g} at the one-cycle peak; "
            "course: the optimizer's).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for weights, shuffling, dropout.")] = 0,
    early_stop: Annotated[
        int | None,
        typer.Option(
            "--early-stop",
            metavar="PATIENCE",
            help="Stop after this many epochs without improvement.",
        ),
    ] = None,
    monitor: Annotated[
        str | None,
        typer.Option(
            "--monitor",
            help="Metric for best model and early stop (default val_loss).",
            autocompletion=complete.monitors,
        ),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(
            "--class-weight",
            help="'auto': weight classes by their inverse frequency (multi-label: each label's "
            "positives by its negatives/positives).",
        ),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            "--loss", help="Regression: mse (default) or huber, on the standardized targets."
        ),
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Write TensorBoard logs into RUN_DIR/tensorboard.")
    ] = False,
    cache: Annotated[
        str,
        typer.Option(
            "--cache",
            help="memory (fast), disk (bounded memory: a cache file) or none.",
            autocompletion=complete.caches,
        ),
    ] = "memory",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="auto (bf16 where the CPU has AMX-BF16 or a GPU computes it, for a model "
            "large enough to gain; else fp32), fp32 or bf16 (mixed: the head, loss and "
            "weights stay float32; the saved models are float32).",
            autocompletion=complete.precisions,
        ),
    ] = "auto",
    steps_per_execution: Annotated[
        int | None,
        typer.Option(
            "--steps-per-execution",
            metavar="N",
            help="Batches per Keras call (default: chosen from the step's size); always a "
            "divisor of an epoch's steps, so the progress bar moves N batches at a time.",
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(
            "--label-smoothing",
            metavar="EPS",
            help="Classification targets smoothed by EPS (default: the recipe's; fast: 0.1, "
            "course: 0).",
        ),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(
            "--ema",
            metavar="MOMENTUM",
            help="Keep a moving average of the weights with this momentum and save it (default: "
            "the recipe's; 0: none).",
        ),
    ] = None,
    augment: Annotated[
        bool,
        typer.Option(
            "--augment",
            rich_help_panel=_AUG,
            help="The course's augmentation: rotation 40, shifts 0.1, shear 0.2, zoom 0.2, "
            "horizontal flip (the options below change one).",
        ),
    ] = False,
    rotation: Annotated[
        float | None,
        typer.Option(
            "--rotation", metavar="DEG", help="Random rotation, +-degrees.", rich_help_panel=_AUG
        ),
    ] = None,
    shift: Annotated[
        float | None,
        typer.Option(
            "--shift", metavar="FRAC", help="Random shifts, +-fraction.", rich_help_panel=_AUG
        ),
    ] = None,
    shear: Annotated[
        float | None,
        typer.Option(
            "--shear", metavar="FRAC", help="Random shear intensity.", rich_help_panel=_AUG
        ),
    ] = None,
    zoom: Annotated[
        float | None,
        typer.Option(
            "--zoom", metavar="FRAC", help="Random zoom, +-fraction.", rich_help_panel=_AUG
        ),
    ] = None,
    flip: Annotated[
        bool | None,
        typer.Option("--flip/--no-flip", help="Random horizontal flip.", rich_help_panel=_AUG),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            metavar="PATTERN",
            rich_help_panel=_CKPT,
            help="Checkpoint file pattern (default save-{epoch:02d}-{val_loss:.4f}.keras; .h5 "
            "writes HDF5): a bare file name goes into RUN_DIR/checkpoints/, a path is taken "
            "from RUN_DIR.",
        ),
    ] = None,
    save_best_only: Annotated[
        bool,
        typer.Option(
            "--save-best-only/--save-every-epoch",
            rich_help_panel=_CKPT,
            help="Write a checkpoint only when the monitored metric improves.",
        ),
    ] = True,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or epoch lines.")
    ] = False,
    json_log: Annotated[
        bool, typer.Option("--json-log", help="Print one JSON object per epoch on stdout.")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Continue an interrupted run from its last finished epoch.",
        ),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            rich_help_panel=_DIST,
            help="auto (multi-worker when TF_CONFIG or --workers is given, else one-device), "
            "one-device, mirrored (every device of this machine) or multi-worker.",
        ),
    ] = "auto",
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            metavar="HOST:PORT,...",
            rich_help_panel=_DIST,
            help="Every worker of a multi-worker run, the chief first (instead of TF_CONFIG).",
        ),
    ] = None,
    worker_index: Annotated[
        int | None,
        typer.Option(
            "--worker-index",
            metavar="I",
            rich_help_panel=_DIST,
            help="This machine's place in --workers (0: the chief, which writes RUN_DIR).",
        ),
    ] = None,
) -> None:
    """Train a CNN on a dataset into a run folder (best and last model, checkpoints,
    history.csv/png, run.json). Ctrl-C (exit 130) or SIGTERM (exit 143) saves a resumable
    state."""
    from cnncli.cli.train_events import TrainingView, print_train_result
    from cnncli.cli.train_transfer import find_lr_command
    from cnncli.training.distribute import plan_strategy
    from cnncli.training.fit import run_training

    options = train_options(**{k: v for k, v in locals().items() if k in TRAIN_OPTION_NAMES})
    if find_lr:
        return find_lr_command(
            dataset_dir, out, arch, spec, from_model, options, overwrite, json_out, quiet
        )
    plan = plan_strategy(strategy, workers=workers, worker_index=worker_index)
    with TrainingView(quiet=quiet, json_log=json_log) as view:
        result = run_training(
            dataset_dir,
            out,
            arch=arch,
            spec=spec,
            from_model=from_model,
            resume_dir=resume,
            options=options,
            overwrite=overwrite,
            events=view,
            strategy=plan,
        )
    print_train_result(result, quiet=quiet, json_log=json_log)


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True)(train_command)
