"""The error list of a multi-label or regression evaluation (cnncli.inference.evaluate_tasks)
and the files made from it: the error sheet (PNG), the list as CSV and the regression plots.

- multilabel: the images with the most wrong labels first, "실제 : … // 예측 : …".
- regression: the largest errors first, "true 3.2 // pred 4.1".
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.atomic import atomic_file
from cnncli.inference.answers import format_value
from cnncli.inference.misclassified import (
    SHEET_MAX,
    multilabel_caption,
    regression_caption,
    write_sheet,
)

if TYPE_CHECKING:
    from cnncli.datasets.store import Target
    from cnncli.inference.misclassified import Smallest


def multilabel_worst(
    y: np.ndarray, pred: np.ndarray, probs: np.ndarray, paths: Sequence[str], names: Sequence[str]
) -> list[dict]:
    """The images with a wrong label, most wrong labels first (then the largest
    probability miss): {index, path, actual, predicted, wrong}."""
    wrong = (pred != y.astype(int)).sum(axis=1)
    miss = np.abs(probs - y).sum(axis=1)
    order = sorted(np.flatnonzero(wrong), key=lambda i: (-wrong[i], -miss[i], i))
    return [
        {
            "index": int(i),
            "path": paths[int(i)],
            "actual": [n for n, v in zip(names, y[i], strict=True) if v > 0.5],
            "predicted": [n for n, v in zip(names, pred[i], strict=True) if v],
            "wrong": int(wrong[i]),
        }
        for i in order
    ]


def regression_worst(
    y: np.ndarray,
    out: np.ndarray,
    paths: Sequence[str],
    names: Sequence[str],
    targets: Sequence[Target],
    limit: int = SHEET_MAX,
) -> list[dict]:
    """The `limit` largest errors (in standard deviations of the target that is furthest
    off), largest first: {index, path, true, predicted, error}."""
    std = np.array([t.std or 1.0 for t in targets])
    err = np.abs((out - y) / std).max(axis=1) if len(y) else np.zeros(0)
    order = sorted(range(len(y)), key=lambda i: (-err[i], i))[:limit]
    return [
        {
            "index": int(i),
            "path": paths[i],
            "true": [float(v) for v in y[i]],
            "predicted": [float(v) for v in out[i]],
            "error": [float(v) for v in out[i] - y[i]],
        }
        for i in order
    ]


def write_task_files(
    result: Any,
    errors_png: str | os.PathLike | None,
    errors_csv: str | os.PathLike | None,
    plots: dict[str, str | os.PathLike],
    keep: Smallest | None,
    overwrite: bool,
) -> None:
    """The files of a TaskEvaluation `result` (cnncli.inference.evaluate_tasks): the error
    list as CSV, the error sheet from the images `keep` (a Smallest) holds, the plots
    ({kind: path}); each path written is added to result.files."""
    if errors_csv is not None:
        _write_csv(result, errors_csv, overwrite)
        result.files["errors_csv"] = str(errors_csv)
    if errors_png is not None:
        assert keep is not None  # evaluate_task keeps the images when errors_png is given
        images = keep.images()
        shown = [w for w in result.worst if w["index"] in images][:SHEET_MAX]
        items = []
        for rank, w in enumerate(shown, 1):
            if result.task == "multilabel":
                text = multilabel_caption(
                    rank, w["actual"], w["predicted"], w["path"], w["wrong"], result.names
                )
            else:
                text = regression_caption(rank, w["true"], w["predicted"], w["path"])
            items.append((images[w["index"]], text))
        if result.task == "multilabel":
            title = f"{len(result.worst)} of {result.count} with wrong labels ({result.split})"
            title += "\nmost wrong labels first"
        else:
            title = f"the {len(shown)} largest errors of {result.count} ({result.split})"
        write_sheet(items, title, errors_png, overwrite, cell=280)  # long captions: wide cells
        result.files["errors_png"] = str(errors_png)
    for kind, path in plots.items():
        from cnncli.inference.task_plots import draw_plot

        draw_plot(kind, result, path)
        result.files[f"{kind}_png"] = str(path)


def _write_csv(result, path, overwrite: bool) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if result.task == "multilabel":
        w.writerow(["path", "actual", "predicted", "wrong"])
        for r in result.worst:
            w.writerow([r["path"], ";".join(r["actual"]), ";".join(r["predicted"]), r["wrong"]])
    else:
        names = result.names
        w.writerow(["path", *(f"true_{n}" for n in names), *(f"pred_{n}" for n in names)])
        for r in result.worst:
            w.writerow(
                [r["path"], *map(format_value, r["true"]), *map(format_value, r["predicted"])]
            )
    with atomic_file(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8")
