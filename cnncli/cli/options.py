"""Options and arguments that several commands share, declared once with one help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an existing output (only one this command wrote)."),
]
UnsafeOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe", help="Allow models that run code (Lambda layers, custom objects): trust it."
    ),
]
MODEL_HELP = (
    "A .keras or .h5 model file (a run's best.keras, say); predict and evaluate also take "
    "a train run folder (its best.keras) and what cnncli export wrote (.tflite, .onnx, a "
    "SavedModel folder)."
)
ModelArg = Annotated[Path, typer.Argument(help=MODEL_HELP)]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        metavar="auto|keras|onnx|litert",
        envvar="CNNCLI_RUNTIME",
        help="What runs a .keras/.h5 model: auto (its LiteRT copy, checked against Keras, made "
        "once and kept in the run folder's .cnncli-cache or ~/.cache/cnncli, when "
        "ai-edge-litert is installed; else Keras), keras, litert or onnx (its ONNX copy).",
    ),
]
OptionalModelArg = Annotated[Path | None, typer.Argument(help=MODEL_HELP, show_default=False)]
TtaOpt = Annotated[
    bool,
    typer.Option(
        "--tta",
        help="Test-time augmentation: average a classifier's probabilities over the image and "
        "small shifts of it (mirror images too where the model trained with flips).",
    ),
]
ClassesOpt = Annotated[
    str | None,
    typer.Option(
        "--classes",
        metavar="A,B,C",
        help="Class names in the order of the model's outputs, comma-separated, for a model "
        "saved without them (replaces the names stored with a cnncli model).",
        show_default=False,
    ),
]
ScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        metavar="SCALE",
        help="Multiply pixels (0..255) by this before the model: 1/255, 1 or 0.00392 "
        "(default: the scale stored with the model, else 1/255).",
        show_default=False,
    ),
]
