"""`cnncli runs` (cnncli.runs.find, record, table): one row per run folder read from run.json
and history.csv only, sorted by the monitored metric, the options that differ, statuses
(finished, interrupted, running with a live pid, failed), bad folders skipped and named,
and no TensorFlow."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from cnncli.claims import HOST, lock_path
from cnncli.errors import InputError, UsageError
from cnncli.runs.record import read_run
from cnncli.runs.table import list_runs
from cnncli.training.rundir import read_complete_history

HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"


def make_run(folder, val_losses=(0.7, 0.6), options=None, history=None, **run):
    """A run folder as cnncli train writes it (docs/FORMAT.md), without models."""
    folder.mkdir(parents=True)
    rows = history or HEADER + "".join(
        f"{i + 1},{0.5 + 0.1 * i},{v + 0.05},{0.5 + 0.05 * i},{v}\n"
        for i, v in enumerate(val_losses)
    )
    (folder / "history.csv").write_text(rows, encoding="utf-8")
    best = min(range(len(val_losses)), key=lambda i: val_losses[i]) + 1
    record = {
        "format": "cnncli-run",
        "format_version": 1,
        "command": "train",
        "status": "finished",
        "started": "2026-12-01T10:00:00Z",
        "dataset": {
            "path": "/data/facade",
            "sha256": "ab" * 32,
            "class_names": ["대리석", "벽돌"],
            "image": {"height": 8, "width": 8, "channels": 3},
            "counts": {"train": 8},
        },
        "model": {"source": {"kind": "arch", "value": "tiny"}, "name": "tiny", "params": 417},
        "options": {
            "epochs": 2,
            "batch_size": 8,
            "lr": None,
            "monitor": "val_loss",
            "augment": None,
            **(options or {}),
        },
        "epoch_seconds": [3.0, 0.5, 0.7][: len(val_losses)],
        "epochs_finished": len(val_losses),
        "best": {"epoch": best, "monitor": "val_loss", "value": val_losses[best - 1]},
        **run,
    }
    (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    make_run(root / "train", (0.7, 0.6))
    make_run(root / "train2", (0.5, 0.4), options={"batch_size": 4, "lr": 0.01})
    make_run(
        root / "train3",
        (0.8, 0.9),
        options={"augment": {"flip": "horizontal"}},
        status="early-stopped",
    )
    (root / "notes").mkdir()
    return root


def test_rows_sorted_by_the_monitored_metric_with_the_changed_options(runs_dir):
    t = list_runs([runs_dir], only_changed=True)
    assert [r.name for r in t.runs] == ["train2", "train", "train3"]  # val_loss, lowest first
    assert t.sort == "val_loss"
    assert t.changed == ["batch_size", "lr", "augment", "augment.flip"]
    rows = {row[0]: dict(zip(t.columns(), row, strict=True)) for row in t.rows()}
    assert rows["train2"]["batch_size"] == "4" and rows["train2"]["lr"] == "0.01"
    assert rows["train"]["epochs"] == "2/2" and rows["train"]["best"] == "val_loss 0.6 @2"
    assert rows["train"]["val_loss"] == 0.6 and rows["train"]["params"] == 417
    assert rows["train"]["s/epoch"] == 0.5  # the epochs after the first
    assert rows["train3"]["status"] == "finished (early stop)"
    assert rows["train3"]["best"] == "val_loss 0.8 @1"
    assert [(s.path.name, s.reason) for s in t.skipped] == [
        ("notes", "not a run folder (no run.json)")
    ]


def test_sort_by_another_metric_and_unknown_names(runs_dir):
    t = list_runs([runs_dir], sort="val_accuracy")  # higher first, at the best epoch
    assert [(r.name, r.metric("val_accuracy")) for r in t.runs][-1] == ("train3", 0.5)
    assert [r.name for r in list_runs([runs_dir], sort="loss").runs] == [
        "train2",
        "train",
        "train3",
    ]
    with pytest.raises(UsageError, match=r"cannot sort by 'val_f1': no run has it.*val_accuracy"):
        list_runs([runs_dir], sort="val_f1")
    assert [r.name for r in list_runs([runs_dir], sort="name").runs] == [
        "train",
        "train2",
        "train3",
    ]


def test_history_cut_short_uses_the_complete_rows_and_says_interrupted(tmp_path):
    text = HEADER + "1,0.5,0.75,0.5,0.7\n2,0.6,0.65,0.55,0.6\n3,0.7,0.5"  # killed mid-row
    run = make_run(tmp_path / "cut", (0.7, 0.6, 0.5), history=text)
    rows, left_out = read_complete_history(run / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and left_out == 1
    r = read_run(run)
    assert r.status == "interrupted" and r.epochs_done == 2
    assert r.best_epoch == 2 and r.best_value == 0.6  # run.json's best (3) is not in the rows
    assert any("cut short: 2 complete epoch(s) used" in n for n in r.notes)
    bad = HEADER + "1,0.5,0.75,0.5,0.7\n2,0.6,x,0.55,0.6\n"
    assert read_complete_history(_write(tmp_path / "h.csv", bad)) == (
        [{"epoch": 1, "accuracy": 0.5, "loss": 0.75, "val_accuracy": 0.5, "val_loss": 0.7}],
        1,
    )


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_running_needs_a_live_process(tmp_path):
    live = make_run(tmp_path / "live", status="running")
    info = {"command": "cnncli train", "pid": os.getpid(), "host": HOST, "since": "now"}
    lock_path(live).write_text(json.dumps(info), encoding="utf-8")
    r = read_run(live)
    assert (r.status, r.pid) == ("running", os.getpid())
    dead = make_run(tmp_path / "dead", status="running")
    lock_path(dead).write_text(json.dumps({**info, "pid": 2**22 + 12345}), encoding="utf-8")
    r = read_run(dead)
    assert r.status == "interrupted" and "cnncli train --resume" in r.notes[0]
    failed = read_run(
        make_run(tmp_path / "failed", status="failed", failed_by="disk full", error="no space")
    )
    assert failed.status == "failed" and failed.notes == ["failed: disk full"]


def test_newer_format_and_damaged_run_json_are_skipped_and_named(tmp_path):
    make_run(tmp_path / "ok")
    make_run(tmp_path / "newer", format_version=2)
    (make_run(tmp_path / "broken") / "run.json").write_text("{not json", encoding="utf-8")
    t = list_runs([tmp_path])
    assert [r.name for r in t.runs] == ["ok"]
    reasons = {s.path.name: s.reason for s in t.skipped}
    assert "format_version 2, newer than this cnncli reads (1): upgrade cnncli" in reasons["newer"]
    assert "is not valid JSON" in reasons["broken"]
    with pytest.raises(InputError, match="no runs/ folder here"):
        list_runs([])  # the default runs/ of the current folder, which has none


def test_any_task_and_its_metric_names(tmp_path):
    """A run.json "task" and history columns of another task (regression: mae): shown as
    they are, and sorted lower-first like a loss."""
    hist = "epoch,loss,mae,val_loss,val_mae\n1,1.0,0.9,1.1,0.8\n2,0.8,0.7,0.9,0.6\n"
    make_run(tmp_path / "reg", (1.1, 0.9), history=hist, task="regression")
    make_run(
        tmp_path / "reg2", (1.0, 0.95), history=hist.replace("0.6\n", "0.3\n"), task="regression"
    )
    make_run(tmp_path / "cls")
    t = list_runs([tmp_path], sort="val_mae")
    assert [r.name for r in t.runs] == ["reg2", "reg", "cls"]  # cls has no val_mae: last
    assert {r.name: r.task for r in t.runs} == {
        "reg2": "regression",
        "reg": "regression",
        "cls": "classify",
    }
    assert {"mae", "val_mae", "accuracy", "val_accuracy"} <= set(t.columns())
    assert "task" in t.display()[1]  # shown when the tasks differ


def test_test_metrics_come_from_the_reports_evaluation(runs_dir):
    report = runs_dir / "train" / "report"
    report.mkdir()
    (report / "evaluation-test.json").write_text(
        json.dumps({"split": "test", "count": 6, "loss": 0.66, "accuracy": 0.5}), encoding="utf-8"
    )
    t = list_runs([runs_dir], sort="test_accuracy")
    assert t.runs[0].name == "train" and t.runs[0].test == {"test_loss": 0.66, "test_accuracy": 0.5}
    assert "test_accuracy" in t.columns()


def test_cli_table_json_and_csv(cli, runs_dir, monkeypatch):
    import cnncli.cli.console as console

    piped = cli("runs", runs_dir)  # not a terminal: plain tab-separated lines, grep-able
    lines = piped.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["path", "name", "status"] and "│" not in piped.stdout
    assert [line.split("\t")[1] for line in lines[1:]] == ["train2", "train", "train3"]
    monkeypatch.setattr(console, "stdout_is_terminal", lambda: True)
    r = cli("runs", runs_dir)
    assert r.exit_code == 0, r.stderr
    assert "3 run(s), task classify, sorted by val_loss" in r.stdout and "train2" in r.stdout
    assert f"skipped {runs_dir / 'notes'}: not a run folder (no run.json)" in r.stderr
    assert "1 folder(s) skipped" in r.stderr
    data = json.loads(cli("runs", runs_dir, "--json", "--only-changed").stdout)
    assert [d["name"] for d in data["runs"]] == ["train2", "train", "train3"]
    assert data["runs"][0]["changed"]["batch_size"] == 4 and data["skipped"][0]["reason"]
    rows = list(csv.DictReader(io.StringIO(cli("runs", runs_dir, "--csv").stdout)))
    assert [row["name"] for row in rows] == ["train2", "train", "train3"]
    assert float(rows[0]["val_loss"]) == 0.4 and rows[0]["best_epoch"] == "2"
    both = cli("runs", runs_dir, "--json", "--csv")
    assert both.exit_code == 2 and "--json and --csv are exclusive" in both.stderr
    gone = cli("runs", runs_dir / "nope")
    assert gone.exit_code == 2 and "nope not found" in gone.stderr
    assert "Traceback" not in gone.output


def test_runs_and_a_report_without_computing_import_no_tensorflow(fresh_cli, runs_dir, repo):
    cases = [
        ["runs", runs_dir],
        ["runs", runs_dir, "--csv", "--only-changed"],
        ["report", runs_dir / "train", "--no-compute"],
    ]
    results, heavy = fresh_cli(cases, cwd=repo)  # this tree, not an installed copy
    assert [code for code, _ in results] == [0, 0, 0], results
    assert "missing: model summary, evaluation and activations: no best.keras" in results[2][1]
    assert heavy == []
    assert (runs_dir / "train" / "report" / "index.html").is_file()


def test_a_hundred_runs_in_well_under_a_second(tmp_path):
    for i in range(100):
        make_run(tmp_path / f"r{i:03d}", (0.9 - i / 1000, 0.8 - i / 1000))
    code = (
        "import time,sys;from cnncli.runs.table import list_runs;t=time.perf_counter();"
        f"n=len(list_runs([{str(tmp_path)!r}]).runs);print(n, time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, seconds = out.stdout.split()
    assert int(n) == 100 and float(seconds) < 1.0  # about 0.02 s; the machine is shared


def test_a_narrow_terminal_keeps_the_telling_columns(runs_dir):
    t = list_runs([runs_dir], only_changed=True)
    title, columns, rows = t.display(width=80)
    assert columns[:3] == ["name", "status", "best val_loss"] and "val_loss" in columns
    assert "started" not in columns and "more columns with --json or --csv" in title
    assert len(rows[0]) == len(columns)
    wide = t.display(width=1000)[1]
    assert {"model", "dataset", "params", "batch_size", "augment.flip"} <= set(wide)
