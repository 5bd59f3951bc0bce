"""Figures drawn with matplotlib (Agg backend, no display needed), saved atomically.

- `plot_history(history_csv, out_png)`: training vs validation accuracy and loss in two
  panels, as the course draws them ('bo' training points, a 'b' validation line).
- `plot_confusion(matrix, class_names, out_png)`: the confusion matrix as a heat map with
  counts in the cells; Korean class names are drawn with the bundled Hangul font.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnncli.drawing.fonts import matplotlib_rc
from cnncli.drawing.save import save_figure
from cnncli.training.rundir import read_history  # history.csv's one reader


def pyplot():
    """matplotlib.pyplot, headless (Agg unless the host chose a backend). Draw inside
    `plt.rc_context(matplotlib_rc())` so text uses the bundled Hangul font without changing
    the settings of a host program."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display; never switch a backend a host set up
    import matplotlib.pyplot as plt

    return plt


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
