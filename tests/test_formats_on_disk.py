"""Formats on disk keep loading: the folders and files an older cnncli wrote, committed under
tests/fixtures/formats/<version>/ (made once by make_formats.py there, never regenerated),
are read by today's commands. A change that breaks an old dataset, run folder, model or
exported file fails here, not on a user's disk."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

FORMATS = Path(__file__).parent / "fixtures" / "formats"
VERSIONS = sorted(p.name for p in FORMATS.iterdir() if p.is_dir())


@pytest.fixture(params=VERSIONS)
def old(request, tmp_path, monkeypatch) -> Path:
    """A copy of one version's folder (commands may write beside what they read, and the
    committed files must stay as they are); the current folder is the copy's parent."""
    copy = tmp_path / request.param
    shutil.copytree(FORMATS / request.param, copy)
    monkeypatch.chdir(tmp_path)
    return copy


def test_the_committed_examples_are_unchanged():
    """The examples are records of what an older cnncli wrote: regenerating one would make
    these tests pass against the new format instead of the old one."""
    for version in VERSIONS:
        folder = FORMATS / version
        sums = json.loads((folder / "SHA256SUMS.json").read_text(encoding="utf-8"))
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert files - {"SHA256SUMS.json"} == set(sums), version
        for name, digest in sums.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_old_datasets_are_read_with_their_splits_and_labels(cli, old):
    expected = {
        "classify": ("classify", 12),
        "multilabel": ("multilabel", 12),
        "regression": ("regression", 12),
    }
    for name, (task, total) in expected.items():
        info = cli("dataset", "info", old / f"ds-{name}", "--json")
        assert info.exit_code == 0, info.stderr
        got = json.loads(info.stdout)
        assert got.get("task", "classify") == task
        assert got["total"] == total and got["images"]["val"] >= 1, got["images"]
    from cnncli.datasets.store import iter_records, open_dataset

    records = list(iter_records(open_dataset(old / "ds-classify"), "train"))
    assert len(records) == 8 and records[0].image.shape == (8, 8, 3)


# What cnncli 0.1.0 printed for these files (v1): the same pixels must reach the same model,
# so today's evaluate gives the same figures; the classifier's loss is also the val_loss its
# training run recorded (run-classify/run.json)
V1_FIGURES = {
    "classify": {"count": 4, "accuracy": 0.5, "loss": 0.6834258},
    "multilabel": {"count": 4, "micro_f1": 0.5714286, "subset_accuracy": 0.25, "loss": 0.6715017},
    "regression": {"count": 4, "mae": 78.882030, "r2": 0.1285009, "baseline_mae": 85.929500},
}


@pytest.mark.parametrize("task", ["classify", "multilabel", "regression"])
def test_old_models_evaluate_on_old_datasets_as_they_did(cli, old, task):
    result = cli(
        "evaluate",
        old / f"model-{task}.keras",
        old / f"ds-{task}",
        "--split",
        "val",
        "--json",
        "--no-confusion",
    )
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics.get("task", "classify") == task
    for key, value in V1_FIGURES[task].items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    if task == "classify":
        run = json.loads((old / "run-classify" / "run.json").read_text(encoding="utf-8"))
        assert metrics["loss"] == pytest.approx(run["best"]["metrics"]["val_loss"], rel=1e-5)


def test_an_old_run_folder_is_listed(cli, old):
    result = cli("runs", old, "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)
    runs = runs["runs"] if isinstance(runs, dict) else runs
    assert len(runs) == 1
    run = runs[0]
    assert run["epochs_done"] == 1 and run["status"] == "finished" and run["task"] == "classify"
    assert run["best"]["monitor"] == "val_loss" and 0 <= run["best"]["metrics"]["accuracy"] <= 1


@pytest.mark.parametrize("exported", ["exported.tflite", "exported.onnx"])
def test_old_exported_models_predict_with_their_sidecars(cli, old, write_image, exported):
    rng = np.random.default_rng(0)
    picture = write_image(old.parent / "p.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    keras_answer = cli("predict", old / "model-classify.keras", picture, "--json")
    answer = cli("predict", old / exported, picture, "--json")
    assert keras_answer.exit_code == 0, keras_answer.stderr
    assert answer.exit_code == 0, answer.stderr
    (want,) = json.loads(keras_answer.stdout)["predictions"]
    (got,) = json.loads(answer.stdout)["predictions"]
    assert got["class"] == want["class"] and got["class"] in ("brick", "대리석")
    assert abs(got["probability"] - want["probability"]) < 1e-3
