"""`cnncli report` (cnncli.runs.report, compute, pages, charts): one run's page with what was
computed (model summary, evaluation on val and test, activations and Grad-CAM), a comparison
of several runs, reuse without computing, bad input, and the pages in headless Chromium
(nothing fails to load, every picture has a size, Korean drawn by the embedded font, no
page wider than a phone)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from cnncli.runs.report import write_report
from cnncli.runs.table import list_runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    """A two-epoch run of the tiny architecture on 8x8 images of two Korean classes."""
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    root = tmp_path_factory.mktemp("report")
    ds = tiny.build(tiny.make_images(root / "images", tiny.FACADE), root / "ds")
    train(ds, root / "runs" / "train", arch="tiny", options=TrainOptions(epochs=2, batch_size=8))
    return root / "runs" / "train"


@pytest.fixture(scope="module")
def reported(trained):
    return trained, write_report([trained])


def test_one_run_page_shows_what_was_trained_and_how_it_did(reported):
    run, result = reported
    page = run / "report" / "index.html"
    assert result.page == page and result.missing == []
    text = page.read_text(encoding="utf-8")
    for part in (
        "What was trained on what",
        "MACs per image",
        "Learning curves",
        "Evaluation",
        "Activations and Grad-CAM",
        "대리석",
        "벽돌",
        'href="history.csv"',
    ):
        assert part in text, part
    for name in (
        "curves.png",
        "confusion-val.png",
        "errors-test.png",
        "errors-val.csv",
        "run.json",
        "history.csv",
        "activations/val-1/index.html",
        "activations/val-1/gradcam.png",
    ):
        assert (run / "report" / name).is_file(), name
    test = json.loads((run / "report" / "evaluation-test.json").read_text(encoding="utf-8"))
    assert test["split"] == "test" and test["count"] == 4 and 0 <= test["accuracy"] <= 1
    row = list_runs([run.parent]).runs[0]  # `cnncli runs` now has the test metrics
    assert row.test["test_accuracy"] == test["accuracy"]


def test_an_existing_report_is_refused_then_replaced_reusing_its_parts(cli, reported, tmp_path):
    run, _ = reported
    again = cli("report", run)
    assert again.exit_code == 2 and "report already exists" in again.stderr
    redo = cli("report", run, "--no-compute", "--overwrite", "--json")
    assert redo.exit_code == 0, redo.stderr
    assert json.loads(redo.stdout)["missing"] == []  # the evaluation of the first report kept
    assert (run / "report" / "confusion-val.png").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep", encoding="utf-8")
    other = cli("report", run, "-o", tmp_path / "mine", "--overwrite")
    assert other.exit_code == 2 and "is not a cnncli report" in other.stderr
    assert (tmp_path / "mine" / "notes.txt").is_file()


def _variant(run, dest, task=None, history=None, **options):
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("report"))
    record = json.loads((dest / "run.json").read_text(encoding="utf-8"))
    record["options"].update(options)
    if task:
        record["task"] = task
    (dest / "run.json").write_text(json.dumps(record), encoding="utf-8")
    if history:
        (dest / "history.csv").write_text(history, encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def compared(reported, tmp_path_factory):
    run, _ = reported
    other = tmp_path_factory.mktemp("others")
    reg = _variant(
        run,
        other / "reg",
        task="regression",
        batch_size=4,
        history="epoch,loss,mae,val_loss,val_mae\n1,1.0,0.9,1.1,0.8\n2,0.8,0.7,0.9,0.6\n",
    )
    out = other / "cmp"
    return out, write_report([run, reg], out, compute=False)


def test_several_runs_overlaid_with_the_options_that_differ(compared):
    out, result = compared
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "Comparison of 2 runs" in text and "options that differ: batch_size" in text
    for name in ("train", "reg"):
        assert f'<a href="runs/{name}/index.html">{name}</a>' in text
        assert (out / "runs" / name / "index.html").is_file()
    assert (out / "curves.png").is_file() and (out / "final.png").is_file()
    assert (out / "runs" / "train" / "confusion-val.png").is_file()  # the run's own, reused
    assert any("model summary" in m for m in result.missing if m.startswith("reg:"))
    assert "the runs have different tasks: each shows its own metrics" in result.notes
    assert "val_mae" in text and "val_accuracy" in text


def test_bad_runs_are_one_line_each(cli, trained, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("report", tmp_path / "empty")
    assert r.exit_code == 2 and "is not a cnncli run folder (no run.json)" in r.stderr
    newer = _variant(trained, tmp_path / "newer")
    record = json.loads((newer / "run.json").read_text(encoding="utf-8"))
    (newer / "run.json").write_text(json.dumps({**record, "format_version": 9}), encoding="utf-8")
    r = cli("report", newer)
    assert r.exit_code == 2 and "format_version 9, newer than this cnncli reads" in r.stderr
    moved = _variant(trained, tmp_path / "moved")
    record = json.loads((moved / "run.json").read_text(encoding="utf-8"))
    record["dataset"]["path"] = str(tmp_path / "gone")
    (moved / "run.json").write_text(json.dumps(record), encoding="utf-8")
    r = cli("report", moved)
    assert r.exit_code == 0, r.stderr
    assert f"the dataset {tmp_path / 'gone'} is not there: cnncli evaluate" in r.stderr
    assert "MACs per image" in (moved / "report" / "index.html").read_text(encoding="utf-8")
    assert "Traceback" not in r.output


def test_pages_in_a_browser(open_page, reported, compared):
    run, _ = reported
    out, _ = compared
    for page, width in ((run / "report" / "index.html", 390), (out / "index.html", 1280)):
        seen = open_page(page, width)
        assert seen["errors"] == [], seen["errors"]
        assert seen["images"] and all(w > 0 for _, w in seen["images"]), seen["images"]
        assert all(u.startswith(("file:", "data:")) for u in seen["resources"])  # no network
        assert ["CnncliGothic", "loaded"] in seen["fonts"]
        assert seen["overflow"] is False  # wide tables scroll in their box, even on a phone
        if "대" in seen["hangul"]:
            assert seen["hangul_drawn"] is True
        assert not re.search(r'(src|href)="(https?:|//|/)', page.read_text(encoding="utf-8"))
    text = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert "@media print" in text and 'name="viewport"' in text


def test_activations_are_titled_by_the_images_own_file_names(reported):
    """Issue 28: "test-1.png" (the report's own copy) was the title, not the image's name."""
    run, _ = reported
    text = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert "val-1.png: predicted" not in text
    assert len(re.findall(r"<h3>\d+\.png: predicted", text)) == 2
