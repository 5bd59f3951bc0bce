"""Issue 28's small ones: history.csv's phase as whole numbers, history.png's learning-rate
line clear of the legend, Grad-CAM naming a regression target "target", and a regression
report page's error list not called a misclassified list."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from test_runs import make_run

from cnncli.drawing import plots
from cnncli.inference.page import write_index
from cnncli.runs.compute import Parts
from cnncli.runs.pages import run_page
from cnncli.runs.record import read_run
from cnncli.training.rundir import read_history, write_history


def test_history_csv_writes_the_phase_as_a_whole_number(tmp_path):
    rows = [
        {"epoch": 1, "loss": 0.5, "phase": 1.0, "learning_rate": 0.001},
        {"epoch": 2, "loss": 0.25, "phase": 2.0, "learning_rate": 1e-05},
    ]
    write_history(tmp_path / "history.csv", rows)
    lines = (tmp_path / "history.csv").read_text(encoding="utf-8").splitlines()
    assert lines == ["epoch,loss,phase,learning_rate", "1,0.5,1,0.001", "2,0.25,2,1e-05"]
    assert [r["phase"] for r in read_history(tmp_path / "history.csv")] == [1.0, 2.0]


@pytest.mark.parametrize("schedule", ["cosine", "step", "warmup", "constant"])
def test_the_learning_rate_line_never_runs_under_a_legend(tmp_path, monkeypatch, schedule):
    rows = ["epoch,accuracy,loss,val_accuracy,val_loss,learning_rate"]
    for e in range(1, 11):
        lr = {
            "cosine": 1e-3 * 0.5 * (1 + math.cos(math.pi * (e - 1) / 10)),
            "step": 1e-3 * 0.1 ** ((e > 5) + (e > 7)),
            "warmup": 1e-3 * min(1, e / 4),
            "constant": 1e-3,
        }[schedule]
        loss = 1.2 - e * 0.09
        rows.append(f"{e},{0.5 + e * 0.04},{loss},{0.5 + e * 0.03},{loss + 0.05},{lr}")
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    seen = []
    save = plots.save_figure

    def capture(fig, path, **kw):
        fig.canvas.draw()
        line = next(
            ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() == "learning rate"
        )
        xy = line.get_xydata()
        dense = np.concatenate(
            [np.linspace(a, b, 50) for a, b in zip(xy[:-1], xy[1:], strict=True)]
        )
        points = line.axes.transData.transform(dense)
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                box = legend.get_window_extent()
                seen.append(sum(box.contains(x, y) for x, y in points))
        return save(fig, path, **kw)

    monkeypatch.setattr(plots, "save_figure", capture)
    plots.plot_history(read_history(tmp_path / "h.csv"), tmp_path / "h.png")
    assert seen and all(n == 0 for n in seen), seen  # warm-up: 163 points under it before


def test_gradcam_of_a_regression_model_names_its_target(tmp_path):
    r = SimpleNamespace(
        task="regression",
        predicted_class="ink 41.5",
        probability=41.5,
        display_scale=1,
        input_size=(8, 8),
        image=tmp_path / "a.png",
        gradcam="gradcam.png",
        gradcam_class="ink",
        gradcam_layer="conv",
        layers=[],
    )
    write_index(tmp_path, r, "as built", None, [41.5], ["ink"])
    text = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Grad-CAM: target ink, layer conv" in text and "class ink" not in text


def test_a_regression_report_lists_its_largest_errors(tmp_path):
    run = read_run(make_run(tmp_path / "reg", task="regression"))
    ev = {"task": "regression", "count": 4, "mae": 0.5, "files": {"errors_csv": "e.csv"}}
    (tmp_path / "page").mkdir()
    run_page(tmp_path / "page", run, Parts(evaluations={"test": ev}), None)
    text = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert '<a href="errors-test.csv">largest errors (CSV)</a>' in text
    assert "misclassified list" not in text
