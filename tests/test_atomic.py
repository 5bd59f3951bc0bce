"""cnncli.atomic: temporary names that carry the writer's pid, what interrupted commands leave
(removed by a later command, which says so), the rename gap of --overwrite (recovered by the
next command that opens or builds the dataset), and Keras' temporary folders kept out of the
system temp folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cnncli.atomic import (
    HOST_TAG,
    atomic_dir,
    atomic_file,
    clean_debris,
    parse_temp_name,
    temp_path,
)
from cnncli.notices import listen


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def said():
    lines: list[str] = []
    with listen(lines.append):
        yield lines


@pytest.fixture
def two_versions(tmp_path, tiny):
    """(ds: a dataset of classes a, b; new: another of a, b, c), built in tmp_path."""
    tiny.build(tiny.make_images(tmp_path / "img2", ["a", "b"]), tmp_path / "ds")
    tiny.build(tiny.make_images(tmp_path / "img3", ["a", "b", "c"]), tmp_path / "new")
    return tmp_path / "ds", tmp_path / "new"


def leftovers(folder: Path, name: str = "ds") -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def classes(ds: Path) -> list[str]:
    return [c["name"] for c in json.loads((ds / "manifest.json").read_text())["classes"]]


def test_temporary_names_carry_the_pid_and_host(tmp_path):
    t = temp_path(tmp_path / "ds", "partial")
    parsed = parse_temp_name(t.name)
    assert parsed.target == "ds" and parsed.kind == "partial" and parsed.pid == os.getpid()
    assert parsed.tag.startswith(HOST_TAG) and not parsed.gone
    with atomic_file(tmp_path / "x.png") as tmp:
        assert parse_temp_name(tmp.name).pid == os.getpid() and tmp.suffix == ".png"
        tmp.write_bytes(b"1")
    assert parse_temp_name("ds") is None and parse_temp_name(".ds.lock") is None


def test_debris_of_gone_processes_is_removed_and_said(tmp_path, dead_pid, said):
    dead = tmp_path / f".ds.partial-{dead_pid}-{HOST_TAG}0001"
    dead.mkdir()
    (dead / "train-00000.tfrecord").write_bytes(b"x" * 2048)
    (tmp_path / f".last.keras.tmp-{dead_pid}-{HOST_TAG}0002.keras").write_bytes(b"x")
    alive = tmp_path / f".ds.partial-{os.getppid()}-{HOST_TAG}0003"  # our parent runs
    other_host = tmp_path / f".ds.partial-{dead_pid}-ffff0004"  # maybe alive over there
    alive.mkdir()
    other_host.mkdir()
    removed = clean_debris(tmp_path)
    assert not dead.exists() and alive.exists()
    assert other_host.exists() or HOST_TAG == "ffff"
    assert len(removed) == 2 and said[-1].startswith(
        f"removed what interrupted commands left in {tmp_path}: "
    )
    assert f".ds.partial-{dead_pid}-{HOST_TAG}0001 (2.0 KB)" in said[-1]
    # the claim holder removes every leftover of its target not of this process
    clean_debris(tmp_path, "ds", claimed=True)
    assert leftovers(tmp_path) == []


def test_a_dataset_open_removes_what_killed_builds_left(tmp_path, two_versions, dead_pid, cli):
    ds, _ = two_versions
    dead = tmp_path / f".ds.partial-{dead_pid}-{HOST_TAG}00aa"
    dead.mkdir()
    (dead / "x").write_bytes(b"1" * 100)
    r = cli("dataset", "info", ds)
    assert r.exit_code == 0
    assert f"removed what interrupted commands left in {tmp_path}: {dead.name} (100 bytes)" in (
        " ".join(r.stderr.split())
    )
    assert leftovers(tmp_path) == []


def gap(ds: Path, new: Path, pid: int, complete: bool = True) -> None:
    """The state a kill between the two renames of --overwrite leaves: `ds` missing, the old
    version at .ds.old-PID-*, the new one at .ds.partial-PID-*."""
    ds.rename(ds.with_name(f".ds.old-{pid}-{HOST_TAG}0001"))
    if not complete:
        (new / "manifest.json").unlink()
    new.rename(ds.with_name(f".ds.partial-{pid}-{HOST_TAG}0002"))


def test_rename_gap_finished_when_the_new_dataset_is_complete(two_versions, dead_pid, cli):
    ds, new = two_versions
    gap(ds, new, dead_pid)
    r = cli("dataset", "info", ds)
    assert r.exit_code == 0, r.stderr
    line = " ".join(r.stderr.split())
    assert f"recovered {ds.resolve()}" in line or f"recovered {ds}" in line
    assert "stopped between its two renames; finished it" in line
    assert classes(ds) == ["a", "b", "c"] and leftovers(ds.parent) == []


def test_rename_gap_undone_when_the_new_dataset_is_incomplete(two_versions, dead_pid, said):
    from cnncli.datasets.store import open_dataset

    ds, new = two_versions
    gap(ds, new, dead_pid, complete=False)
    info = open_dataset(ds)
    assert info.class_names == ["a", "b"] and leftovers(ds.parent) == []
    assert "its new version was incomplete, so the previous one is back in place" in said[0]
    assert any(line.startswith("removed what interrupted commands left") for line in said)


def test_rename_gap_recovered_by_the_next_build(two_versions, dead_pid, tiny, said):
    from cnncli.datasets.build import build_dataset

    ds, new = two_versions
    gap(ds, new, dead_pid)
    build_dataset(ds.parent / "img2", ds, overwrite=True, workers=1)
    assert "finished it" in said[0]
    assert classes(ds) == ["a", "b"] and leftovers(ds.parent) == []


def test_atomic_dir_refuses_what_appeared_meanwhile(tmp_path):
    from cnncli.errors import OutputExistsError

    out = tmp_path / "out"
    with pytest.raises(OutputExistsError), atomic_dir(out) as tmp:
        (tmp / "a").write_text("mine")
        out.mkdir()  # a writer that takes no claim
        (out / "b").write_text("theirs")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert leftovers(tmp_path, "out") == []


def _record_mkdtemp(monkeypatch) -> list[Path]:
    made: list[Path] = []
    real = tempfile.mkdtemp

    def spy(*args, **kwargs):
        path = real(*args, **kwargs)
        made.append(Path(path))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    return made


def test_keras_temporary_folders_stay_beside_the_model(tmp_path, tiny, monkeypatch):
    from cnncli.models.io import load_model

    model = tiny.model(2)
    made = _record_mkdtemp(monkeypatch)
    path = tiny.save_with_metadata(model, tmp_path / "m.keras", ["a", "b"])
    assert made, "Keras made no temporary folder"
    for folder in made:  # beside the model, in a scratch folder named with this pid
        scratch = folder.parent
        assert scratch.parent == tmp_path, folder
        assert parse_temp_name(scratch.name).pid == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]

    made.clear()
    system_temp = tmp_path / "systemp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    load_model(path)
    for folder in made:  # loads unpack under .cnncli.scratch-PID-*, removed at the end
        assert parse_temp_name(folder.parent.name).target == "cnncli", folder
    assert list(system_temp.iterdir()) == []


def test_a_load_removes_scratch_folders_of_killed_loads(
    tmp_path, tiny, dead_pid, monkeypatch, said
):
    from cnncli.models.io import load_model

    path = tiny.save_with_metadata(tiny.model(2), tmp_path / "m.keras", ["a", "b"])
    system_temp = tmp_path / "systemp"
    left = system_temp / f".cnncli.scratch-{dead_pid}-{HOST_TAG}0001" / "tmpab12" / "assets"
    left.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    load_model(path)
    assert list(system_temp.iterdir()) == []
    assert said and f".cnncli.scratch-{dead_pid}-{HOST_TAG}0001" in said[-1]


def test_a_failed_save_leaves_nothing(tmp_path, tiny):
    from cnncli.models.io import save_model

    class Broken:
        def save(self, path):
            Path(path).write_bytes(b"half")
            tempfile.mkdtemp()  # as Keras does for assets
            raise OSError("disk went away")

    with pytest.raises(OSError, match="went away"):
        save_model(Broken(), tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_training_removes_what_killed_runs_left_in_its_folder(tmp_path, dead_pid, said):
    from cnncli.training.rundir import run_claims

    run = tmp_path / "run"
    left = [
        run / f".last.keras.tmp-{dead_pid}-{HOST_TAG}0001.keras",
        run / "state" / f".epoch-0003.keras.tmp-{dead_pid}-{HOST_TAG}0002.keras",
        run / "state" / f".epoch-0003.keras.scratch-{dead_pid}-{HOST_TAG}0003" / "tmpx" / "assets",
        run / "checkpoints" / f".save-03-0.5.keras.tmp-{dead_pid}-{HOST_TAG}0004.keras",
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    kept = run / f".history.csv.tmp-{os.getppid()}-{HOST_TAG}0005.csv"  # a live writer's
    kept.write_bytes(b"x")
    with run_claims(run, None, True, "cnncli train --resume"):
        assert [p for p in run.rglob(".*") if p.is_file()] == [kept]
    assert len(said) == 3 and all(s.startswith("removed what interrupted commands") for s in said)
    assert not (tmp_path / ".run.lock").exists()


def test_worker_scratch_folders_carry_the_pid_and_are_cleaned_after_a_kill(
    tmp_path, dead_pid, monkeypatch, said
):
    """A non-chief worker of a multi-worker training writes into a scratch folder named
    with its pid (never an anonymous tmpXXXX): killed, the next command removes it."""
    from cnncli.atomic import scratch_folder

    system_temp = tmp_path / "systemp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    killed = system_temp / f".cnncli.scratch-{dead_pid}-{HOST_TAG}0002"
    (killed / "checkpoints").mkdir(parents=True)
    mine = scratch_folder()
    assert mine.parent == system_temp and parse_temp_name(mine.name).pid == os.getpid()
    assert not killed.exists() and f".cnncli.scratch-{dead_pid}" in said[-1]


def test_keras_weights_file_of_a_model_too_large_for_memory_is_in_the_scratch(
    tmp_path, tiny, monkeypatch
):
    """Keras writes the weights of a model larger than free memory to an anonymous
    temporary file beside the file it saves: that file is inside the pid-named scratch
    folder, so a kill during the save leaves debris the next command can tell is dead."""
    from keras.src.saving import saving_lib

    made = []
    real = tempfile.NamedTemporaryFile

    def named(*args, **kwargs):
        f = real(*args, **kwargs)
        made.append(Path(f.name))
        return f

    monkeypatch.setattr(saving_lib, "is_memory_sufficient", lambda model: False)
    monkeypatch.setattr(saving_lib.tempfile, "NamedTemporaryFile", named)
    path = tiny.save_with_metadata(tiny.model(2), tmp_path / "m.keras", ["a", "b"])
    assert made, "Keras wrote the weights in memory"
    for f in made:
        assert f.parent.parent == tmp_path and parse_temp_name(f.parent.name).pid == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
    assert path.stat().st_size > 0
