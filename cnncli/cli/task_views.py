"""How evaluate and predict show a multi-label or regression model's results (rich tables);
the classifier's views are in cnncli.cli.evaluate and cnncli.cli.predict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnncli.cli import console

if TYPE_CHECKING:
    from cnncli.inference.evaluate_tasks import TaskEvaluation
    from cnncli.inference.predict import PredictResult


def is_task(result: object) -> bool:
    """Whether `result` (an evaluation or a prediction result) is of a multilabel or
    regression model."""
    task = getattr(result, "task", None) or getattr(getattr(result, "model", None), "task", None)
    return task in ("multilabel", "regression")


def render_task_evaluation(result: TaskEvaluation) -> None:
    """A TaskEvaluation (cnncli.inference.evaluate_tasks) as tables."""
    title = f"{result.model_path} on {result.dataset} ({result.task}, {result.loss_name})"
    if result.task == "multilabel":
        m = result.metrics
        console.print_table(
            ["split", "images", "loss", "micro F1", "macro F1", "subset accuracy", "Hamming loss"],
            [
                (
                    result.split,
                    result.count,
                    result.loss,
                    m["micro_f1"],
                    m["macro_f1"],
                    m["subset_accuracy"],
                    m["hamming_loss"],
                )
            ],
            title=title,
            numeric=["images", "loss", "micro F1", "macro F1", "subset accuracy", "Hamming loss"],
        )
        tuned = " (tuned on val, stored with the model)" if result.tuned else ""
        console.print_table(
            ["label", "threshold", "precision", "recall", "f1", "support", "predicted"],
            [
                (x.name, x.threshold, x.precision, x.recall, x.f1, x.support, x.predicted)
                for x in result.labels
            ],
            title=f"Per label{tuned}",
            numeric=["threshold", "precision", "recall", "f1", "support", "predicted"],
        )
        return
    console.print_table(
        ["target", "MAE", "RMSE", "R²", "MAE of the train mean", "train mean"],
        [(t.name, t.mae, t.rmse, t.r2, t.baseline_mae, t.mean) for t in result.targets],
        title=f"{title}: {result.split}, {result.count} images, in the table's units",
        numeric=["MAE", "RMSE", "R²", "MAE of the train mean", "train mean"],
    )


def render_task_files(result: TaskEvaluation) -> None:
    """Say where each output of a TaskEvaluation went."""
    sheet = (
        "images with the most wrong labels"
        if result.task == "multilabel"
        else "images with the largest errors"
    )
    for kind, label in (
        ("scatter_png", "true vs predicted scatter"),
        ("residuals_png", "residual histogram"),
        ("errors_png", sheet),
        ("errors_csv", "error list"),
    ):
        if kind in result.files:
            console.info(f"wrote {label}: {result.files[kind]}")


def render_task_predictions(
    result: PredictResult, names: list[str], base: str | None, summary: bool
) -> None:
    """A multilabel or regression PredictResult: one row per image (`names`: the files as
    shown), or with `summary` the images per label / each target's spread."""
    model = result.model
    rows = result.rows
    where = f" (files in {base})" if base else ""
    if model.task == "multilabel":
        if summary:
            counts = {n: sum(1 for r in rows if n in dict(r.top_k)) for n in model.class_names}
            console.print_table(
                ["label", "images", "share", "threshold"],
                [
                    (n, c, f"{c / max(1, len(rows)):.1%}", t)
                    for (n, c), t in zip(counts.items(), model.label_thresholds, strict=True)
                ],
                title=f"Predictions: {len(rows):,} images, by label",
                numeric=["images", "share", "threshold"],
            )
            return
        console.print_table(
            ["file", "labels (probability)"],
            [
                (name, ", ".join(f"{n} ({p:.3f})" for n, p in r.top_k) or "(no label)")
                for name, r in zip(names, rows, strict=True)
            ],
            title=f"Predicted labels{where}",
        )
        return
    targets = list(model.class_names)
    if summary:
        import numpy as np

        values = np.array([[r.scores[t] for t in targets] for r in rows]).reshape(-1, len(targets))
        console.print_table(
            ["target", "images", "mean", "min", "max"],
            [
                (
                    t,
                    len(rows),
                    float(values[:, i].mean()),
                    float(values[:, i].min()),
                    float(values[:, i].max()),
                )
                for i, t in enumerate(targets)
            ],
            title=f"Predictions: {len(rows):,} images",
            numeric=["images", "mean", "min", "max"],
        )
        return
    console.print_table(
        ["file", *targets],
        [(name, *(r.scores[t] for t in targets)) for name, r in zip(names, rows, strict=True)],
        title=f"Predicted values{where}",
        numeric=targets,
    )
