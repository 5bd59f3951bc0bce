"""plots: history.png, confusion.png and the embed projection: the bundled Hangul font in every
text, and a matplotlib backend chosen by the host left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnncli.drawing import fonts, plots
from cnncli.training.rundir import read_history


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
            {
                "epoch": e,
                "loss": 1 / e,
                "accuracy": 0.5 + e / 20,
                "val_loss": 1.2 / e,
                "val_accuracy": 0.45 + e / 20,
            }
            for e in range(1, 6)
        ],
    )
    out = plots.plot_history(read_history(csv), tmp_path / "history.png")
    assert out == tmp_path / "history.png"
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (800, 320)  # 10x4 inches at 80 dpi
    assert {p.name for p in tmp_path.iterdir()} == {"history.csv", "history.png"}  # no temp left


def test_plot_history_without_validation_columns(tmp_path):
    csv = tmp_path / "history.csv"
    _history(csv, [{"epoch": 1, "loss": 0.9, "accuracy": 0.5}])
    out = plots.plot_history(read_history(csv), tmp_path / "h.png")
    assert out.stat().st_size > 0


def test_read_history_skips_empty_cells(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss,val_loss\n1,0.5,\n2,0.25,0.3\n", encoding="utf-8")
    assert read_history(csv) == [
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


def _text_fonts(monkeypatch) -> list[dict]:
    """Record, for each figure saved by plots, the font file matplotlib picks for each
    piece of text (title, axis labels, tick labels, legend)."""
    from matplotlib import font_manager

    seen: list[dict] = []
    real = plots.save_figure

    def spy(fig, path, dpi=100, overwrite=True):
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontproperties")) if t.get_text()]
        seen.append(
            {t.get_text(): Path(font_manager.findfont(t.get_fontproperties())) for t in texts}
        )
        return real(fig, path, dpi=dpi, overwrite=overwrite)

    monkeypatch.setattr(plots, "save_figure", spy)
    return seen


def test_projection_plot_uses_the_bundled_font(tmp_path, monkeypatch, recwarn):
    seen = _text_fonts(monkeypatch)
    points = np.array([[0.0, 1.0], [1.0, 0.5], [2.0, -1.0], [0.5, 0.2]])
    out = plots.plot_projection(
        points,
        ["벽돌", "대리석", "벽돌", ""],
        [0, 1, 1, 0],
        "flatten: 4 vectors",
        tmp_path / "p.png",
    )
    with Image.open(out) as img:
        assert img.format == "PNG" and img.height == 470 and 640 <= img.width <= 800
    texts = seen[0]
    assert {"벽돌", "대리석", "class", "cluster", "0", "1", "flatten: 4 vectors"} <= set(texts)
    assert {texts[t] for t in texts} == {fonts.FONT_PATH}  # every text, Latin and Hangul
    assert [w for w in recwarn if "missing from font" in str(w.message).lower()] == []


def test_confusion_text_uses_the_bundled_font(tmp_path, monkeypatch):
    seen = _text_fonts(monkeypatch)
    plots.plot_confusion(np.array([[3, 1], [0, 4]]), ["벽돌", "대리석"], tmp_path / "c.png")
    assert seen[0]["대리석"] == seen[0]["Confusion matrix"] == fonts.FONT_PATH


BACKEND_PROBE = """
import sys
import matplotlib
if sys.argv[2] != "auto":
    matplotlib.use(sys.argv[2])
import numpy as np
from cnncli.drawing import plots
plots.plot_confusion(np.eye(2, dtype=int), ["벽돌", "대리석"], sys.argv[1] + "/c.png")
plots.plot_projection(np.eye(2), ["벽돌", "대리석"], [0, 1], "t", sys.argv[1] + "/p.png")
print(matplotlib.get_backend().lower())
"""


@pytest.mark.parametrize("chosen, expected", [("svg", "svg"), ("auto", "agg")])
def test_plots_leave_a_chosen_backend_alone(tmp_path, chosen, expected):
    """A host that chose a backend keeps it; with none chosen the figures are drawn headless
    (Agg). `matplotlib.use("Agg", force=False)` would switch the host's svg to agg."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    run = subprocess.run(
        [sys.executable, "-c", BACKEND_PROBE, str(tmp_path), chosen],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert run.stdout.strip() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "p.png"]


def test_projection_ten_classes_ten_clusters_two_legends_outside_no_warning(tmp_path, monkeypatch):
    """`embed --clusters 10` on ten classes: one legend entry per class and one per cluster
    (not 100 pairs), both outside the axes and inside the figure, and no library warning
    (matplotlib's "Tight layout not applied" reached the terminal)."""
    import warnings

    seen = []
    real = plots.save_figure

    def spy(fig, path, dpi=100, overwrite=True):
        (ax,) = fig.axes
        legends = [
            (
                lg.get_title().get_text(),
                [t.get_text() for t in lg.get_texts()],
                lg.get_window_extent(),
            )
            for lg in fig.legends
        ]
        seen.append((ax.get_tightbbox(), fig.bbox, legends, ax.get_legend()))
        return real(fig, path, dpi=dpi, overwrite=overwrite)

    monkeypatch.setattr(plots, "save_figure", spy)
    rng = np.random.default_rng(0)
    names = ["비행기", "자동차", "새", "고양이", "사슴", "개", "개구리", "말", "배", "트럭"]
    classes = [names[i % 10] for i in range(300)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.plot_projection(
            rng.normal(size=(300, 2)),
            classes,
            rng.integers(0, 10, 300),
            "flatten: 300 vectors of 25 values (PCA)",
            tmp_path / "p.png",
        )
    assert [str(w.message) for w in caught] == []
    axes_box, figure_box, legends, inside = seen[0]
    assert inside is None  # no legend over the points
    counts = [(title, len(labels)) for title, labels, _ in legends]
    assert counts == [("class", 10), ("cluster", 10)]
    assert legends[0][1] == sorted(names) and legends[1][1] == [str(c) for c in range(10)]
    for _, _, box in legends:
        assert box.x0 > axes_box.x1  # right of the axes and their labels
        assert box.x1 <= figure_box.x1 and box.y0 >= 0 and box.y1 <= figure_box.y1
    assert legends[0][2].y0 > legends[1][2].y1  # stacked, not overlapping
