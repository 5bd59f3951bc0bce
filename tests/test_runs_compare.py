"""Runs of several tasks side by side (`cnncli runs`, `cnncli report A B`): the task as
training stores it, losses of different tasks never ranked or drawn together, the charts
readable on a phone and leading with the page's metric, the constant learning rates of the
compared runs, CSV headers without repeats, and an evaluation kept with the run whoever
computed it. No TensorFlow: the run folders are written as cnncli train writes them."""

from __future__ import annotations

import csv
import io
import json
import os

from PIL import Image
from test_runs import make_run

from cnncli.runs import charts
from cnncli.runs.compute import Parts
from cnncli.runs.report import curve_rows, final_values, keep_evaluations, write_report
from cnncli.runs.table import list_runs

REG_HISTORY = "epoch,loss,mae,val_loss,val_mae\n1,1.0,0.9,0.4,0.8\n2,0.8,0.7,0.3,0.6\n"
ML_HISTORY = "epoch,loss,f1_macro,val_loss,val_f1_macro\n1,0.6,0.5,0.7,0.4\n2,0.5,0.6,0.6,0.5\n"


def mixed_runs(root):
    """A classifier, a regression and a multi-label run, each as training writes run.json:
    the task under "metadata" (a classifier's metadata has none)."""
    make_run(root / "cls", (0.7, 0.5), options={"lr": 0.01})
    make_run(
        root / "reg",
        (0.4, 0.3),
        history=REG_HISTORY,
        metadata={"format_version": 2, "task": "regression", "targets": []},
    )
    make_run(
        root / "ml",
        (0.7, 0.6),
        history=ML_HISTORY,
        options={"optimizer": "sgd"},
        metadata={"format_version": 2, "task": "multilabel"},
    )
    return root


def test_the_task_is_read_where_training_writes_it(cli, tmp_path):
    root = mixed_runs(tmp_path / "runs")
    data = json.loads(cli("runs", root, "--json").stdout)
    tasks = {d["name"]: d["task"] for d in data["runs"]}
    assert tasks == {"cls": "classify", "reg": "regression", "ml": "multilabel"}
    # sorted by val_loss within each task: the regression MSE of 0.3 is not "best" overall
    assert [d["name"] for d in data["runs"]] == ["cls", "ml", "reg"]


def test_a_mixed_comparison_says_so_and_never_overlays_two_tasks_losses(tmp_path):
    root = mixed_runs(tmp_path / "runs")
    out = tmp_path / "cmp"
    result = write_report([root / "cls", root / "reg"], out, compute=False)
    assert "the runs have different tasks: each shows its own metrics" in result.notes
    reg_page = (out / "runs" / "reg" / "index.html").read_text(encoding="utf-8")
    assert "regression" in reg_page
    t = list_runs([root / "cls", root / "reg"])
    panels = charts.curve_metrics([curve_rows(r, mixed=True) for r in t.runs])
    assert panels[:2] == ["loss (classify)", "loss (regression)"] and "loss" not in panels
    bars = final_values(t, mixed=True)
    assert bars["val_loss (classify)"] == [0.5, None]
    assert bars["val_loss (regression)"] == [None, 0.3]


def test_the_bars_lead_with_the_sorted_metric_and_keep_every_test_metric(tmp_path):
    root = mixed_runs(tmp_path / "runs")
    for name, evaluation in (
        ("cls", {"count": 4, "loss": 0.6, "accuracy": 0.75}),
        ("reg", {"count": 4, "loss": 0.5, "mae": 0.4, "mse": 0.5, "rmse": 0.7, "r2": 0.1}),
    ):
        (root / name / "report").mkdir()
        (root / name / "report" / "evaluation-test.json").write_text(json.dumps(evaluation))
    t = list_runs([root / "cls", root / "reg"], sort="val_mae")
    bars = list(final_values(t))
    assert bars[0] == "val_mae"  # the page's sort column first
    assert {"test_accuracy", "test_mae", "test_r2", "test_rmse"} <= set(bars)


def test_charts_are_readable_on_a_phone(tmp_path):
    """Shown 390 px wide, the chart's text is at least 9 px high (it was about 4 px)."""
    root = mixed_runs(tmp_path / "runs")
    out = tmp_path / "cmp"
    write_report([root / "cls", root / "reg", root / "ml"], out, compute=False)
    for name in ("curves.png", "final.png"):
        with Image.open(out / name) as im:
            width = im.width
        text_px = charts.FONT_PT * charts.CHART_DPI / 72 * 390 / width
        assert text_px >= 9, (name, width)


def test_constant_rates_are_charted_beside_the_scheduled_ones(tmp_path):
    root = mixed_runs(tmp_path / "runs")
    sched = "epoch,accuracy,loss,val_accuracy,val_loss,learning_rate\n1,0.5,0.7,0.5,0.6,0.001\n"
    make_run(root / "cos", (0.6,), history=sched, options={"lr_schedule": "cosine"})
    t = list_runs([root / "cls", root / "ml", root / "cos"])
    rates = {
        r.name: [row["learning_rate"] for row in curve_rows(r, False, rates=True)] for r in t.runs
    }
    assert rates == {"cls": [0.01, 0.01], "ml": [0.01, 0.01], "cos": [0.001]}
    assert "learning_rate" in charts.curve_metrics([curve_rows(r, False, True) for r in t.runs])


def test_keras_default_rates_are_keras_own():
    import inspect

    import keras

    from cnncli.training.options import KERAS_DEFAULT_LR, OPTIMIZERS

    for name in OPTIMIZERS:
        cls = type(keras.optimizers.get(name))
        default = inspect.signature(cls.__init__).parameters["learning_rate"].default
        assert KERAS_DEFAULT_LR[name] == default, name


def test_only_changed_csv_repeats_no_header(cli, tmp_path):
    root = tmp_path / "runs"
    make_run(root / "a", options={"epochs": 2, "monitor": "val_loss"})
    make_run(root / "b", options={"epochs": 3, "monitor": "val_accuracy", "batch_size": 4})
    text = cli("runs", root, "--only-changed", "--csv").stdout
    header = next(csv.reader(io.StringIO(text)))
    assert len(header) == len(set(header)), header
    assert {"options.epochs", "options.monitor", "batch_size"} <= set(header)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["name"]: r["options.epochs"] for r in rows} == {"a": "2", "b": "3"}


def test_an_evaluation_is_kept_with_the_run_whoever_computed_it(cli, tmp_path):
    """A comparison report computed the test metrics: `cnncli runs` shows them, until the
    model file they describe changes (a resumed training wrote a new best.keras)."""
    run = make_run(tmp_path / "runs" / "a")
    (run / "best.keras").write_bytes(b"model")
    parts = Parts(
        model="best.keras",
        computed=True,
        evaluations={"test": {"split": "test", "count": 4, "accuracy": 0.75}},
    )
    keep_evaluations(list_runs([run.parent]).runs[0], parts)
    data = json.loads(cli("runs", run.parent, "--json").stdout)
    assert data["runs"][0]["test"] == {"test_accuracy": 0.75}
    assert not (run / "report").exists()  # the run's own report folder is not made
    st = (run / "best.keras").stat()
    os.utime(run / "best.keras", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert json.loads(cli("runs", run.parent, "--json").stdout)["runs"][0]["test"] == {}
