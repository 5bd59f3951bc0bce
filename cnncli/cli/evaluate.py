"""`cnncli evaluate` and `cnncli predict`: thin commands over cnncli.inference.evaluate /
cnncli.inference.predict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli.checks import check_first
from cnncli.cli.options import ClassesOpt, JsonOpt, ModelArg, OverwriteOpt, ScaleOpt, UnsafeOpt
from cnncli.errors import InputError, UsageError

BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]


def evaluate_command(
    model: ModelArg,
    dataset: Annotated[
        Path, typer.Argument(metavar="DATASET_DIR", help="A dataset folder (cnncli dataset build).")
    ],
    split: Annotated[
        str | None,
        typer.Option(help="test, val or train (default: test if the dataset has one, else val)."),
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option("--errors", help="Draw the misclassified images into this PNG."),
    ] = None,
    errors_csv: Annotated[
        Path | None,
        typer.Option("--errors-csv", help="List the misclassified images in this CSV."),
    ] = None,
    confusion: Annotated[
        Path | None,
        typer.Option(
            "--confusion",
            help="Confusion-matrix plot to write (default: <model>.confusion-<split>.png in "
            "the model's run folder, or here for a model from elsewhere).",
        ),
    ] = None,
    no_confusion: Annotated[
        bool, typer.Option("--no-confusion", help="Write no confusion-matrix plot.")
    ] = False,
    batch_size: BatchOpt = 32,
    classes: ClassesOpt = None,
    scale: ScaleOpt = None,
    overwrite: OverwriteOpt = False,
    unsafe: UnsafeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Loss, accuracy, per-class precision/recall/F1 and the confusion matrix on a split."""
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.inference.evaluate import DEFAULT_PLACE, evaluate

    if confusion is not None and no_confusion:
        raise UsageError("--confusion and --no-confusion contradict each other")
    plot = None if no_confusion else (confusion or DEFAULT_PLACE)
    with ProgressBar("evaluate") as bar:
        result = evaluate(
            model, dataset, split=split, batch_size=batch_size, errors_png=errors,
            errors_csv=errors_csv, confusion_png=plot, progress=bar, unsafe=unsafe,
            overwrite=overwrite, class_names=classes, pixel_scale=scale,
        )  # fmt: skip
    console.notes(result.notes)
    if json_out:
        console.print_json(result.to_json())
    else:
        _render_evaluation(result)
    _render_files(result)


def _render_files(result) -> None:
    """Say where each output went (the confusion plot's default place is chosen for it)."""
    from cnncli.cli import console

    sheet = "misclassified images, most confidently wrong first"
    if not result.misclassified:
        sheet = f"error sheet (none misclassified: the {len(result.close_calls)} least certain"
        sheet += " correct images)"
    for kind, label in (
        ("confusion_png", "confusion matrix"),
        ("errors_png", sheet),
        ("errors_csv", "misclassified list"),
    ):
        if kind in result.files:
            console.info(f"wrote {label}: {result.files[kind]}")


def _render_evaluation(result) -> None:
    from cnncli.cli import console

    console.print_table(
        ["split", "images", "loss", "accuracy", "misclassified"],
        [(result.split, result.count, result.loss, result.accuracy, len(result.misclassified))],
        title=f"{result.model_path} on {result.dataset} ({result.loss_name})",
        numeric=["images", "loss", "accuracy", "misclassified"],
    )
    macro, weighted = result.macro, result.weighted
    console.print_table(
        ["class", "precision", "recall", "f1", "support"],
        [(m.name, m.precision, m.recall, m.f1, m.support) for m in result.per_class],
        title="Per class",
        numeric=["precision", "recall", "f1", "support"],
        footer_rows=[
            ("macro avg", macro["precision"], macro["recall"], macro["f1"], result.count),
            (
                "weighted avg",
                weighted["precision"],
                weighted["recall"],
                weighted["f1"],
                result.count,
            ),
        ],
    )
    names = result.class_names
    console.print_table(
        ["actual \\ predicted", *names],
        [(name, *(int(v) for v in row)) for name, row in zip(names, result.confusion, strict=True)],
        title="Confusion matrix (rows: actual, columns: predicted)",
        numeric=names,
    )


def predict_command(
    model: ModelArg,
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="IMAGE|DIR", help="Image files, or folders of images."),
    ],
    top_k: Annotated[int, typer.Option("--top-k", help="Show the K most likely classes.")] = 1,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print the result as CSV on stdout.")] = (
        False
    ),
    batch_size: BatchOpt = 32,
    classes: ClassesOpt = None,
    scale: ScaleOpt = None,
    unsafe: UnsafeOpt = False,
) -> None:
    """Class name and probability for each image, with the class names stored with the model.

    A file that is not a readable image is reported (one line naming it) and skipped; the
    others are predicted and the exit code is 2 (an unreadable input, cnncli.errors' rule).
    """
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.inference.predict import predict

    if json_out and csv_out:
        raise UsageError("--json and --csv are exclusive", "choose one output format")
    check_first(model, inputs)
    with ProgressBar("predict") as bar:
        result = predict(
            model, inputs, top_k=top_k, batch_size=batch_size, progress=bar, unsafe=unsafe,
            class_names=classes, pixel_scale=scale,
        )  # fmt: skip
    console.notes(result.notes, result.conversion)
    for file, reason in result.skipped:
        console.warn(f"skipped {file}: {reason}")
    if json_out:
        console.print_json(result.to_json())
    elif csv_out:
        sys.stdout.write(result.to_csv())
        sys.stdout.flush()
    else:
        _render_predictions(result)
    if result.skipped:
        total = len(result.rows) + len(result.skipped)
        console.info(f"{len(result.skipped)} of {total} file(s) could not be read")
        raise typer.Exit(InputError.exit_code)


def _render_predictions(result) -> None:
    from cnncli.cli import console

    columns = ["file", "class", "probability"]
    columns += [f"top {i}" for i in range(2, result.top_k + 1)]
    base, names = _short_names([r.file for r in result.rows])
    rows = [
        (name, r.class_name, r.probability, *(f"{c} ({p:.3f})" for c, p in r.top_k[1:]))
        for name, r in zip(names, result.rows, strict=True)
    ]
    title = f"Predictions (files in {base})" if base else "Predictions"
    console.print_table(columns, rows, title=title, numeric=["probability"])


def _short_names(files: list[str]) -> tuple[str | None, list[str]]:
    """Files relative to their common folder, so the table's file column stays readable."""
    import os

    if not files:
        return None, []
    try:
        base = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    except ValueError:  # different drives
        return None, files
    return base, [os.path.relpath(os.path.abspath(f), base) for f in files]


def register(app: typer.Typer) -> None:
    app.command("evaluate", no_args_is_help=True)(evaluate_command)
    app.command("predict", no_args_is_help=True)(predict_command)
