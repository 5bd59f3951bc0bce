"""plots: history.png (two panels) and confusion.png (Korean names legible)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnncli.drawing import fonts, plots


def _history(path, rows):
    cols = list(rows[0])
    path.write_text(
        ",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in rows),
        encoding="utf-8",
    )


def test_plot_history_writes_a_png_with_two_panels(tmp_path):
    csv = tmp_path / "history.csv"
    _history(
        csv,
        [
            {"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 20, "val_loss": 1.2 / e,
             "val_accuracy": 0.45 + e / 20}
            for e in range(1, 6)
        ],
    )  # fmt: skip
    out = plots.plot_history(csv, tmp_path / "history.png")
    assert out == tmp_path / "history.png"
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (800, 320)  # 10x4 inches at 80 dpi
    assert {p.name for p in tmp_path.iterdir()} == {"history.csv", "history.png"}  # no temp left


def test_plot_history_without_validation_columns(tmp_path):
    csv = tmp_path / "history.csv"
    _history(csv, [{"epoch": 1, "loss": 0.9, "accuracy": 0.5}])
    out = plots.plot_history(csv, tmp_path / "h.png")
    assert out.stat().st_size > 0


def test_read_history_skips_empty_cells(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss,val_loss\n1,0.5,\n2,0.25,0.3\n", encoding="utf-8")
    assert plots.read_history(csv) == [
        {"epoch": 1, "loss": 0.5},
        {"epoch": 2, "loss": 0.25, "val_loss": 0.3},
    ]


def test_confusion_png_draws_korean_names_with_the_bundled_font(tmp_path, recwarn):
    family = fonts.matplotlib_family()
    assert family is not None  # cnncli/fonts holds a Hangul font
    out = plots.plot_confusion(np.array([[3, 1], [0, 4]]), ["벽돌", "대리석"], tmp_path / "c.png")
    with Image.open(out) as img:
        assert img.format == "PNG"
    missing = [w for w in recwarn if "missing from font" in str(w.message).lower()]
    assert missing == []  # matplotlib warns "Glyph ... missing from font(s)" otherwise
