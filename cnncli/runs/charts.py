"""The report's charts, drawn as every cnncli figure is (cnncli.drawing.plots.pyplot,
the bundled font through matplotlib_rc, saved atomically by save_figure):

- `plot_curves(series, out_png)`: one panel per metric (loss, accuracy, or a task's own
  names), one colour per run, training dashed and validation solid; one run or several.
- `plot_final_bars(labels, values, out_png)`: one panel per metric, a bar per run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnncli.drawing.figures import pyplot
from cnncli.drawing.fonts import matplotlib_rc
from cnncli.drawing.plots import class_colors, draw_train_val
from cnncli.drawing.save import save_figure
from cnncli.training.rundir import history_sample

MAX_PANELS = 6  # curves drawn, and training metrics among the bars; the rest are in the tables
# Readable on a phone: one panel per row, 5 inches wide at 2x (800 px), 12 pt text, so a
# page 390 px wide shows the text about 13 px high.
PANEL_WIDTH, PANEL_HEIGHT, CHART_DPI, FONT_PT = 5.0, 3.2, 160, 12
MAX_POINTS = 1000  # epochs drawn per run (evenly spaced, the last among them): history.csv has all
MARKERS_UP_TO = 100  # epochs per run drawn with a marker on each


def curve_metrics(histories: Sequence[list[dict]]) -> list[str]:
    """The metric names to draw (without val_), loss first, in first-seen order."""
    names: list[str] = []
    for rows in histories:
        for row in rows:
            for key in row:
                base = key[4:] if key.startswith("val_") else key
                if key != "epoch" and base not in names:
                    names.append(base)
    names.sort(key=lambda n: not n.startswith("loss"))
    return names[:MAX_PANELS]


def grid(
    plt: Any, panels: int, height: float = PANEL_HEIGHT, width: float = PANEL_WIDTH
) -> tuple[Any, list[Any]]:
    """One panel per row (readable on a phone): (figure, the axes)."""
    fig, axes = plt.subplots(panels, 1, figsize=(width, height * panels), squeeze=False)
    return fig, list(axes.ravel())


def chart_rc() -> dict:
    return {**matplotlib_rc(), "font.size": FONT_PT}


def plot_curves(series: Sequence[tuple[str, list[dict]]], out_png: str | os.PathLike) -> Path:
    """Draw each run's history (label, history.csv rows) into `out_png`; a long history is
    thinned to MAX_POINTS epochs per run, evenly spaced."""
    plt = pyplot()
    series = [(label, history_sample(rows, MAX_POINTS)) for label, rows in series]
    metrics = curve_metrics([rows for _, rows in series]) or ["loss"]
    colors = class_colors(len(series))
    with plt.rc_context(chart_rc()):
        fig, axes = grid(plt, len(metrics))
        try:
            for ax, metric in zip(axes, metrics, strict=True):
                for (label, rows), color in zip(series, colors, strict=True):
                    names = (
                        (f"{label} train", f"{label} val") if len(series) > 1 else ("train", "val")
                    )
                    draw_train_val(
                        ax, rows, metric, names, ("--", "-"), color, markers_up_to=MARKERS_UP_TO
                    )
                ax.set_title(metric)
                ax.set_xlabel("epoch")
                ax.xaxis.get_major_locator().set_params(integer=True)
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize="small")
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=CHART_DPI)
        finally:
            plt.close(fig)


def plot_final_bars(
    labels: Sequence[str], values: dict[str, list], out_png: str | os.PathLike
) -> Path:
    """A bar per run (`labels`) for each metric of `values` ({metric: value per run, None
    where a run lacks it}) into `out_png`."""
    plt = pyplot()
    metrics = list(values) or ["loss"]
    colors = class_colors(len(labels))
    with plt.rc_context(chart_rc()):
        fig, axes = grid(plt, len(metrics), height=3.0 + 0.12 * max(map(len, labels), default=0))
        try:
            for ax, metric in zip(axes, metrics, strict=True):
                ys = [v if v is not None else 0.0 for v in values.get(metric, [])]
                xs = range(len(ys))
                ax.bar(xs, ys, color=colors[: len(ys)])
                ax.set_xticks(
                    list(xs),
                    list(labels),
                    rotation=30 if len(labels) > 3 else 0,
                    ha="right" if len(labels) > 3 else "center",
                )
                for x, v in zip(xs, values.get(metric, []), strict=True):
                    ax.annotate(
                        "-" if v is None else f"{v:.3g}",
                        (x, v or 0.0),
                        ha="center",
                        va="bottom",
                        fontsize="small",
                    )
                ax.set_title(metric)
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=CHART_DPI)
        finally:
            plt.close(fig)
