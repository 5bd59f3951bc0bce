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

from cnncli.atomic import atomic_file
from cnncli.training.rundir import read_history  # history.csv's one reader

FONTS_DIR = Path(__file__).resolve().parent.parent / "fonts"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display; never switch a backend a host set up
    import matplotlib.pyplot as plt

    return plt


_font_family: list[str | None] = []


def font_family() -> str | None:
    """Register the bundled font(s) (cnncli/fonts/*.ttf) with matplotlib once; return the
    family name, or None when no font is bundled."""
    if _font_family:
        return _font_family[0]
    from matplotlib import font_manager

    family = None
    for ttf in sorted(FONTS_DIR.glob("*.ttf")):
        try:
            font_manager.fontManager.addfont(str(ttf))
            family = family or font_manager.FontProperties(fname=str(ttf)).get_name()
        except (OSError, RuntimeError, ValueError):
            continue
    _font_family.append(family)
    return family


def _rc() -> dict:
    family = font_family()
    # the bundled font first (Hangul), DejaVu Sans for what it lacks
    return {"font.family": [family, "DejaVu Sans"]} if family else {}


def _save(fig, out_png, dpi: int) -> Path:
    out_png = Path(out_png)
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out_png


def plot_history(history_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Draw history.csv (columns epoch, loss, accuracy, val_loss, val_accuracy, ...) as two
    panels, accuracy and loss, training vs validation; write `out_png` atomically."""
    plt = _pyplot()
    rows = read_history(history_csv)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    with plt.rc_context(_rc()):
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
            return _save(fig, out_png, dpi=80)
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
    plt = _pyplot()
    m = np.asarray(matrix)
    n = m.shape[0]
    names = [str(c) for c in class_names]
    size = min(4 + 0.45 * n, 30)
    with plt.rc_context(_rc()):
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
            return _save(fig, out_png, dpi=100)
        finally:
            plt.close(fig)
