"""Figures drawn with matplotlib, headless, in the bundled Hangul font, saved atomically.

Every figure cnncli draws is made through `drawing.figures.pyplot()` (the one place matplotlib
is set up) inside `plt.rc_context(matplotlib_rc())` (the one font registration), and written by
`drawing.save.save_figure`.

- `plot_history(rows, out_png)`: training vs validation accuracy and loss in two
  panels, as the course draws them ('bo' training points, a 'b' validation line).
- `draw_train_val(ax, rows, metric, names)`: one learning curve (training and validation)
  on an axis: history.png's panels and the report's overlays (cnncli.runs.charts) draw
  theirs with it.
- `plot_confusion(matrix, class_names, out_png)`: the confusion matrix as a heat map with
  counts in the cells; Korean class names are drawn with the bundled Hangul font.
- `plot_projection(points, classes, clusters, title, out_png)`: 2-D points (embed's PCA)
  coloured by class, marked by cluster.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.drawing.figures import pyplot
from cnncli.drawing.fonts import matplotlib_rc
from cnncli.drawing.lr_plots import mark_schedule  # the rate, the phase change
from cnncli.drawing.save import save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_history(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """Draw a run's history (history.csv's rows as read by training.rundir.read_history:
    epoch, loss, accuracy, val_loss, val_accuracy, ...) as two panels, accuracy and loss,
    training vs validation; write `out_png` atomically. Drawing reads no run folder."""
    plt = pyplot()
    rows = list(rows)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    # the first panel: accuracy, or a multi-label run's macro F1, a regression run's MAE
    first = next(
        (m for m in ("accuracy", "f1_macro", "mae") if any(m in r for r in rows)), "accuracy"
    )
    with plt.rc_context(matplotlib_rc()):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        try:
            for ax, metric, title in (
                (axes[0], first, f"Training and validation {first}"),
                (axes[1], "loss", "Training and validation loss"),
            ):
                names = (f"Training {metric}", f"Validation {metric}")
                draw_train_val(ax, rows, metric, names, styles=("bo", "b"))
                ax.set_title(title)
                ax.set_xlabel("epoch")
                ax.set_ylabel(metric)
                if epochs:
                    ax.set_xticks(_ticks(epochs))
                if ax.get_legend_handles_labels()[0]:
                    ax.legend()
            mark_schedule(axes, epochs, rows)
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=80)
        finally:
            plt.close(fig)


def draw_train_val(
    ax: Axes,
    rows: Sequence[dict],
    metric: str,
    names: tuple[str, str],
    styles: tuple[str, str] = ("bo", "b"),
    color: str | None = None,
    markers_up_to: int | None = None,
) -> None:
    """The learning curve, drawn once for every chart that shows one (history.png, the
    report's overlays): a history's training `metric` and its `val_` twin on `ax`, labelled
    `names`, each row at its epoch (else its position). `markers_up_to`: a point marker on
    each epoch of a line with at most that many."""
    for key, style, name in ((metric, styles[0], names[0]), (f"val_{metric}", styles[1], names[1])):
        pts = [(r.get("epoch", i + 1), r[key]) for i, r in enumerate(rows) if key in r]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        extra: dict[str, Any] = {} if color is None else {"color": color}
        if markers_up_to is not None:
            extra.update(marker="o" if len(xs) <= markers_up_to else None, markersize=3)
        ax.plot(xs, ys, style, label=name, **extra)


def _ticks(epochs: Sequence[int]) -> list[int]:
    """Whole-epoch ticks, at most about 10."""
    lo, hi = min(epochs), max(epochs)
    step = max(1, -(-(hi - lo + 1) // 10))
    return list(range(lo, hi + 1, step))


def plot_confusion(
    matrix: np.ndarray,
    class_names: Sequence[str],
    out_png: str | os.PathLike,
    title: str = "Confusion matrix",
) -> Path:
    """Draw a confusion matrix (rows: actual class, columns: predicted class) with the
    count in each cell; write `out_png` atomically."""
    plt = pyplot()
    m = np.asarray(matrix)
    n = m.shape[0]
    names = [str(c) for c in class_names]
    size = min(4 + 0.45 * n, 30)
    with plt.rc_context(matplotlib_rc()):
        fig, ax = plt.subplots(figsize=(size + 1.5, size))
        try:
            ax.imshow(m, cmap="Blues", vmin=0, vmax=max(int(m.max()) if m.size else 0, 1))
            ax.set_xticks(
                range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center"
            )
            ax.set_yticks(range(n), names)
            ax.set_xlabel("predicted")
            ax.set_ylabel("actual")
            ax.set_title(title)
            if n <= 40:  # numbers stay readable up to about 40 classes
                half = m.max() / 2 if m.size else 0
                for i in range(n):
                    for j in range(n):
                        ax.text(
                            j,
                            i,
                            f"{int(m[i, j])}",
                            ha="center",
                            va="center",
                            color="white" if m[i, j] > half else "black",
                            fontsize=max(6, 12 - n // 5),
                        )
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=100)
        finally:
            plt.close(fig)


MARKERS = "os^Dv<>pP*Xh"  # one marker per cluster (cycled; numbers drawn when they repeat)
LEGEND_ROWS = 8  # a legend longer than this gets more columns
LEGEND_MAX = 40  # class legend entries drawn; more are summed up as "+N more"
LEGEND_NAME = 20  # characters of a class name in the legend


def class_colors(n: int) -> list:
    """`n` distinct colours: tab10 up to 10 classes, tab20 up to 20, then turbo, evenly."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["turbo"](i / (n - 1)) for i in range(n)]


def plot_projection(
    points: np.ndarray,
    classes: Sequence[str],
    clusters: Sequence[int],
    title: str,
    out_png: str | os.PathLike,
) -> Path:
    """Draw (N, 2) `points` as a scatter plot: colour by class (classes sorted), marker by
    cluster, and two legends right of the axes, "class" (colours) and "cluster" (markers),
    one entry per class and per cluster, in columns of LEGEND_ROWS; cluster numbers are
    written at the cluster centres when there are more clusters than markers. The figure
    (4.8 in high, 100 dpi) is widened to hold the legends, whatever the counts. Used by
    `embed --clusters` for its PCA of the vectors."""
    plt = pyplot()
    xy = np.asarray(points, dtype=np.float64)
    names = np.array([str(c) for c in classes], dtype=object)
    cluster_of = np.array([int(c) for c in clusters], dtype=int)
    order = sorted(set(names))
    colors = dict(zip(order, class_colors(len(order)), strict=True))
    groups = sorted(set(cluster_of.tolist()))
    with plt.rc_context(matplotlib_rc()):
        fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
        try:
            ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
            for name in order:
                for c in groups:
                    sel = (names == name) & (cluster_of == c)
                    if sel.any():
                        ax.scatter(
                            xy[sel, 0],
                            xy[sel, 1],
                            color=colors[name],
                            marker=MARKERS[c % len(MARKERS)],
                            s=24,
                            alpha=0.85,
                        )
            if len(groups) > len(MARKERS):  # markers repeat: number each cluster's centre
                box = {"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7}
                for c in groups:
                    centre = xy[cluster_of == c].mean(axis=0)
                    ax.annotate(str(c), centre, ha="center", va="center", size="small", bbox=box)
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
            ax.set_title(title)
            shown = order[:LEGEND_MAX]
            class_handles = [_legend_mark("o", colors[n]) for n in shown]
            class_labels = [_short(n) for n in shown]
            if len(order) > len(shown):
                class_handles.append(_legend_mark("", "white"))
                class_labels.append(f"+{len(order) - len(shown)} more")
            cluster_handles = [_legend_mark(MARKERS[c % len(MARKERS)], "0.35") for c in groups]
            legends = [
                fig.legend(
                    class_handles,
                    class_labels,
                    title="class",
                    loc="upper left",
                    fontsize="small",
                    ncols=_columns(len(class_handles)),
                ),
                fig.legend(
                    cluster_handles,
                    [str(c) for c in groups],
                    title="cluster",
                    loc="upper left",
                    fontsize="small",
                    ncols=_columns(len(groups)),
                ),
            ]
            _place(fig, ax, legends)
            return save_figure(fig, out_png, dpi=100)
        finally:
            plt.close(fig)


def _legend_mark(marker: str, color):
    from matplotlib.lines import Line2D

    return Line2D([], [], marker=marker or None, color=color, linestyle="none", markersize=6)


def _short(name: str) -> str:
    """A long class name cut in the middle: both ends stay, where names tend to differ."""
    if len(name) <= LEGEND_NAME:
        return name
    tail = (LEGEND_NAME - 1) * 2 // 3
    return f"{name[: LEGEND_NAME - 1 - tail]}…{name[-tail:]}"


def _columns(count: int) -> int:
    return max(1, -(-count // LEGEND_ROWS))


def _place(fig, ax, legends, axes_w: float = 4.6, axes_h: float = 3.6) -> None:
    """Lay out in inches, measured rather than guessed (no tight_layout, which gives up
    with a warning when legends are large): the axes at a fixed size with room for their
    labels, the legends stacked in a column right of them, the figure as wide as needed."""
    left, bottom, gap, pad = 0.8, 0.65, 0.2, 0.15
    sizes = [lg.get_window_extent() for lg in legends]  # the backend's own renderer
    dpi = fig.dpi
    widths = [b.width / dpi for b in sizes]
    heights = [b.height / dpi for b in sizes]
    fig_w = left + axes_w + gap + max(widths) + pad
    fig_h = max(bottom + axes_h + 0.45, sum(heights) + gap + 2 * pad)
    fig.set_size_inches(fig_w, fig_h)
    ax.set_position((left / fig_w, bottom / fig_h, axes_w / fig_w, axes_h / fig_h))
    x = (left + axes_w + gap) / fig_w
    top = fig_h - pad - 0.3
    for lg, h in zip(legends, heights, strict=True):
        lg.set_bbox_to_anchor((x, top / fig_h), transform=fig.transFigure)
        top -= h + gap
