"""`cnncli train` through the CLI: a short run on sample_data, --json-log, the default run
folder, Ctrl-C (SIGINT) and kill -9 in a real process followed by --resume, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cnncli.models.io import read_config

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
TB = ["--tensorboard"] if HAS_TENSORBOARD else []


@pytest.fixture(scope="module")
def facade(tmp_path_factory, sample_data):
    """The course's façade table from sample_data, at 24x24 RGBA."""
    from cnncli.datasets.build import build_dataset

    out = tmp_path_factory.mktemp("facade") / "ds"
    build_dataset(
        sample_data / "facade",
        out,
        labels=sample_data / "facade" / "labels.csv",
        size="24x24",
        val=0.25,
        workers=1,
    )
    return out


def _history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_short_run_on_sample_data_with_json_log(cli, facade, tmp_path):
    run = tmp_path / "run"
    r = cli(
        "train",
        facade,
        "--arch",
        "tiny",
        "-o",
        run,
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--save-every-epoch",
        "--json-log",
        "--augment",
        *TB,
    )
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["epoch"] for d in lines] == [1, 2]
    assert all(
        {"loss", "accuracy", "val_loss", "val_accuracy", "checkpoint"} <= set(d) for d in lines
    )
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == [f"save-{d['epoch']:02d}-{d['val_loss']:.4f}.keras" for d in lines]
    assert [d["checkpoint"] for d in lines] == [f"checkpoints/{c}" for c in ckpts]
    for name in ("best.keras", "last.keras", "history.csv", "history.png", "run.json"):
        assert (run / name).is_file(), name
    assert [int(row["epoch"]) for row in _history(run)] == [1, 2]
    meta = json.loads((run / "run.json").read_text())
    assert meta["metadata"]["class_names"] == ["벽돌", "대리석"]
    assert meta["metadata"]["image"]["channels"] == 4
    assert meta["options"]["augment"] == {
        "rotation": 40.0,
        "shift": 0.1,
        "shear": 0.2,
        "zoom": 0.2,
        "flip": True,
    }
    assert "epoch 2/2" in r.stderr  # the epoch lines go to stderr
    if TB:
        assert any((run / "tensorboard").rglob("events.out.tfevents.*"))

    # the models saved for use leave the augmentation out (the resume state keeps it)
    r = cli("summary", run / "best.keras", "--json")
    assert r.exit_code == 0, r.stderr
    types = [row["type"] for row in json.loads(r.stdout)["layers"]]
    assert types[:2] == ["InputLayer", "Rescaling"] and not any("Random" in t for t in types)
    assert "aug_flip" in json.dumps(read_config(run / "state" / "model.keras"))
    for name in ("last.keras", *(f"checkpoints/{c}" for c in ckpts)):
        assert "RandomFlip" not in json.dumps(read_config(run / name)), name


@pytest.mark.slow
def test_default_run_folder_and_h5_checkpoints(cli, facade, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", facade, "--arch", "tiny", "--epochs", "1", "--batch-size", "16", "--quiet"]
    r = cli(*args, "--checkpoint", "ck/e{epoch}.h5", "--cache", "disk")
    assert r.exit_code == 0, r.stderr
    assert not list((tmp_path / "runs/train").glob("cache-*"))  # the disk cache is removed
    assert (tmp_path / "runs/train/ck/e1.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "runs/train2/run.json").is_file()
    assert "runs/train2" in r.stderr  # --quiet still says where the run went
    r = cli(*args, "-o", "runs/train", "--overwrite")  # a run folder is replaced as a whole
    assert r.exit_code == 0, r.stderr
    assert not (tmp_path / "runs/train/ck").exists()
    assert (tmp_path / "runs/train/checkpoints").is_dir()


def test_bad_input_one_line_each(cli, facade, tmp_path):
    r = cli("train", tmp_path / "missing", "--arch", "tiny", "-o", tmp_path / "r")
    assert r.exit_code == 2  # a named input that is missing: a usage error (cnncli.errors)
    assert r.stderr.strip().splitlines() == [
        f"error: dataset folder {tmp_path / 'missing'} not found: build it with cnncli "
        "dataset build IMAGES_DIR -o DIR"
    ]
    r = cli("train", facade, "--arch", "tiny", "--from", tmp_path / "m.keras", "-o", tmp_path / "r")
    assert r.exit_code == 2 and "at most one of --arch NAME, --spec FILE or --from" in r.stderr
    r = cli("train", facade, "--arch", "facade", "-o", tmp_path / "r")  # needs 500x500 images
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "architecture 'facade'" in r.stderr and "smallest input it takes" in r.stderr
    r = cli("train", facade, "--arch", "tiny", "--optimizer", "adamw", "-o", tmp_path / "r")
    assert r.exit_code == 2 and "unknown optimizer 'adamw': use one of adam" in r.stderr
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep").write_text("x")
    r = cli("train", facade, "--arch", "tiny", "-o", existing)
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"error: {existing} already exists: choose another output or pass --overwrite"
    )
    assert (existing / "keep").read_text() == "x"
    if not HAS_TENSORBOARD:
        r = cli("train", facade, "--arch", "tiny", "--tensorboard", "-o", tmp_path / "r")
        assert r.exit_code == 2 and "--tensorboard needs the tensorboard package" in r.stderr
    r = cli("train", "--resume", existing, "--arch", "tiny")
    assert r.exit_code == 2 and "--resume continues a run" in r.stderr
    r = cli("train", "--resume", existing)
    assert r.exit_code == 2 and "not a cnncli run folder" in r.stderr
    for name in ("r",):
        assert not (tmp_path / name).exists()


def test_mistakes_are_refused_before_tensorflow_loads(facade, tmp_path, fresh_cli):
    """Options, the model source, the dataset, the run folder and the resume state are
    checked first: each mistake is one line, and TensorFlow never loads."""
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep").write_text("x")
    train = ["train", str(facade)]
    cases = [
        (
            [*train, "--arch", "tiny", "-o", str(existing)],
            2,
            f"error: {existing} already exists: choose another output or pass --overwrite",
        ),
        (
            [*train, "--arch", "tiny", "-o", str(existing), "--overwrite"],
            2,
            f"error: {existing} is not a cnncli run folder (no run.json), so --overwrite will not "
            "replace it: choose another output folder",
        ),
        (
            [*train, "--arch", "resnet"],
            2,
            "error: unknown architecture 'resnet': choose one of "
            "facade, mnist, mnist-wide, catsdogs, catsdogs-dropout, lenet5, tiny",
        ),
        (
            [*train, "--spec", str(tmp_path / "no.yaml")],
            2,
            f"error: spec file {tmp_path / 'no.yaml'} not found: give the path of a .yaml or .json "
            "spec",
        ),
        (
            [*train, "--from", str(tmp_path / "no.keras")],
            2,
            f"error: model file {tmp_path / 'no.keras'} not found: give the path of a .keras or "
            ".h5 file",
        ),
        (
            [*train, "--arch", "tiny", "--epochs", "0"],
            2,
            "error: --epochs must be at least 1, got 0",
        ),
        (
            [*train, "--arch", "tiny", "--checkpoint", "c-{val_acc}.keras"],
            2,
            "error: --checkpoint pattern 'c-{val_acc}.keras' cannot be filled (KeyError: "
            "'val_acc'): use {epoch}, {loss}, {accuracy}, {val_loss}, {val_accuracy}",
        ),
        (
            [*train, "--arch", "tiny", "--monitor", "val_acc"],
            2,
            "error: unknown --monitor 'val_acc': use one of loss, accuracy, val_loss, val_accuracy",
        ),
        (
            ["train", "--resume", str(existing)],
            2,
            f"error: {existing} is not a cnncli run folder (no run.json)",
        ),
    ]
    results, heavy = fresh_cli([c[0] for c in cases], cwd=tmp_path)
    for (_, code, message), (exit_code, stderr) in zip(cases, results, strict=True):
        assert (exit_code, stderr) == (code, message)
    assert heavy == []
    assert sorted(p.name for p in existing.iterdir()) == ["keep"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]  # no runs/ folder


def _start(facade, run, epochs=400, extra=()):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnncli",
            "train",
            str(facade),
            "--arch",
            "tiny",
            "-o",
            str(run),
            "--epochs",
            str(epochs),
            "--batch-size",
            "4",
            "--quiet",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def _wait_for_epochs(run, proc, n=1, timeout=90):
    state = run / "state" / "state.json"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if state.is_file():
            try:
                if json.loads(state.read_text())["epoch"] >= n:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no epoch finished in time")


def _check_resumed(cli, run, done):
    r = cli("train", "--resume", run, "--epochs", done + 1, "--quiet")
    assert r.exit_code == 0, r.stderr
    rows = _history(run)
    assert [int(row["epoch"]) for row in rows] == list(range(1, done + 2))
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["epochs_finished"] == done + 1
    assert len(meta["epoch_seconds"]) == done + 1
    assert (run / "history.png").is_file()


@pytest.mark.slow
def test_ctrl_c_then_resume(cli, facade, tmp_path, monkeypatch):
    """A real SIGINT, sent to this process during the second epoch's third batch."""
    from cnncli.training.callbacks import EventsCallback

    original = EventsCallback.on_train_batch_end

    def on_batch_end(self, batch, logs=None):
        original(self, batch, logs)
        if int(self.model.optimizer.iterations.numpy()) == self.steps + 3:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(EventsCallback, "on_train_batch_end", on_batch_end)
    run = tmp_path / "run"
    r = cli("train", facade, "--arch", "tiny", "-o", run, "--epochs", "4", "--batch-size", "4")
    assert r.exit_code == 130, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: training interrupted after 1 finished epoch(s); the state of epoch 1 is saved "
        f"in {run}: continue with: cnncli train --resume {run}"
    )
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert [int(row["epoch"]) for row in _history(run)] == [1]
    monkeypatch.setattr(EventsCallback, "on_train_batch_end", original)
    _check_resumed(cli, run, 1)


@pytest.mark.slow
def test_kill_9_then_resume(cli, facade, tmp_path):
    """kill -9 of a real `cnncli train` process: the last finished epoch resumes."""
    run = tmp_path / "run"
    proc = _start(facade, run)
    _wait_for_epochs(run, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = json.loads((run / "state" / "state.json").read_text())["epoch"]
    assert done >= 1
    _check_resumed(cli, run, done)


@pytest.mark.slow
def test_sigterm_saves_like_ctrl_c_and_h5_checkpoints_go_quietly_to_checkpoints(facade, tmp_path):
    """SIGTERM (kill, timeout, docker stop, a pre-emption) to a real `cnncli train`: the
    finished epochs stay saved, the last line is the resume command, run.json says
    interrupted, exit 143. The course's bare `.h5` pattern writes into checkpoints/, and
    Keras' "HDF5 is legacy" absl warning does not reach the terminal."""
    run = tmp_path / "run"
    pattern = ["--checkpoint", "save-{epoch:02d}-{val_loss:.4f}.h5", "--save-every-epoch"]
    proc = _start(facade, run, extra=pattern)
    _wait_for_epochs(run, proc, n=2)  # epoch 1's checkpoint is written (it follows the commit)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    done = json.loads((run / "state" / "state.json").read_text())["epoch"]
    last = err.strip().splitlines()[-1]
    said = int(last.split("after ")[1].split(" finished")[0])
    assert 1 <= said <= done and last == (
        f"error: training stopped by SIGTERM after {said} finished epoch(s); the state of epoch "
        f"{said} is saved in {run}: continue with: cnncli train --resume {run}"
    )
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["interrupted_by"] == "SIGTERM"
    h5 = sorted((run / "checkpoints").glob("save-*.h5"))
    # the checkpoint derives from the committed state: a stop in between leaves it to resume
    assert len(h5) >= done - 1 and h5[0].read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert not list(run.glob("*.h5"))
    assert "HDF5" not in err and "absl" not in err, err


@pytest.mark.slow
def test_resume_refuses_another_dataset(cli, facade, tmp_path, sample_data):
    from cnncli.datasets.build import build_dataset

    other = tmp_path / "other"
    build_dataset(sample_data / "shapes", other, size="24x24", color="rgba", workers=1)
    run = tmp_path / "run"
    r = cli("train", facade, "--arch", "tiny", "-o", run, "--epochs", "1", "--quiet")
    assert r.exit_code == 0, r.stderr
    before = (run / "history.csv").read_bytes()
    r = cli("train", other, "--resume", run, "--epochs", "2")
    assert r.exit_code == 2
    assert "was trained on another dataset" in r.stderr and len(r.stderr.splitlines()) == 1
    assert (run / "history.csv").read_bytes() == before


def test_summary_shows_the_metrics_at_the_best_epoch(capsys, monkeypatch, tmp_path):
    """The best epoch is chosen by val_loss; the accuracy shown is the one OF that epoch
    (0.9722), not the peak (0.9861 at epoch 1), and the table says so."""
    from rich.console import Console

    from cnncli.cli import console
    from cnncli.cli.train_events import print_train_result
    from cnncli.training.events import TrainResult

    monkeypatch.setattr(console, "console", Console(width=200, highlight=False))
    history = [
        {"epoch": 1, "loss": 0.2, "accuracy": 0.9861, "val_loss": 0.31, "val_accuracy": 0.9},
        {"epoch": 2, "loss": 0.05686, "accuracy": 0.9722, "val_loss": 0.12, "val_accuracy": 0.95},
    ]
    result = TrainResult(
        tmp_path, 2, best_epoch=2, best_value=0.12, monitor="val_loss", history=history
    )
    print_train_result(result)
    out = capsys.readouterr().out
    assert "at the best epoch (2, by val_loss)" in out
    assert "loss 0.05686, accuracy 0.9722, val_loss 0.12, val_accuracy 0.95" in out
    assert "best accuracy" not in out and "best loss" not in out
    print_train_result(result, quiet=True)
    assert f"done: best epoch 2 (by val_loss), run folder {tmp_path}" in capsys.readouterr().err
