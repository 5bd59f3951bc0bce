"""Learning-rate pictures: the rate of each epoch and the phase change drawn onto
history.png's panels, and the loss-vs-learning-rate curve of `cnncli train --find-lr`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.drawing.figures import pyplot
from cnncli.drawing.fonts import matplotlib_rc
from cnncli.drawing.save import save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LR_COLUMN = "learning_rate"


def mark_schedule(axes: Sequence[Axes], epochs: Sequence[int], rows: Sequence[dict]) -> None:
    """On history.png: the learning rate per epoch (grey, log scale, right axis of the loss
    panel) and a dotted line where fine-tuning starts (history.csv's `phase` turns 2)."""
    pts = [(e, r[LR_COLUMN]) for e, r in zip(epochs, rows, strict=True) if LR_COLUMN in r]
    if pts:
        ax = axes[-1].twinx()
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, color="0.5", linestyle="--", marker=".", label="learning rate")
        if min(ys) > 0:
            ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_ascii_exponent())
        ax.yaxis.set_minor_formatter(_ascii_exponent(minor=True))
        ax.set_ylabel("learning rate", color="0.4")
        # one legend for the panel's lines and the rate, under the panel: the rate's line
        # spans the whole panel, so a legend inside it would sit on the line
        handles, labels = axes[-1].get_legend_handles_labels()
        more, more_labels = ax.get_legend_handles_labels()
        legend = axes[-1].get_legend()
        if legend is not None:
            legend.remove()
        ax.legend(
            handles + more,
            labels + more_labels,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=3,
            fontsize="small",
            frameon=False,
        )
    start = next((e for e, r in zip(epochs, rows, strict=True) if r.get("phase") == 2), None)
    if start is not None:
        for ax in axes:
            ax.axvline(start - 0.5, color="tab:red", linestyle=":", label="fine-tuning starts")
        axes[0].legend()


def plot_lr_sweep(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    suggested: float | None,
    out_png: str | os.PathLike,
) -> Path:
    """The --find-lr curve: loss (raw and smoothed) against the learning rate (log scale),
    the suggested rate marked; written atomically."""
    plt = pyplot()
    with plt.rc_context({**matplotlib_rc(), "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(6, 4))
        try:
            ax.plot(lrs, losses, color="0.75", label="loss")
            ax.plot(lrs, smoothed, "b", label="smoothed loss")
            if suggested is not None:
                ax.axvline(
                    suggested,
                    color="tab:red",
                    linestyle="--",
                    label=f"suggested --lr {suggested:.2g}",
                )
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.set_ylabel("loss")
            ax.set_title("Learning rate sweep")
            ax.legend()
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=80)
        finally:
            plt.close(fig)


def _ascii_exponent(minor: bool = False):
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: "" if minor else f"{v:.0e}".replace("e-0", "e-"))
