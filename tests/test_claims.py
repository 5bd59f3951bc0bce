"""cnncli.claims: two commands never write one output (a second build into the same -o, a
second train into one run folder: refused with one line naming the first), a dataset is not
replaced under a training that reads it, a claim of a killed process is taken over and said,
and a training whose dataset changes anyway stops with one line and a resumable state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnncli.errors import BusyError, DatasetChangedError, ExitCode
from cnncli.notices import listen

_HOLD = """
import sys, time, pathlib
from cnncli import claims
kind, target, what, ready, release = sys.argv[1:6]
held = claims.claim(target, what) if kind == "write" else claims.reading(target, what)
with held:
    pathlib.Path(ready).write_text("ok")
    t = time.time()
    while not pathlib.Path(release).exists() and time.time() - t < 60:
        time.sleep(0.02)
"""

# A real build that pauses once its first image is converted (inside its temporary folder),
# until the test lets it go: the moment a second build used to meet it.
_PAUSED_BUILD = """
import sys, time, pathlib
from cnncli.datasets.build import build_dataset
images, out, ready, go = sys.argv[1:5]
def progress(done, total):
    if done == 1 and not pathlib.Path(ready).exists():
        pathlib.Path(ready).write_text("ok")
        t = time.time()
        while not pathlib.Path(go).exists() and time.time() - t < 60:
            time.sleep(0.02)
build_dataset(images, out, workers=1, progress=progress)
"""


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    t = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the helper process ended: {proc.stderr.read()}")
        assert time.time() - t < timeout, "the helper process did not get ready"
        time.sleep(0.02)


@pytest.fixture
def spawn(tmp_path):
    """spawn(script, *args) -> Popen, once the script wrote its ready file; its release
    file is written (and it is waited for) at the end of the test."""
    procs = []

    def start(script: str, *args) -> subprocess.Popen:
        n = len(procs)
        ready, release = tmp_path / f".ready{n}", tmp_path / f".release{n}"
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args), ready, release],
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, release))
        _wait_for(ready, proc)
        proc.release = lambda: release.write_text("go")
        return proc

    yield start
    for proc, release in procs:
        release.write_text("go")
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_second_build_into_the_same_output_is_refused(tmp_path, tiny, spawn, cli):
    images_a = tiny.make_images(tmp_path / "a", ["cat", "dog"])
    images_b = tiny.make_images(tmp_path / "b", ["x", "y", "z"])
    first = spawn(_PAUSED_BUILD, images_a, tmp_path / "ds")
    for extra in ([], ["--overwrite"]):
        r = cli("dataset", "build", images_b, "-o", tmp_path / "ds", "--workers", 1, *extra)
        assert r.exit_code == ExitCode.USAGE, r.stderr
        assert f"is being written by cnncli dataset build (pid {first.pid} on" in one_line(r.stderr)
        assert "wait for it to finish, or choose another output" in one_line(r.stderr)
    first.release()
    assert first.wait(timeout=60) == 0, first.stderr.read()
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]] == ["cat", "dog"]  # nothing lost
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []


def test_a_killed_build_leaves_a_claim_and_debris_the_next_build_takes_over(tmp_path, tiny, spawn):
    from cnncli.datasets.build import build_dataset

    images = tiny.make_images(tmp_path / "a", ["cat", "dog"])
    first = spawn(_PAUSED_BUILD, images, tmp_path / "ds")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds."))
    assert left[0] == ".ds.lock" and left[1].startswith(f".ds.partial-{first.pid}-"), left
    said: list[str] = []
    with listen(said.append):
        build_dataset(images, tmp_path / "ds", workers=1)
    assert said[0].startswith(
        f"took over {tmp_path / 'ds'} from cnncli dataset build (pid {first.pid}"
    )
    assert said[0].endswith("which stopped without releasing it")
    assert said[1].startswith("removed what interrupted commands left") and left[1] in said[1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []


def test_a_second_train_into_a_run_folder_is_refused(tmp_path, tiny, spawn, cli):
    ds = tiny.build(tiny.make_images(tmp_path / "img", ["a", "b"]), tmp_path / "ds")
    holder = spawn(_HOLD, "write", tmp_path / "run", "cnncli train")
    r = cli("train", ds, "-o", tmp_path / "run", "--arch", "tiny", "--epochs", 1)
    assert r.exit_code == ExitCode.USAGE
    assert f"run is being written by cnncli train (pid {holder.pid} on" in one_line(r.stderr)
    assert not (tmp_path / "run").exists()


def test_default_run_folders_skip_claimed_names(tmp_path, monkeypatch):
    from cnncli.claims import claim
    from cnncli.training.rundir import default_run_dir, run_claims

    root = tmp_path / "runs"
    root.mkdir()
    (root / ".train.lock").write_text("")  # claimed by a run that has not made it yet
    assert default_run_dir(root) == root / "train2"
    monkeypatch.chdir(tmp_path)  # run_claims' default is runs/ here
    with claim(Path("runs/train2"), "cnncli train"):
        with run_claims(None, None, True, "cnncli train") as run_dir:
            assert run_dir == Path("runs/train3")


def test_an_overwrite_is_refused_while_a_training_reads_the_dataset(tmp_path, tiny, spawn, cli):
    images = tiny.make_images(tmp_path / "img", ["a", "b"])
    ds = tiny.build(images, tmp_path / "ds")
    before = (ds / "manifest.json").read_bytes()
    reader = spawn(_HOLD, "read", ds, "cnncli train")
    r = cli("dataset", "build", images, "-o", ds, "--overwrite", "--workers", 1, "--val", 0.5)
    assert r.exit_code == ExitCode.USAGE
    assert f"ds is in use: cnncli train (pid {reader.pid} on" in one_line(
        r.stderr
    ) and "reads it, so it cannot be written now" in one_line(r.stderr)
    assert (ds / "manifest.json").read_bytes() == before
    reader.release()
    reader.wait(timeout=60)
    r = cli("dataset", "build", images, "-o", ds, "--overwrite", "--workers", 1, "--val", 0.5)
    assert r.exit_code == 0, r.stderr


def test_a_training_waits_for_no_build_of_its_dataset(tmp_path, tiny, spawn):
    from cnncli.training.fit import train

    ds = tiny.build(tiny.make_images(tmp_path / "img", ["a", "b"]), tmp_path / "ds")
    writer = spawn(_HOLD, "write", ds, "cnncli dataset build")
    with pytest.raises(BusyError) as e:
        train(ds, tmp_path / "run", arch="tiny")
    assert f"is being written by cnncli dataset build (pid {writer.pid}" in str(e.value)
    assert "wait for it to finish, then run the command again" in str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_stale_claim_is_taken_over_and_said(tmp_path):
    from cnncli.claims import claim, lock_path

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    target = tmp_path / "out"
    info = {"command": "cnncli dataset build", "pid": p.pid, "host": os.uname().nodename}
    lock_path(target).write_text(json.dumps(info))
    said: list[str] = []
    with listen(said.append), claim(target, "cnncli dataset build"):
        mine = json.loads(lock_path(target).read_text())
        assert mine["pid"] == os.getpid()
    assert said == [
        f"took over {target} from cnncli dataset build (pid {p.pid} on "
        f"{info['host']}), which stopped without releasing it"
    ]
    assert not lock_path(target).exists()


class _AtEpochEnd:
    """A Keras callback (made lazily: no TensorFlow at import) calling fn() after epoch 1."""

    def __new__(cls, fn):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    fn()

        return Callback()


def test_a_training_holds_its_dataset_and_stops_if_it_changes_anyway(tmp_path, tiny):
    from cnncli.datasets.build import build_dataset
    from cnncli.training.fit import resume, train
    from cnncli.training.options import TrainOptions

    images = tiny.make_images(tmp_path / "img", ["a", "b"])
    ds = tiny.build(images, tmp_path / "ds")
    other = tiny.build(tiny.make_images(tmp_path / "img3", ["a", "b", "c"]), tmp_path / "other")
    refused: list[str] = []

    def replace_the_dataset():
        try:  # cnncli's own build is refused while the training reads the dataset
            build_dataset(images, ds, overwrite=True, workers=1, val=0.5)
        except BusyError as e:
            refused.append(str(e))
        ds.rename(tmp_path / "ds.orig")  # by hand, past the claim
        other.rename(ds)

    run = tmp_path / "run"
    with pytest.raises(DatasetChangedError) as e:
        train(
            ds,
            run,
            model=tiny.model(2),
            options=TrainOptions(epochs=3, batch_size=4),
            callbacks=[_AtEpochEnd(replace_the_dataset)],
        )
    assert refused and "reads it, so it cannot be written now" in refused[0]
    assert "cnncli train (pid" in refused[0]
    message = str(e.value)
    assert message.startswith(f"dataset {ds} changed while training (its manifest is now")
    assert "training stopped after 1 finished epoch(s)" in message
    assert f"continue with: cnncli train --resume {run}" in message
    assert e.value.exit_code == ExitCode.FAILURE
    assert json.loads((run / "run.json").read_text())["status"] != "running"
    assert json.loads((run / "state" / "state.json").read_text())["epoch"] == 1
    assert not (tmp_path / ".ds.lock").exists() and not (tmp_path / ".run.lock").exists()

    ds.rename(tmp_path / "other")  # the dataset it started on, back: resume finishes
    (tmp_path / "ds.orig").rename(ds)
    assert resume(run).epochs_run == 3


def test_the_guard_names_a_failure_of_a_changed_dataset(tmp_path):
    from cnncli.training.guard import DatasetGuard

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.json").write_text("{}")
    import hashlib

    guard = DatasetGuard(ds, hashlib.sha256(b"{}").hexdigest(), tmp_path / "run", lambda: 2)

    def broken():
        raise ValueError("InvalidArgumentError: Input to reshape is a tensor with 192 values")

    with pytest.raises(ValueError):  # the dataset is the same: the failure is not hidden
        guard.watching(broken)()
    (ds / "manifest.json").write_text('{"changed": 1}')
    with pytest.raises(DatasetChangedError, match="training stopped after 2 finished"):
        guard.watching(broken)()


def test_evaluate_and_embed_hold_the_dataset_they_read(tmp_path, tiny):
    """A build --overwrite is refused while evaluate or embed reads the dataset (they used
    to read shards that a build could replace under them), and the claim ends with them."""
    from cnncli.datasets.build import build_dataset
    from cnncli.inference.embed import embed
    from cnncli.inference.evaluate import evaluate

    images = tiny.make_images(tmp_path / "img", ["a", "b"])
    ds = tiny.build(images, tmp_path / "ds")
    model = tiny.save_with_metadata(tiny.model(2), tmp_path / "m.keras", ["a", "b"])
    refused: list[str] = []

    def replace_the_dataset(done, total):
        if done == 0:
            try:
                build_dataset(images, ds, overwrite=True, workers=1, val=0.5)
            except BusyError as e:
                refused.append(str(e))

    evaluate(model, ds, split="val", progress=replace_the_dataset)
    embed(model, [ds], out_csv=tmp_path / "v.csv", progress=replace_the_dataset)
    assert len(refused) == 2, refused
    assert "cnncli evaluate (pid" in refused[0] and "cnncli embed (pid" in refused[1]
    assert all("reads it, so it cannot be written now" in r for r in refused)
    assert not (tmp_path / ".ds.lock").exists()
    build_dataset(images, ds, overwrite=True, workers=1, val=0.5)  # free again
