"""Training multi-label and regression models (cnncli.training.tasks, model, options): the
head, loss and metrics follow the dataset's task, the saved model gives the table's units,
resume, early stop, class weights and the errors a mismatch gives."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cnncli.errors import InputError, UsageError

LABELS = ("left", "top", "blue")


@pytest.fixture(scope="module")
def task_sets(tmp_path_factory, write_image):
    """A multilabel set (bright left half / top half / blue tint, any mix) and a regression
    set (target = the image's mean brightness), 12x12, built through build_dataset."""
    from cnncli.datasets.build import build_dataset

    root = tmp_path_factory.mktemp("tasks")
    rng = np.random.default_rng(4)
    rows, values = [], []
    for i in range(32):
        has = [(i >> k) & 1 for k in range(3)]
        arr = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
        if has[0]:
            arr[:, :6] += 150
        if has[1]:
            arr[:6, :] += 90
        if has[2]:
            arr[:, :, 2] = 250
        write_image(root / "images" / f"{i:02d}.png", arr)
        rows.append([f"{i:02d}.png", ";".join(n for n, h in zip(LABELS, has, strict=True) if h)])
        values.append(round(float(arr.mean()), 2))
    with open(root / "tags.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", "tags"], *rows])
    table = [["image", "light"], *([r[0], v] for r, v in zip(rows, values, strict=True))]
    with open(root / "values.csv", "w", newline="") as f:
        csv.writer(f).writerows(table)
    common = {"size": "12x12", "val": 0.25, "workers": 1}
    ml = build_dataset(
        root / "images",
        root / "ml",
        labels=root / "tags.csv",
        task="multilabel",
        label_col="tags",
        label_delim=";",
        **common,
    ).out_dir
    rg = build_dataset(
        root / "images",
        root / "rg",
        labels=root / "values.csv",
        task="regression",
        target_cols=["light"],
        **common,
    ).out_dir
    return {"ml": ml, "rg": rg, "root": root}


def opts(**kw):
    from cnncli.training.options import TrainOptions

    return TrainOptions(**{"epochs": 2, "batch_size": 8, "lr": 0.01, **kw})


@pytest.fixture(scope="module")
def ml_run(task_sets, tmp_path_factory):
    """One multilabel run (per-label weights, early stop on macro F1)."""
    from cnncli.training.fit import train

    run = tmp_path_factory.mktemp("mlrun") / "ml"
    options = opts(class_weight="auto", monitor="val_f1_macro", early_stop=3)
    return train(task_sets["ml"], run, arch="tiny", options=options)


@pytest.mark.slow
def test_multilabel_run_sigmoid_head_metrics_weights_and_metadata(task_sets, ml_run):
    from cnncli.datasets.store import open_dataset
    from cnncli.models.io import load_model
    from cnncli.training.tasks import positive_weights

    info = open_dataset(task_sets["ml"])
    assert info.task == "multilabel" and info.class_names == sorted(LABELS)
    # --class-weight auto: each label's negatives / positives in train, per (image, label)
    counts = info.manifest["label_counts"]["train"]
    n = info.count("train")
    want = [(n - counts[name]) / counts[name] for name in info.class_names]
    np.testing.assert_allclose(positive_weights(info), want, rtol=1e-6)

    result, run = ml_run, ml_run.run_dir
    row = result.history[-1]
    for key in (
        "loss",
        "f1_micro",
        "f1_macro",
        "auc",
        "val_f1_macro",
        "val_auc",
        "precision_left",
        "recall_blue",
        "val_precision_top",
    ):
        assert key in row, key
    assert "accuracy" not in row
    meta = json.loads((run / "run.json").read_text())
    assert meta["best"]["monitor"] == "val_f1_macro"
    assert meta["best"]["value"] == pytest.approx(max(r["val_f1_macro"] for r in result.history))
    assert meta["model"]["head"] == "multilabel"
    stored = meta["metadata"]
    assert stored["task"] == "multilabel" and stored["thresholds"] == [0.5, 0.5, 0.5]
    assert stored["format_version"] == 2 and stored["class_names"] == info.class_names
    with open(run / "history.csv", newline="") as f:
        assert "val_f1_macro" in next(csv.reader(f))
    loaded = load_model(run / "best.keras")  # built-in layers only: no --unsafe
    assert loaded.metadata.task == "multilabel" and loaded.metadata.thresholds == [0.5] * 3
    last = loaded.model.layers[-1]
    assert last.units == 3 and last.activation.__name__ == "sigmoid"


@pytest.mark.slow
def test_regression_run_outputs_the_tables_units_and_resumes(task_sets, tmp_path, cli):
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset
    from cnncli.training.fit import resume

    info = open_dataset(task_sets["rg"])
    (target,) = info.targets
    assert target.name == "light" and target.std > 0
    run = tmp_path / "rg"
    r = cli(
        "train",
        str(task_sets["rg"]),
        "--arch",
        "tiny",
        "--loss",
        "huber",
        "--epochs",
        "1",
        "-o",
        str(run),
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    resumed = resume(run, epochs=2)  # its loss compiled again: Keras drops Huber's delta
    history = resumed.history
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"mae", "rmse", "r2", "val_mae", "val_rmse", "val_r2"} <= set(history[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["options"]["loss"] == "huber" and meta["model"]["head"] == "regression"
    assert meta["metadata"]["targets"][0]["mean"] == pytest.approx(target.mean)

    # the saved model de-standardizes: its outputs and metrics are in the table's units,
    # and its loss is Huber (delta 1) on standardized targets, before and after the resume
    model = keras.models.load_model(run / "last.keras", compile=False)
    units = model.get_layer("to_units")
    assert np.ravel(units.scale) == pytest.approx([target.std])
    assert np.ravel(units.offset) == pytest.approx([target.mean])
    x, y = next(iter(make_tf_dataset(info, "val", batch_size=100)))
    p = model.predict(x, verbose=0).astype(np.float64)
    y = y.numpy().astype(np.float64)
    assert np.mean(np.abs(p - y)) == pytest.approx(history[-1]["val_mae"], rel=1e-4)
    z = np.abs((p - y) / target.std)
    huber = np.where(z <= 1, 0.5 * z**2, z - 0.5).mean()
    assert huber == pytest.approx(history[-1]["val_loss"], rel=1e-3)


def test_every_architecture_and_spec_gets_the_tasks_head(tmp_path):
    from cnncli.models.presets import ARCHITECTURES, architecture_entries
    from cnncli.models.spec import build_from_spec

    for name in ARCHITECTURES:
        assert architecture_entries(name, num_classes=3, task="multilabel")[1][-1] == (
            "Dense",
            {"units": 3, "activation": "sigmoid"},
        )
        assert architecture_entries(name, num_classes=1, task="regression")[1][-1] == (
            "Dense",
            {"units": 1},
        )
    spec = {"input_shape": [8, 8, 1], "layers": [{"Flatten": {}}, {"Dense": {"units": 5}}]}
    model = build_from_spec(spec, num_classes=2, task="multilabel")
    assert model.layers[-1].units == 2 and model.layers[-1].activation.__name__ == "sigmoid"


def test_a_mismatched_from_model_and_task_options_are_one_line(task_sets, ml_run, tmp_path):
    from cnncli.datasets.store import open_dataset
    from cnncli.training.callbacks import monitor_mode
    from cnncli.training.fit import train
    from cnncli.training.tasks import label_zeros

    # what builds a model under a strategy before fit: labels of the task's shape
    assert label_zeros(open_dataset(task_sets["ml"]), 4).shape == (4, 3)
    assert label_zeros(open_dataset(task_sets["rg"]), 4).shape == (4, 1)

    from cnncli.cli.train_events import metrics_text

    # the epoch line shows a task's main metric where a classifier's shows accuracy
    assert metrics_text({"loss": 0.5, "mae": 3.25, "val_loss": 0.75, "val_mae": 4.0}) == (
        "loss 0.5000  mae 3.2500  val_loss 0.7500  val_mae 4.0000"
    )
    assert "f1_macro 0.6000" in metrics_text({"loss": 0.5, "f1_macro": 0.6, "precision_a": 1})
    assert [monitor_mode(m) for m in ("val_mae", "rmse", "val_r2", "val_f1_macro")] == [
        "min",
        "min",
        "max",
        "max",
    ]
    with pytest.raises(UsageError, match="--loss huber is for regression datasets"):
        train(task_sets["ml"], tmp_path / "a", arch="tiny", options=opts(loss="huber"))
    with pytest.raises(UsageError, match="--class-weight is for classify and multilabel"):
        train(task_sets["rg"], tmp_path / "b", arch="tiny", options=opts(class_weight="auto"))
    with pytest.raises(UsageError) as e:
        train(task_sets["rg"], tmp_path / "c", arch="tiny", options=opts(monitor="val_accuracy"))
    assert e.value.message == "unknown --monitor 'val_accuracy' for a regression dataset"
    assert e.value.hint == "use one of loss, mae, rmse, r2, val_loss, val_mae, val_rmse, val_r2"

    # a multilabel model cannot continue on the regression set (refused before TensorFlow)
    with pytest.raises(InputError) as e:
        train(
            task_sets["rg"],
            tmp_path / "d",
            from_model=ml_run.run_dir / "best.keras",
            options=opts(epochs=1),
        )
    assert e.value.message == (
        "the --from model is a multilabel model (3 labels) but the dataset is regression (1 target)"
    )
    assert not (tmp_path / "d" / "best.keras").exists()
