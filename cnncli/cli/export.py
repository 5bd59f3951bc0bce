"""`cnncli export`: a thin command over cnncli.export.run.export_model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli import completion as complete
from cnncli.cli.options import JsonOpt, ModelArg, OverwriteOpt, UnsafeOpt


def export_command(
    model: ModelArg,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="savedmodel|litert|onnx",
            help="What to export to.",
            autocompletion=complete.formats,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            show_default=False,
            help="The file (.tflite, .onnx) or SavedModel folder to write (default: "
            "<model><.tflite|.onnx|_savedmodel> in the model's run folder, or here).",
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="LiteRT only: int8 weights and activations.")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            metavar="DATASET_DIR",
            show_default=False,
            help="Dataset whose train split sets the int8 ranges (needed by --int8).",
        ),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            metavar="DATASET_DIR",
            show_default=False,
            help="Dataset whose test (else val) images the export is checked on "
            "(default: the calibration set, else a few sample images).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    unsafe: UnsafeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a model to a SavedModel, LiteRT or ONNX, with a sidecar PATH.cnncli.json (class
    names, image conversion), checked to give the Keras model's answers first."""
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.export.run import export_model

    with ProgressBar("check") as bar:
        result = export_model(
            model,
            format,
            output,
            int8=int8,
            calibration=calibration,
            check=check,
            overwrite=overwrite,
            unsafe=unsafe,
            progress=bar,
        )
    if json_out:
        console.print_json(result.to_json())
        return
    _render(result)


def _render(result) -> None:
    from cnncli.cli import console
    from cnncli.export.check_tasks import int8_lines, summary_rows

    kind = "LiteRT int8" if result.int8 else result.format
    console.print_table(
        ["check", "result"], summary_rows(result.check), title=f"{kind}: {result.path}"
    )
    console.info(f"wrote {result.path} ({result.size:,} bytes) and {result.sidecar}")
    for line in int8_lines(result.check) if result.int8 else []:
        console.info(line)


def register(app: typer.Typer) -> None:
    app.command("export", no_args_is_help=True)(export_command)
