"""A model of one task given a dataset of another (`evaluate`, `train --from`) is refused
with exit 2 in one line, from the model file's stored metadata and the dataset's manifest,
before TensorFlow loads."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np

IMAGE = {"height": 8, "width": 8, "channels": 3, "color": "rgb", "fit": "stretch"}
TARGET = {"name": "ink", "mean": 100.0, "std": 20.0, "min": 40.0, "max": 200.0}


def fake_model(path, **meta):
    """A .keras archive holding only cnncli.json, as cnncli saves a model's metadata: what
    the checks before TensorFlow read (the architecture is never loaded here)."""
    stored = {
        "format_version": 2,
        "image": IMAGE,
        "pixel_scale": 1.0,
        "cnncli_version": "0.1.0",
        **meta,
    }
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cnncli.json", json.dumps(stored))
        z.writestr("config.json", "{}")
    return path


def test_a_task_mismatch_is_exit_2_before_tensorflow(tmp_path, tiny, write_image, fresh_cli, repo):
    from cnncli.datasets.build import build_dataset

    cls = tiny.build(tiny.make_images(tmp_path / "img", tiny.FACADE), tmp_path / "cls")
    rows = [["image", "tags", "ink"]]
    rng = np.random.default_rng(0)
    for i in range(12):
        write_image(tmp_path / "pics" / f"{i}.png", rng.integers(0, 255, (8, 8, 3), np.uint8))
        rows.append([f"{i}.png", "big;prime" if i % 2 else "big", 50 + i])
    with open(tmp_path / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    ml = build_dataset(
        tmp_path / "pics",
        tmp_path / "ml",
        task="multilabel",
        label_col="tags",
        label_delim=";",
        labels=tmp_path / "table.csv",
        val=0.25,
        workers=1,
    ).out_dir
    ml_model = fake_model(
        tmp_path / "ml.keras",
        task="multilabel",
        class_names=["big", "prime"],
        thresholds=[0.5, 0.5],
    )
    rg_model = fake_model(
        tmp_path / "rg.keras", task="regression", class_names=[], targets=[TARGET]
    )
    results, heavy = fresh_cli(
        [
            ["evaluate", ml_model, cls],
            ["train", ml, "--from", rg_model, "--epochs", "1"],
            ["evaluate", rg_model, ml],
        ],
        cwd=tmp_path,
    )
    assert results[0] == (
        2,
        "error: the model is a multilabel model (2 labels) but the dataset "
        "is classify (2 classes): evaluate it on a dataset of the task it was "
        "trained for",
    )
    assert results[1][0] == 2 and results[1][1].startswith(
        "error: the --from model is a regression model (1 target) but the dataset is multilabel "
        "(2 labels)"
    )
    assert "train a new model for this dataset with --arch or --spec" in results[1][1]
    assert results[2][0] == 2
    assert "regression model (1 target) but the dataset is multilabel" in results[2][1]
    assert heavy == []  # refused before TensorFlow
    assert not (tmp_path / "runs").exists()
