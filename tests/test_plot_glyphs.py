"""Text the bundled font draws in plots: the minus sign of every negative tick (matplotlib's
mathtext draws "10^-7" with U+2212 in the first font and has no fallback font), without a
box or a warning, on the --find-lr sweep and on history.png."""

from __future__ import annotations

import logging

from fontTools.ttLib import TTFont

from cnncli.drawing import fonts, lr_plots, plots
from cnncli.training.rundir import read_history


def test_the_bundled_font_has_a_minus_sign():
    (ttf,) = sorted(fonts.FONTS_DIR.glob("*.ttf"))
    assert 0x2212 in TTFont(ttf).getBestCmap()


def test_the_lr_sweep_and_history_draw_minus_signs_without_warnings(tmp_path, caplog):
    lrs = [10 ** (k / 4) for k in range(-28, 1)]
    losses = [2.0 - 0.05 * i for i in range(len(lrs))]
    with caplog.at_level(logging.WARNING):
        lr_plots.plot_lr_sweep(lrs, losses, losses, 1e-3, tmp_path / "lr.png")
        (tmp_path / "history.csv").write_text(
            "epoch,loss,mae,val_loss,val_mae\n1,-1.5,0.9,-1.2,0.8\n2,-2.5,0.7,-2.0,0.6\n",
            encoding="utf-8",
        )  # a loss below zero (a negative log-likelihood): minus signs on the y axis
        plots.plot_history(read_history(tmp_path / "history.csv"), tmp_path / "history.png")
    glyphs = [r.getMessage() for r in caplog.records if "does not have a glyph" in r.getMessage()]
    assert glyphs == []
    assert (tmp_path / "lr.png").stat().st_size > 0
