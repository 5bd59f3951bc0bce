"""Figures drawn with matplotlib, headless, in the bundled Hangul font, saved atomically.

Every figure cnncli draws is made here, through `pyplot()` (the one place matplotlib is set
up) inside `plt.rc_context(matplotlib_rc())` (the one font registration), and written by
`drawing.save.save_figure`.

- `plot_history(history_csv, out_png)`: training vs validation accuracy and loss in two
  panels, as the course draws them ('bo' training points, a 'b' validation line).
- `plot_confusion(matrix, class_names, out_png)`: the confusion matrix as a heat map with
  counts in the cells; Korean class names are drawn with the bundled Hangul font.
- `plot_projection(points, classes, clusters, title, out_png)`: 2-D points (embed's PCA)
  coloured by class, marked by cluster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnncli.drawing.fonts import matplotlib_rc
from cnncli.drawing.save import save_figure
from cnncli.training.rundir import read_history  # history.csv's one reader


def pyplot():
    """matplotlib.pyplot, headless: the Agg backend (no display needed) unless the host
    program already chose one (matplotlib.use, MPLBACKEND such as Jupyter's inline backend,
    or pyplot imported), which is left as it is. Draw inside
    `plt.rc_context(matplotlib_rc())` so text uses the bundled Hangul font without changing
    the settings of a host program, and close each figure."""
    import matplotlib

    if not _backend_chosen():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _backend_chosen() -> bool:
    """Whether this process already picked a matplotlib backend (or imported pyplot, which
    picks one when it draws). `matplotlib.use(..., force=False)` is no such test: it still
    switches the backend whenever the new one can be loaded."""
    import matplotlib

    if "matplotlib.pyplot" in sys.modules:
        return True
    # None while the backend is still "auto" (no matplotlib.use, no MPLBACKEND, no rc file)
    chosen = getattr(matplotlib.rcParams, "_get_backend_or_none", lambda: None)()
    return chosen is not None


def plot_history(history_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Draw history.csv (columns epoch, loss, accuracy, val_loss, val_accuracy, ...) as two
    panels, accuracy and loss, training vs validation; write `out_png` atomically."""
    plt = pyplot()
    rows = read_history(history_csv)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    with plt.rc_context(matplotlib_rc()):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        try:
            for ax, metric, title in (
                (axes[0], "accuracy", "Training and validation accuracy"),
                (axes[1], "loss", "Training and validation loss"),
            ):
                for key, label, style in (
                    (metric, "Training", "bo"),
                    (f"val_{metric}", "Validation", "b"),
                ):
                    pts = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
                    if pts:
                        xs, ys = zip(*pts, strict=True)
                        ax.plot(xs, ys, style, label=f"{label} {metric}")
                ax.set_title(title)
                ax.set_xlabel("epoch")
                ax.set_ylabel(metric)
                if epochs:
                    ax.set_xticks(_ticks(epochs))
                if ax.get_legend_handles_labels()[0]:
                    ax.legend()
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=80)
        finally:
            plt.close(fig)


def _ticks(epochs: Sequence[int]) -> list[int]:
    """Whole-epoch ticks, at most about 10."""
    lo, hi = min(epochs), max(epochs)
    step = max(1, -(-(hi - lo + 1) // 10))
    return list(range(lo, hi + 1, step))


def plot_confusion(
    matrix,
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
                            j, i, f"{int(m[i, j])}", ha="center", va="center",
                            color="white" if m[i, j] > half else "black",
                            fontsize=max(6, 12 - n // 5),
                        )  # fmt: skip
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=100)
        finally:
            plt.close(fig)


MARKERS = "os^Dv<>pP*Xh"  # one marker per cluster (cycled), one tab10 colour per class


def plot_projection(
    points,
    classes: Sequence[str],
    clusters: Sequence[int],
    title: str,
    out_png: str | os.PathLike,
) -> Path:
    """Draw (N, 2) `points` as a scatter plot: colour by class (tab10, classes sorted),
    marker by cluster, one legend entry per (class, cluster) present; write `out_png`
    (640x480) atomically. Used by `embed --clusters` for its PCA of the vectors."""
    plt = pyplot()
    xy = np.asarray(points, dtype=np.float64)
    names = [str(c) for c in classes]
    cluster_of = [int(c) for c in clusters]
    with plt.rc_context(matplotlib_rc()):
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        try:
            for ci, name in enumerate(sorted(set(names))):
                idx = [i for i, c in enumerate(names) if c == name]
                for c in sorted({cluster_of[i] for i in idx}):
                    sel = [i for i in idx if cluster_of[i] == c]
                    ax.scatter(
                        xy[sel, 0], xy[sel, 1], color=plt.cm.tab10(ci % 10),
                        marker=MARKERS[c % len(MARKERS)], label=f"{name} · cluster {c}",
                    )  # fmt: skip
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
            ax.set_title(title)
            ax.legend(fontsize="small", loc="best")
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=100)
        finally:
            plt.close(fig)
