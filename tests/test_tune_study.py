"""cnncli tune with real training: trials are run folders of cnncli train's code, a pruned
trial says so, the best command reproduces its trial; kill -9 or SIGTERM and --resume; two
processes joined on one study. Tiny 8x8 datasets, the tiny architecture, 2 epochs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(tiny, tmp_path) -> Path:
    return tiny.build(tiny.make_images(tmp_path / "img", ["a", "b"], per_class=12), tmp_path / "ds")


def _cnncli(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cnncli", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _trials(study: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.load_study(study_name="cnncli", storage=f"sqlite:///{study / 'study.db'}")
    return s.get_trials()


def test_trials_are_run_folders_pruned_marked_best_command_reproduces(
    dataset, tmp_path, monkeypatch, cli
):
    import optuna

    from cnncli.training.options import TrainOptions
    from cnncli.tune import run
    from cnncli.tune.space import parse_param

    class PruneTrialOne(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    monkeypatch.setattr(run, "_pruner", lambda name, epochs: PruneTrialOne())
    study = tmp_path / "st"
    req = run.TuneRequest(
        dataset,
        study,
        trials=3,
        source={"arch": "tiny"},
        options=TrainOptions(epochs=2),
        dims=[parse_param("lr=1e-3..1e-1:log"), parse_param("batch-size=4,8")],
    )
    result = run.run_tune(req)
    assert result.counts["complete"] == 2 and result.counts["pruned"] == 1
    pruned = json.loads((study / "trials/0001/run.json").read_text())
    assert (pruned["status"], pruned["epochs_finished"]) == ("pruned", 1)
    assert [t.state.name for t in _trials(study)] == ["COMPLETE", "PRUNED", "COMPLETE"]
    # the trials are run folders that cnncli runs reads unchanged
    r = cli("runs", study / "trials", "--json")
    assert r.exit_code == 0, r.output
    shown = {Path(x["path"]).name: x["status"] for x in json.loads(r.stdout)["runs"]}
    assert shown == {"0000": "finished", "0001": "pruned", "0002": "finished"}
    # study.json names the best trial and its command; the command trains the same run
    saved = json.loads((study / "study.json").read_text())
    best = saved["best"]
    assert best["number"] == result.best["number"] and best["value"] == result.best["value"]
    assert best["run_dir"] == f"trials/{best['number']:04d}" and best["seed"] == 0
    command = best["command"].split()
    assert command[:4] == ["cnncli", "train", str(dataset), "--arch"]
    r = cli(*command[1:], "-o", tmp_path / "again", "--json-log")
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "again/run.json").read_text())
    assert again["best"]["value"] == best["value"]
    original = json.loads((study / best["run_dir"] / "run.json").read_text())
    assert again["options"] == original["options"]
    page = (study / "index.html").read_text()
    assert 'href="trials/0001/"' in page and "trials.png" in page


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_killed_study_resumes_keeping_finished_trials(dataset, tmp_path, sig):
    study = tmp_path / "st"
    args = [
        "tune",
        dataset,
        "--study",
        study,
        "--arch",
        "tiny",
        "--epochs",
        "2",
        "--trials",
        "3",
        "--pruner",
        "none",
        "--param",
        "lr=1e-3..1e-1:log",
        "-q",
    ]
    proc = _cnncli(*args, cwd=tmp_path)
    _wait_for(study / "trials/0001", proc)
    first = (study / "trials/0000/run.json").read_text()
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
        assert f"tuning stopped by SIGTERM; the finished trials are kept in {study}" in err
        assert f"continue with: cnncli tune --resume {study}" in err
    before = {t.number: t.state.name for t in _trials(study)}
    assert before[0] == "COMPLETE"
    assert before[1] == ("RUNNING" if sig == signal.SIGKILL else "FAIL")

    resumed = _cnncli("tune", "--resume", study, "--json", cwd=tmp_path)
    out, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err
    why = "its process (pid" if sig == signal.SIGKILL else "stopped by SIGTERM"
    assert f"trial 1: {why}" in err and "retried" in err
    result = json.loads(out)
    assert result["counts"]["complete"] == 3
    rows = {r["number"]: r for r in result["rows"]}
    assert rows[1]["state"] == "failed"
    retry = [r for r in rows.values() if r["retry_of"] == 1]
    assert len(retry) == 1 and retry[0]["state"] == "complete"
    assert retry[0]["params"] == rows[1]["params"]
    assert (study / "trials/0000/run.json").read_text() == first  # not trained again
    complete = sorted(n for n, r in rows.items() if r["state"] == "complete")
    assert len(complete) == 3 and 0 in complete
    for n in complete:
        assert json.loads((study / f"trials/{n:04d}/run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_two_processes_joined_share_the_total(dataset, tmp_path, storage):
    study = tmp_path / "st"
    first = _cnncli(
        "tune",
        dataset,
        "--study",
        study,
        "--arch",
        "tiny",
        "--epochs",
        "1",
        "--trials",
        "5",
        "--pruner",
        "none",
        "--storage",
        storage,
        "--param",
        "lr=1e-3..1e-1:log",
        "-q",
        cwd=tmp_path,
    )
    _wait_for(study / "trials/0000", first)
    second = _cnncli("tune", "--join", study, "-q", "--json", cwd=tmp_path)
    out2, err2 = second.communicate(timeout=500)
    _, err1 = first.communicate(timeout=500)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    import optuna

    if storage == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        where = JournalStorage(JournalFileBackend(str(study / "journal.log")))
    else:
        where = f"sqlite:///{study / 'study.db'}"
    trials = optuna.load_study(study_name="cnncli", storage=where).get_trials()
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 5
    assert len({t.number for t in done}) == 5
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both processes trained
    folders = sorted(p.name for p in (study / "trials").iterdir() if p.is_dir())
    assert folders == [f"{t.number:04d}" for t in done]  # no folder of a skipped trial
    for t in done:
        assert (study / "trials" / f"{t.number:04d}" / "best.keras").is_file()
    # the joined process stops once the total is finished or being finished: the other
    # process's last trial may still be running when it reports
    counts = json.loads(out2)["counts"]
    assert counts["complete"] + counts["running"] == 5 and counts["complete"] >= 4
