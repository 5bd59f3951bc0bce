"""The plots of a regression evaluation (cnncli.inference.evaluate_tasks), one panel per
target, in the table's units: `scatter` (true vs predicted, with the y = x line of a
perfect model) and `residuals` (a histogram of predicted - true, with the zero line)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def draw_plot(kind: str, result: Any, path: str | os.PathLike) -> Path:
    """Write the `kind` plot ('scatter' or 'residuals') of a TaskEvaluation to `path`."""
    from cnncli.drawing.figures import pyplot
    from cnncli.drawing.fonts import matplotlib_rc
    from cnncli.drawing.save import save_figure

    plt = pyplot()
    names = result.names
    cols = min(3, len(names)) or 1
    rows = math.ceil(len(names) / cols) or 1
    with plt.rc_context(matplotlib_rc()):
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4 * rows), squeeze=False)
        try:
            for i, name in enumerate(names):
                ax = axes[i // cols][i % cols]
                t, p = result.y_true[:, i], result.outputs[:, i]
                m = result.targets[i]
                if kind == "scatter":
                    _scatter(ax, t, p, name, m)
                else:
                    _residuals(ax, p - t, name, m)
            for j in range(len(names), rows * cols):
                axes[j // cols][j % cols].axis("off")
            what = "true vs predicted" if kind == "scatter" else "residuals (predicted - true)"
            fig.suptitle(f"{what}: {result.split} ({result.count} images)")
            fig.tight_layout()
            return save_figure(fig, path, dpi=80)
        finally:
            plt.close(fig)


def _scatter(ax, t: np.ndarray, p: np.ndarray, name: str, m) -> None:
    ax.scatter(t, p, s=14, alpha=0.7, color="tab:blue", label="images")
    both = np.concatenate([t, p]) if len(t) else np.array([0.0, 1.0])
    lo, hi = float(both.min()), float(both.max())
    pad = (hi - lo) * 0.05 or 1.0
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.set_title(f"{name}: MAE {m.mae:.4g}, $R^2$ {m.r2:.3f}")
    ax.legend(loc="upper left")


def _residuals(ax, r: np.ndarray, name: str, m) -> None:
    ax.hist(r, bins=min(30, max(5, len(r) // 3)), color="tab:orange", alpha=0.8)
    ax.axvline(0, color="k", ls="--", lw=1)
    ax.set_xlabel(f"predicted - true ({name})")
    ax.set_ylabel("images")
    ax.set_title(f"{name}: RMSE {m.rmse:.4g}")


def plot_projection_values(
    xy: np.ndarray,
    values: np.ndarray,
    clusters: Sequence[int],
    title: str,
    name: str,
    path: str | os.PathLike,
) -> Path:
    """(N, 2) points coloured by a regression target's `values` (viridis, with a colour
    bar), marked by cluster: embed's PCA plot for a regression model."""
    from cnncli.drawing.figures import pyplot
    from cnncli.drawing.fonts import matplotlib_rc
    from cnncli.drawing.plots import MARKERS
    from cnncli.drawing.save import save_figure

    plt = pyplot()
    xy = np.asarray(xy, np.float64)
    values = np.asarray(values, np.float64)
    cluster_of = np.asarray(clusters, int)
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    with plt.rc_context(matplotlib_rc()):
        fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=100)
        try:
            shown = None
            for c in sorted(set(cluster_of.tolist())):
                sel = cluster_of == c
                marker = MARKERS[c % len(MARKERS)]
                shown = ax.scatter(
                    xy[sel, 0],
                    xy[sel, 1],
                    c=values[sel],
                    cmap="viridis",
                    vmin=lo,
                    vmax=hi if hi > lo else lo + 1,
                    s=24,
                    marker=marker,
                    label=f"cluster {c}",
                )
            if shown is not None:
                from matplotlib.lines import Line2D

                fig.colorbar(shown, ax=ax, label=name)
                marks = [
                    Line2D([], [], ls="", marker=MARKERS[c % len(MARKERS)], color="0.35")
                    for c in sorted(set(cluster_of.tolist()))
                ]
                ax.legend(
                    marks,
                    [f"cluster {c}" for c in sorted(set(cluster_of.tolist()))],
                    loc="best",
                    fontsize="small",
                )
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
            ax.set_title(title, fontsize="small")
            return save_figure(fig, path, dpi=100)
        finally:
            plt.close(fig)
