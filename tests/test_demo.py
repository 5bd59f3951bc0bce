"""`cnncli demo`: the newcomer's path, end to end on the bundled sample data."""

import csv
import json
import re
import time

import pytest
from typer.testing import CliRunner

from cnncli.demo.run import MARKER, STEPS, run_demo, sample_data_dir

pytestmark = pytest.mark.slow  # whole runs of cnncli: the slow suite (.ci/run runs it)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One real demo run (as typed, from a working folder), shared by the tests below."""
    from cnncli.cli.main import app

    work = tmp_path_factory.mktemp("work")
    runner = CliRunner()
    import os

    cwd = os.getcwd()
    os.chdir(work)
    try:
        started = time.perf_counter()
        result = runner.invoke(app, ["demo"], catch_exceptions=False)
        result.measured = time.perf_counter() - started
        as_json = runner.invoke(
            app, ["demo", "-o", "again", "--epochs", "1", "--json"], catch_exceptions=False
        )
    finally:
        os.chdir(cwd)
    return work, result, as_json


def test_demo_writes_every_step(demo):
    work, result, _ = demo
    assert result.exit_code == 0, result.stderr
    out = work / "cnncli-demo"
    # only the demo folder (and the second run's) appear in the working folder
    assert sorted(p.name for p in work.iterdir()) == ["again", "cnncli-demo"]
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    assert marker["status"] == "finished" and marker["written_by"] == "cnncli demo"

    manifest = json.loads((out / "dataset" / "manifest.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in manifest["classes"]] == ["벽돌", "대리석"]
    assert manifest["splits"]["train"]["count"] + manifest["splits"]["val"]["count"] == 40

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["total_params"] == 7636  # the course's façade model
    assert summary["input_shape"] == [None, 500, 500, 4]

    with open(out / "run" / "history.csv", encoding="utf-8") as f:
        history = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in history] == list(range(1, 11))
    assert float(history[-1]["loss"]) < float(history[0]["loss"])  # it learned something
    assert (out / "run" / "best.keras").is_file() and (out / "run" / "history.png").is_file()
    assert any((out / "run" / "checkpoints").glob("save-*.keras"))

    metrics = marker["result"]["metrics"]
    assert metrics["evaluate"]["images"] == 8
    assert metrics["evaluate"]["accuracy"] >= 0.75  # two textures the façade model separates
    for name in ("confusion.png", "errors.png", "errors.csv"):
        assert (out / "evaluate" / name).is_file()
    from PIL import Image

    with Image.open(out / "evaluate" / "errors.png") as sheet:  # never an empty sheet: the
        assert sheet.height > 200  # misclassified, else the least certain correct images
    assert (out / "filters" / "gallery.png").stat().st_size > 10_000

    index = (out / "activations" / "index.html").read_text(encoding="utf-8")
    pngs = sorted(p.name for p in (out / "activations").glob("[0-9][0-9]_*.png"))
    assert len(pngs) >= 14 and all(name in index for name in pngs)
    assert (out / "activations" / "13_flatten.csv").is_file()  # the course's 25 values

    with open(out / "embed" / "vectors.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40
    values = [k for k in rows[0] if re.fullmatch(r"v\d+", k)]
    assert len(values) == 25
    assert {r["cluster"] for r in rows} == {"0", "1"}
    assert len(list((out / "embed" / "vectors_clusters").glob("cluster*.png"))) == 2


def test_demo_reports_steps_and_table(demo):
    _, result, as_json = demo
    # the time it says it took is the time it took (the README states a range: 1-2 minutes)
    said = float(re.search(r"cnncli demo wrote cnncli-demo in (\d+) s", result.stdout)[1])
    assert abs(said - result.measured) <= 3, (said, result.measured)
    print(f"demo: {result.measured:.1f} s")
    for i, _step in enumerate(STEPS, 1):
        assert f"[{i}/{len(STEPS)}]" in result.stderr
    assert "epoch 10/10" in result.stderr
    assert "cnncli demo wrote cnncli-demo" in result.stdout
    assert "Total params: 7,636" in result.stdout
    assert as_json.exit_code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [o["step"] for o in data["outputs"]][0] == "dataset"
    assert {o["step"] for o in data["outputs"]} == set(STEPS)
    assert data["metrics"]["embed"]["values"] == 25
    assert data["metrics"]["train"]["best_epoch"] == 1  # --epochs 1


def test_rerun_replaces_its_own_output_only(tmp_path):
    out = tmp_path / "demo"  # an earlier demo's output (its marker is what the demo checks)
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"written_by": "cnncli demo", "status": "finished"}))
    (out / "stray.txt").write_text("from the first run")
    beside = tmp_path / "keep.txt"
    beside.write_text("not the demo's")
    result = run_demo(out, epochs=1)
    assert not (out / "stray.txt").exists()  # the earlier output was replaced as a whole
    assert beside.read_text() == "not the demo's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "keep.txt"]  # no leftovers
    assert result.metrics["train"]["best_epoch"] == 1


def test_refuses_a_folder_it_did_not_write(tmp_path, cli):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "mine.png").write_bytes(b"x")
    result = cli("demo", "-o", str(foreign))
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: {foreign} is not a cnncli demo folder (no .cnncli-demo.json), so cnncli demo "
        "will not replace it: choose another folder with -o DIR"
    ], result.stderr
    assert (foreign / "mine.png").read_bytes() == b"x"


def test_a_failed_run_puts_the_earlier_output_back(tmp_path, monkeypatch):
    import cnncli.demo.run as demo_module

    out = tmp_path / "demo"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"written_by": "cnncli demo", "status": "finished"}))
    (out / "earlier.txt").write_text("earlier run")

    def broken(folder, *args):
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "_steps", broken)
    with pytest.raises(KeyboardInterrupt):
        run_demo(out)
    assert (out / "earlier.txt").read_text() == "earlier run"
    assert not (out / "half.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_sample_data_is_found():
    folder = sample_data_dir()
    assert (folder / "facade" / "labels.csv").is_file()
    assert len(list((folder / "facade").glob("*.png"))) == 40


def test_ctrl_c_in_training_is_a_plain_interrupt(tmp_path, monkeypatch):
    """train's own hint ("--resume RUN_DIR") would name a folder the demo has removed."""
    import cnncli.demo.run as demo_module
    from cnncli.training.events import TrainingInterrupted

    def interrupted(folder, *args):
        raise TrainingInterrupted("training interrupted", f"cnncli train --resume {folder}/run")

    monkeypatch.setattr(demo_module, "_steps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "demo")
    assert not (tmp_path / "demo").exists()
