"""The study page (STUDY/index.html) in headless Chromium: it loads without errors, its
charts are found and drawn (relative links), every trial links to its run folder, and it
reads at a phone's width. Made from a TuneResult (no training); Chromium as in
test_html_pages (skips without it, fails under CI)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnncli.tune.page import best_so_far, write_study_page
from cnncli.tune.result import TuneResult, sort_rows, trial_row

PARAMS = [
    {"lr": 0.001, "batch-size": 16},
    {"lr": 0.01, "batch-size": 32},
    {"lr": 0.0003, "batch-size": 16},
    {"lr": 0.05, "batch-size": 64},
]
VALUES = [0.71, 0.88, None, 0.80]
STATES = ["complete", "complete", "pruned", "complete"]


@pytest.fixture
def study(tmp_path) -> TuneResult:
    from cnncli.drawing.save import save_png

    (tmp_path / "study.json").write_text("{}")
    rows = []
    for n, (params, value, state) in enumerate(zip(PARAMS, VALUES, STATES, strict=True)):
        run = tmp_path / "trials" / f"{n:04d}"
        run.mkdir(parents=True)
        (run / "run.json").write_text("{}")
        import numpy as np

        save_png(np.full((8, 8, 3), 200, "uint8"), run / "history.png")
        attrs = {
            "epochs": 1 if state == "pruned" else 3,
            "seed": 0,
            "command": ["cnncli", "train", "ds", "--lr", str(params["lr"])],
        }
        rows.append(
            trial_row(n, state, value if state == "complete" else 0.4, params, run, 2.5, attrs)
        )
    rows = sort_rows(rows, "maximize")
    return TuneResult(
        study_dir=tmp_path,
        metric="val_accuracy",
        direction="maximize",
        total=4,
        rows=rows,
        best=rows[0],
        counts={"complete": 3, "pruned": 1, "failed": 0},
        seconds=10.0,
        importance={"lr": 0.8, "batch-size": 0.2},
        space=["lr", "batch-size"],
    )


def test_rows_best_first_and_the_best_so_far_line(study):
    assert [r["number"] for r in study.rows] == [1, 3, 0, 2]  # complete by value, then pruned
    assert best_so_far(study.rows, "maximize") == [(0, 0.71), (1, 0.88), (2, 0.88), (3, 0.88)]
    assert best_so_far(study.rows, "minimize") == [(0, 0.71), (1, 0.71), (2, 0.71), (3, 0.71)]


@pytest.mark.slow
def test_study_page_opens_in_a_browser(study, open_page, browser):
    page = write_study_page(study)
    assert page == study.study_dir / "index.html"
    text = page.read_text()
    for n in range(4):
        assert f'href="trials/{n:04d}/"' in text
        assert f'href="trials/{n:04d}/history.png"' in text
    assert "cnncli train ds --lr 0.01" in text  # the best trial's command
    for link in re.findall(r'href="([^"#:]+)"', text):
        assert (study.study_dir / link).exists(), link
    seen = open_page(page)
    assert seen["errors"] == []
    drawn = dict(seen["images"])
    assert set(drawn) == {"trials.png", "params.png", "importance.png"}
    assert all(width > 100 for width in drawn.values()), drawn
    assert open_page(page, width=390)["overflow"] is False  # a phone
    _, screenshot = browser
    px = screenshot(page, (1000, 1400)).astype(int)
    colourful = (px.max(axis=2) - px.min(axis=2)) > 60  # the charts' points and lines
    assert colourful.sum() > 500


def test_study_page_without_two_complete_trials_says_why(study, tmp_path):
    study.importance = {}
    page = write_study_page(study)
    assert "needs two or more complete trials" in page.read_text()
    assert not (Path(study.study_dir) / "importance.png").exists()
