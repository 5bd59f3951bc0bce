"""The options of `cnncli train` for backbones, fine-tuning and schedules (declared once
here, used in cnncli.cli.train), and the rendering of `cnncli train --find-lr`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cnncli.cli import completion as complete

if TYPE_CHECKING:
    from cnncli.training.options import TrainOptions

_TL = "Transfer learning and schedules"


def _option(kind, flag: str, help: str, metavar: str | None = None, values=None):
    """An option of this panel, typed `kind` (`values`: what completes its value)."""
    return Annotated[
        kind,
        typer.Option(flag, metavar=metavar, rich_help_panel=_TL, help=help, autocompletion=values),
    ]


BackboneOpt = _option(
    str | None,
    "--backbone",
    "A keras.applications backbone (mobilenet, mobilenetv2, mobilenetv3small, "
    "mobilenetv3large, efficientnetb0, resnet50, densenet121) with its preprocessing "
    "built into the model; instead of --arch.",
    "NAME",
    complete.backbones,
)
WeightsOpt = _option(
    str | None,
    "--weights",
    "The backbone's weights: a local file (the official *_notop.h5, a .weights.h5, or a "
    "cnncli model trained with a backbone), a file name in $KERAS_HOME/models or "
    "~/.keras/models, or none (random). Default: the official file in that cache. Never "
    "downloads.",
    "none|PATH",
)
AlphaOpt = _option(float | None, "--alpha", "MobileNet width (mobilenetv2: 0.35 .. 1.4).")
FreezeOpt = _option(bool, "--freeze", "Keep the backbone frozen all run (train the head).")
FineTuneAtOpt = _option(
    int | None,
    "--fine-tune-at",
    "Train the head with the backbone frozen, then from this epoch unfreeze its top "
    "(BatchNorm stays frozen) at --fine-tune-lr.",
    "EPOCH",
)
FineTuneLrOpt = _option(float, "--fine-tune-lr", "Learning rate from --fine-tune-at on.")
UnfreezeOpt = _option(
    int | None,
    "--unfreeze",
    "How many backbone layers (with weights) --fine-tune-at unfreezes from the top (default: all).",
    "LAYERS",
)
LrScheduleOpt = _option(
    str | None,
    "--lr-schedule",
    "constant, step (x0.1 at 1/2 and 3/4 of the epochs), cosine, plateau (halved "
    "after 2 epochs without improvement) or onecycle (per step: warm-up over the first "
    "quarter to --lr, cosine down); default: the recipe's (fast: onecycle, course: "
    "constant); the rate is logged in history.csv.",
    values=complete.schedules,
)
WarmupOpt = _option(int, "--warmup", "Epochs of linear warm-up before the schedule.", "EPOCHS")
FindLrOpt = _option(
    bool,
    "--find-lr",
    "Do not train: sweep the learning rate over a few hundred steps at most, draw loss "
    "vs rate (-o: the PNG, default find-lr.png) and print the suggested --lr.",
)


def find_lr_command(
    dataset_dir: Path | None,
    out: Path | None,
    arch: str | None,
    spec: Path | None,
    from_model: Path | None,
    options: TrainOptions,
    overwrite: bool,
    as_json: bool,
    quiet: bool = False,
) -> None:
    """`cnncli train DATA --find-lr`: the sweep (cnncli.training.find_lr) and its result."""
    from cnncli.cli.console import info, print_json, warn
    from cnncli.cli.progress import ProgressBar
    from cnncli.errors import UsageError
    from cnncli.training.find_lr import run_find_lr
    from cnncli.training.options import model_source

    if dataset_dir is None:
        raise UsageError("missing DATASET_DIR", "cnncli train DATASET_DIR --find-lr --arch NAME")
    source = model_source(arch=arch, spec=spec, from_model=from_model, backbone=options.backbone)
    png = Path(out) if out is not None else Path("find-lr.png")
    if png.suffix.lower() != ".png":
        png = png / "find-lr.png"
    with ProgressBar("learning-rate sweep", enabled=not (quiet or as_json)) as bar:
        result = run_find_lr(dataset_dir, png, source, options, overwrite=overwrite, progress=bar)
    if as_json:
        print_json(result.to_dict())
        return
    info(
        f"swept {len(result.lrs)} steps ({result.stopped}); loss vs learning rate: "
        f"{result.plot}; the weights were restored"
    )
    if result.warning:
        warn(result.warning)
    if result.suggested_lr is None:
        info(
            f"no suggestion: {result.no_suggestion}; pick --lr from the picture, or keep "
            "the optimizer's default"
        )
    else:
        info(
            f"suggested: --lr {result.suggested_lr:.2g} (steepest fall of the smoothed loss; "
            f"lowest loss at {result.min_loss_lr:.2g})"
        )
