"""The task's own metric in the export check (cnncli.export.check), Keras against the export
on the same labelled images, computed by the functions `cnncli evaluate` uses
(cnncli.inference.metrics), and what the check says about it:

- regression: MAE and R^2 per target, each model's, and what the export cost
  (`mae_cost` = export - Keras, `r2_lost` = Keras - export: positive when the export is
  worse, negative for a gain);
- multilabel: F1 per label at the model's thresholds and subset accuracy, each model's, and
  `f1_lost` / `subset_accuracy_lost` (Keras - export); with or without labels, the share of
  images given the same label set by both (`label_agreement`).

`summary_rows` gives the check's table (every task) and `int8_lines` what int8 cost, a gain
worded as a gain.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.inference.metrics import multilabel_metrics, regression_metrics
from cnncli.models.head import outputs_to_probabilities

if TYPE_CHECKING:
    from cnncli.inference.info import ModelInfo


def task_figures(
    info: ModelInfo, labels: np.ndarray | None, ref: np.ndarray, got: np.ndarray
) -> dict:
    """The CheckResult fields of a multilabel or regression model `info` (the Keras one)
    from its raw outputs `ref`, the export's `got` (N, units) and the images' labels or
    targets (N, units; None: no labels); {} for a classifier."""
    if info.task == "multilabel":
        t = np.asarray(info.label_thresholds, np.float64)
        p_ref = outputs_to_probabilities(ref, info.head)
        p_got = outputs_to_probabilities(got, info.head)
        same = np.all((p_ref > t) == (p_got > t), axis=1)
        out: dict = {"label_agreement": float(same.mean()) if len(same) else None}
        if labels is None or not len(labels):
            return out
        a = multilabel_metrics(labels, p_ref, t, info.class_names)
        b = multilabel_metrics(labels, p_got, t, info.class_names)
        out["labels"] = [
            {
                "name": x.name,
                "threshold": x.threshold,
                "keras_f1": x.f1,
                "exported_f1": y.f1,
                "f1_lost": x.f1 - y.f1,
            }
            for x, y in zip(a["labels"], b["labels"], strict=True)
        ]
        out["keras_subset_accuracy"] = a["subset_accuracy"]
        out["exported_subset_accuracy"] = b["subset_accuracy"]
        return out
    if info.task == "regression" and labels is not None and len(labels):
        means = [0.0] * len(info.class_names)  # the train-mean baseline is not reported here
        keras_rows = regression_metrics(labels, ref, info.class_names, means)
        export_rows = regression_metrics(labels, got, info.class_names, means)
        return {
            "targets": [
                {
                    "name": x.name,
                    "keras_mae": x.mae,
                    "exported_mae": y.mae,
                    "mae_cost": y.mae - x.mae,
                    "keras_r2": _finite(x.r2),
                    "exported_r2": _finite(y.r2),
                    "r2_lost": _finite(x.r2 - y.r2),
                }
                for x, y in zip(keras_rows, export_rows, strict=True)
            ]
        }
    return {}


def _finite(v: float) -> float | None:
    """R^2 of one image is undefined: None (null in JSON), never NaN."""
    return None if math.isnan(v) else float(v)


def summary_rows(c: Any) -> list[tuple[str, str]]:
    """The check `c` (a CheckResult) as (what, result) rows, as `cnncli export` prints them."""
    where = c.images_from + (f" ({c.split})" if c.split else "")
    rows = [("images", f"{c.images} from {where}")]
    if c.label_agreement is not None:
        rows.append(("label-set agreement", f"{c.label_agreement:.4f}"))
    elif c.task != "regression":
        rows.append(("top-1 agreement", _num(c.top1_agreement, ".4f")))
    allowed = "" if c.tolerance is None else f" (allowed {c.tolerance:.3g})"
    rows.append(("max abs difference", f"{c.max_abs_diff:.3g}{allowed}"))
    if c.keras_accuracy is not None:
        rows.append(
            ("accuracy keras / export", f"{c.keras_accuracy:.4f} / {c.exported_accuracy:.4f}")
        )
    for t in c.targets:  # and the difference, export - Keras
        r2_diff = "" if t["r2_lost"] is None else f" ({-t['r2_lost']:+.4f})"
        rows.append(
            (f"MAE {t['name']} keras / export", f"{_pair(t, 'mae', '.4g')} ({t['mae_cost']:+.3g})")
        )
        rows.append((f"R² {t['name']} keras / export", _pair(t, "r2", ".4f") + r2_diff))
    for x in c.labels:
        rows.append((f"F1 {x['name']} keras / export", _pair(x, "f1", ".4f")))
    if c.keras_subset_accuracy is not None:
        rows.append(
            (
                "subset accuracy keras / export",
                f"{c.keras_subset_accuracy:.4f} / {c.exported_subset_accuracy:.4f}",
            )
        )
    return rows


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _pair(row: dict, key: str, fmt: str) -> str:
    return f"{_num(row[f'keras_{key}'], fmt)} / {_num(row[f'exported_{key}'], fmt)}"


def int8_lines(c: Any) -> list[str]:
    """What int8 cost on the check images `c` (a CheckResult) in the task's own metric, a
    gain worded as a gain (issue 28 §12); none where the images have no labels."""
    where = c.images_from + (f" ({c.split})" if c.split else "")
    lines = []
    if c.accuracy_lost is not None:
        lines.append(points_line(c.accuracy_lost, "accuracy", where))
    for t in c.targets:
        lines.append(mae_line(t, where))
    if c.subset_accuracy_lost is not None:
        lines.append(points_line(c.subset_accuracy_lost, "subset accuracy", where))
    for x in c.labels:
        lost = x["f1_lost"]
        if abs(lost) < 0.0005:
            lines.append(f"int8 cost no F1 on {x['name']} ({where})")
        else:
            what = "cost" if lost > 0 else "gained"
            lines.append(
                f"int8 {what} {abs(lost):.3f} F1 on {x['name']} "
                f"({x['keras_f1']:.3f} -> {x['exported_f1']:.3f}; {where})"
            )
    return lines


def points_line(lost: float, what: str, where: str) -> str:
    """An accuracy lost (a share, Keras - export) in points, a gain said as a gain."""
    points = abs(lost) * 100
    if points < 0.005:
        return f"int8 cost no {what} on {where}"
    return f"int8 {'lost' if lost > 0 else 'gained'} {points:.2f} points of {what} on {where}"


def mae_line(t: dict, where: str) -> str:
    """What int8 did to one target's MAE: "int8 cost 0.031 MAE on ink (0.412 -> 0.443; ...)",
    a lower MAE said as a gain ("int8 lowered the MAE on ink by 0.012, a gain (...)")."""
    cost, before, after = t["mae_cost"], t["keras_mae"], t["exported_mae"]
    figures = f"({before:.4g} -> {after:.4g}; {where})"
    if cost == 0 or abs(cost) < 1e-9 * max(abs(before), 1.0):
        return f"int8 cost no MAE on {t['name']} {figures}"
    if cost > 0:
        return f"int8 cost {cost:.3g} MAE on {t['name']} {figures}"
    return f"int8 lowered the MAE on {t['name']} by {-cost:.3g}, a gain {figures}"
