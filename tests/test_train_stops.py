"""Training stopped at awkward moments: Ctrl-C or SIGTERM after the last epoch (while the run
folder is being finished), a stop between an epoch's commit and its model files, and a full
disk at each write of an epoch. Each leaves a run folder whose state and last.keras agree,
says so in one line, and `--resume` completes it."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # whole runs of cnncli: the slow suite (.ci/run runs it)

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def ds(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("stops")
    images = tiny.make_images(root / "images", ["a", "b"], per_class=8)
    return tiny.build(images, root / "ds", val=0.25, test=0.0)


def _opts(**kw):
    from cnncli.training.options import TrainOptions

    return TrainOptions(**{"epochs": 2, "batch_size": 4, "seed": 3, "save_best_only": False, **kw})


def _weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def _same_weights(a, b) -> bool:
    """Whether model files a and b hold the same weights; b may be (run, epoch): the
    resume state of that epoch (state/model.keras with state/epoch-NNNN.npz)."""
    wa, wb = _weights(a), _state_weights(*b) if isinstance(b, tuple) else _weights(b)
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def _state_weights(run: Path, epoch: int):
    import keras

    from cnncli.training.callbacks import load_variables

    model = keras.models.load_model(run / "state" / "model.keras")
    load_variables(model, run / "state" / f"epoch-{epoch:04d}.npz")
    return model.get_weights()


def _state(run: Path) -> dict:
    return json.loads((run / "state" / "state.json").read_text())


def _run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _debris(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if ".tmp" in p.name)


def _history_epochs(run: Path) -> list[int]:
    lines = (run / "history.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


_SIGTERM_IN_FINISH = """
import os, signal, sys, time
import cnncli.drawing.plots as plots
original, fired = plots.plot_history, []
def plot_history(*args, **kwargs):  # the run folder's finish, after the last epoch is saved
    if not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    return original(*args, **kwargs)
plots.plot_history = plot_history
from cnncli.cli.main import app

app(sys.argv[1:], prog_name="cnncli")
"""


def _sigint_once(monkeypatch):
    """The run folder's finish (history.png, after the last epoch is saved) gets a real
    SIGINT (Ctrl-C) the first time."""
    import time

    import cnncli.drawing.plots as plots

    original, fired = plots.plot_history, []

    def plot_history(*args, **kwargs):
        if not fired:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_history", plot_history)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_after_the_last_epoch_is_told_and_resume_finishes_it(
    cli, ds, tmp_path, monkeypatch, sig
):
    """Ctrl-C or kill in the moment after the last epoch (history.png, run.json still to
    write): the usual line and exit code, run.json "interrupted"; --resume then finishes
    what was left (it used to refuse: "already finished 2 of 2 epochs"). SIGTERM runs in
    a process of its own: outside training it ends the process."""
    run = tmp_path / "run"
    args = [
        "train",
        str(ds),
        "--arch",
        "tiny",
        "-o",
        str(run),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--quiet",
    ]
    if sig == "SIGINT":
        with monkeypatch.context() as mp:
            _sigint_once(mp)
            r = cli(*args)
        code, stderr, what = r.exit_code, r.stderr, "interrupted"
    else:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(
            [sys.executable, "-c", _SIGTERM_IN_FINISH, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        code, stderr, what = proc.returncode, proc.stderr, "stopped by SIGTERM"
    assert code == {"SIGINT": 130, "SIGTERM": 143}[sig], stderr
    assert stderr.strip().splitlines()[-1] == (
        f"error: training {what} after 2 finished epoch(s); the state of epoch 2 is saved in "
        f"{run}: continue with: cnncli train --resume {run}"
    )
    assert _run_json(run)["status"] == "interrupted" and _state(run)["epoch"] == 2

    r = cli("train", "--resume", run, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert f"{run}: no epoch left to train (2 finished); wrote what the stopped run left" in (
        r.stderr
    )
    meta = _run_json(run)
    assert meta["status"] == "finished" and meta["epochs_finished"] == 2
    assert "interrupted_by" not in meta and (run / "history.png").is_file()
    assert _history_epochs(run) == [1, 2]
    assert _same_weights(run / "last.keras", (run, 2))
    r = cli("train", "--resume", run)
    assert r.exit_code == 2 and "already finished 2 of 2 epochs" in r.stderr


def test_a_stop_between_the_commit_and_the_model_files_resumes_to_the_same_run(
    ds, tmp_path, monkeypatch, tiny
):
    """Ctrl-C right after the last epoch's state is committed, before last.keras, best.keras
    and the checkpoint are written: resume writes them, equal to an uninterrupted run's."""
    from cnncli.training.callbacks import RunFolderCallback
    from cnncli.training.events import TrainingInterrupted
    from cnncli.training.fit import resume, train

    full = train(ds, tmp_path / "full", model=tiny.model(2, seed=4), options=_opts())
    original = RunFolderCallback.save_outputs

    def stop_after_commit(self):
        if self.state.epoch == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(RunFolderCallback, "save_outputs", stop_after_commit)
    cut = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted, match="after 2 finished epoch"):
        train(ds, cut, model=tiny.model(2, seed=4), options=_opts())
    assert _state(cut)["epoch"] == 2
    monkeypatch.setattr(RunFolderCallback, "save_outputs", original)
    meta = _run_json(cut)  # as kill -9 leaves it: still "running", 2 of 2 epochs in the state
    (cut / "run.json").write_text(json.dumps({**meta, "status": "running"}))

    resumed = resume(cut)
    assert resumed.epochs_run == 2 and resumed.notes
    for name in ("last.keras", "best.keras"):
        assert _same_weights(tmp_path / "full" / name, cut / name), name
    ckpts = sorted(p.name for p in (cut / "checkpoints").iterdir())
    assert ckpts == sorted(p.name for p in (tmp_path / "full" / "checkpoints").iterdir())
    assert len(ckpts) == 2 and resumed.best_epoch == full.best_epoch
    assert sorted(p.name for p in (cut / "state").iterdir()) == [
        "epoch-0002.npz",
        "model.keras",
        "state.json",
    ]
    assert _run_json(cut)["status"] == "finished" and _debris(cut) == []


def _fail_keras_save(monkeypatch, pattern: str):
    """keras Model.save raises ENOSPC (after writing a few bytes) for a file whose name
    matches `pattern`, once."""
    import keras

    original, failed = keras.Model.save, []

    def save(self, filepath, *args, **kwargs):
        if not failed and re.search(pattern, Path(filepath).name):
            failed.append(filepath)
            Path(filepath).write_bytes(b"PK\x03\x04 half a model")
            raise ENOSPC
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)


def _fail_state_json(monkeypatch):
    from cnncli.training import rundir

    original = rundir.write_state

    def write_state(run_dir, state):
        if state["epoch"] == 2:
            raise ENOSPC
        return original(run_dir, state)

    monkeypatch.setattr(rundir, "write_state", write_state)


def _fail_checkpoint_copy(monkeypatch):
    import shutil

    from cnncli.training import callbacks

    original, link = shutil.copyfile, os.link

    def hard_link(src, dst, *args, **kwargs):  # best and checkpoints are hard links to last
        if "save-02" in Path(dst).name:
            raise ENOSPC
        return link(src, dst, *args, **kwargs)

    def copyfile(src, dst, *args, **kwargs):
        if "save-02" in Path(dst).name:
            raise ENOSPC
        return original(src, dst, *args, **kwargs)

    monkeypatch.setattr(callbacks.shutil, "copyfile", copyfile)
    monkeypatch.setattr(callbacks.os, "link", hard_link)


def _fail_variables(monkeypatch):
    """The resume state of epoch 2 (its .npz) fails after writing a few bytes."""
    from cnncli.training import callbacks

    original = callbacks.save_variables

    def save_variables(model, path):
        if "epoch-0002.npz" in Path(path).name:
            Path(path).write_bytes(b"PK\x03\x04 half a state")
            raise ENOSPC
        return original(model, path)

    monkeypatch.setattr(callbacks, "save_variables", save_variables)


# (what fails at epoch 2, the file the message names, the epoch the state is left at)
DISK_FULL = {
    "resume state": (_fail_variables, "state/epoch-0002.npz", 1),
    "model for use": (
        lambda mp: _fail_keras_save(mp, r"last-epoch-0002\.keras"),
        "state/last-epoch-0002.keras",
        1,
    ),
    "state.json": (_fail_state_json, "state/state.json", 1),
    "checkpoint": (_fail_checkpoint_copy, "checkpoints/save-02-", 2),
}


@pytest.mark.parametrize("where", list(DISK_FULL))
def test_a_full_disk_at_any_write_names_the_file_and_resume_continues(
    ds, tmp_path, monkeypatch, tiny, where
):
    """ENOSPC at each write of epoch 2 of 3: one line naming the file and the free space,
    exit 1, run.json "failed" (disk full), the state and last.keras of one epoch, no half
    file; --resume then trains to the end."""
    from cnncli.errors import OutputWriteError
    from cnncli.training.fit import resume, train

    fail, named, kept = DISK_FULL[where]
    run = tmp_path / "run"
    with monkeypatch.context() as mp:
        fail(mp)
        with pytest.raises(OutputWriteError) as exc:
            train(ds, run, model=tiny.model(2, seed=4), options=_opts(epochs=3))
    line = str(exc.value)
    assert exc.value.exit_code == 1
    assert line.startswith(
        f"training stopped after {kept} finished epoch(s): cannot write {run / named}"
    ), line
    assert re.search(r": the disk is full \([\d.]+ (bytes|KB|MB|GB|TB) free there", line), line
    assert line.endswith(
        f"free some space, then continue with: cnncli train --resume {run} "
        f"(the state of epoch {kept} is saved)"
    ), line
    if where == "model for use":  # last.keras tells how much a model file takes
        assert "the write needed about" in line
    meta = _run_json(run)
    assert (meta["status"], meta["failed_by"]) == ("failed", "disk full")
    assert _state(run)["epoch"] == kept
    assert _same_weights(run / "last.keras", (run, kept))
    assert sorted(p.name for p in (run / "state").iterdir()) == [
        f"epoch-{kept:04d}.npz",
        "model.keras",
        "state.json",
    ]
    assert _history_epochs(run) == list(range(1, kept + 1)) and _debris(run) == []

    resumed = resume(run)
    assert resumed.epochs_run == 3 and _history_epochs(run) == [1, 2, 3]
    meta = _run_json(run)
    assert meta["status"] == "finished" and "failed_by" not in meta
    assert len(list((run / "checkpoints").iterdir())) == 3
    assert _same_weights(run / "last.keras", (run, 3))


def test_a_full_disk_through_the_cli_is_one_line_and_exit_1(cli, ds, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _fail_keras_save(monkeypatch, r"last-epoch-0001\.keras")
    r = cli(
        "train", ds, "--arch", "tiny", "-o", run, "--epochs", "2", "--batch-size", "4", "--quiet"
    )
    assert r.exit_code == 1, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(
        f"error: training stopped after 0 finished epoch(s): cannot write "
        f"{run / 'state' / 'last-epoch-0001.keras'}: the disk is full ("
    )
    assert line.endswith("free some space, then start the training again"), line
    assert "unexpected" not in line and "Errno" not in line
    assert _run_json(run)["status"] == "failed" and _debris(run) == []
