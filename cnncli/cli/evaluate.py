"""`cnncli evaluate`: a thin command over cnncli.inference.evaluate (predict is in
cnncli.cli.predict)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli.options import (
    BatchOpt,
    ClassesOpt,
    JsonOpt,
    ModelArg,
    OverwriteOpt,
    RuntimeOpt,
    ScaleOpt,
    TtaOpt,
    UnsafeOpt,
)
from cnncli.errors import UsageError

_TASKS = "Multi-label and regression models"


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
        bool,
        typer.Option(
            "--no-confusion",
            help="Write no plot (the confusion matrix; regression: scatter, residuals).",
        ),
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Multi-label: one threshold for every label (default: the "
            "model's own, 0.5 until tuned).",
            rich_help_panel=_TASKS,
        ),
    ] = None,
    tune_thresholds: Annotated[
        bool,
        typer.Option(
            "--tune-thresholds",
            help="Multi-label: pick each label's threshold on the val "
            "split (best F1) and store them in the model file.",
            rich_help_panel=_TASKS,
        ),
    ] = False,
    scatter: Annotated[
        Path | None,
        typer.Option(
            "--scatter",
            help="Regression: the true-vs-predicted plot (default: "
            "<model>.scatter-<split>.png, placed as --confusion).",
            rich_help_panel=_TASKS,
        ),
    ] = None,
    residuals: Annotated[
        Path | None,
        typer.Option(
            "--residuals",
            help="Regression: the residual histogram (default: <model>.residuals-<split>.png).",
            rich_help_panel=_TASKS,
        ),
    ] = None,
    batch_size: BatchOpt = 32,
    classes: ClassesOpt = None,
    scale: ScaleOpt = None,
    overwrite: OverwriteOpt = False,
    unsafe: UnsafeOpt = False,
    json_out: JsonOpt = False,
    runtime: RuntimeOpt = "auto",
    tta: TtaOpt = False,
) -> None:
    """Loss, accuracy, per-class precision/recall/F1 and the confusion matrix on a split
    (multi-label: per-label metrics, micro/macro F1; regression: MAE, RMSE, R² per target)."""
    from cnncli.cli import console, task_views
    from cnncli.cli.checks import check_first
    from cnncli.cli.progress import ProgressBar
    from cnncli.export.cache import FastModel
    from cnncli.inference.evaluate import DEFAULT_PLACE, evaluate

    # --tune-thresholds stores the thresholds in the Keras file, and --tta reads the
    # augmentation stored with it: Keras runs both
    fast = FastModel(model, "keras" if tune_thresholds or tta else runtime, unsafe)
    if no_confusion and any(p is not None for p in (confusion, scatter, residuals)):
        raise UsageError("--no-confusion and a plot's path contradict each other")
    plot, fig = (None, None) if no_confusion else (confusion or DEFAULT_PLACE, DEFAULT_PLACE)
    fast.file = check_first(fast.path)  # read once, passed on to the checks and the opening
    with ProgressBar("evaluate") as bar:
        result = evaluate(
            fast,
            dataset,
            split=split,
            batch_size=batch_size,
            errors_png=errors,
            errors_csv=errors_csv,
            confusion_png=plot,
            progress=bar,
            unsafe=unsafe,
            overwrite=overwrite,
            class_names=classes,
            pixel_scale=scale,
            threshold=threshold,
            tune_thresholds=tune_thresholds,
            scatter_png=scatter or fig,
            residuals_png=residuals or fig,
            tta=tta,
        )
    console.notes(result.notes)
    console.info(f"runtime: {fast.runtime_text}")
    if getattr(result, "tta", None) and not json_out:
        t = result.tta
        console.info(
            f"--tta ({t['views']}): accuracy {t['accuracy_without']:.4f} without, "
            f"{result.accuracy:.4f} with ({t['gain']:+.4f})"
        )
    task = task_views.is_task(result)
    if json_out:
        console.print_json(result.to_json())
    else:
        (task_views.render_task_evaluation if task else _render_evaluation)(result)
    (task_views.render_task_files if task else _render_files)(result)


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


def register(app: typer.Typer) -> None:
    app.command("evaluate", no_args_is_help=True)(evaluate_command)
