"""Using multi-label and regression models: what is stored with them, evaluate (metrics,
tuned thresholds, sheets, plots), predict, activations / Grad-CAM and embed. The models are
built and saved as a training run saves them (untrained: the mechanics are under test)."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
import pytest

from cnncli.errors import DatasetError, ModelFileError, UsageError

LABELS = ("blue", "left", "top")


@pytest.fixture(scope="module")
def kit(tmp_path_factory, write_image):
    """Datasets (multilabel, regression; 12x12) and a model for each in a run folder."""
    import keras

    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset
    from cnncli.models.io import save_model
    from cnncli.training.rundir import model_metadata
    from cnncli.training.tasks import units_layer

    root = tmp_path_factory.mktemp("taskinf")
    rng = np.random.default_rng(7)
    rows = [["image", "tags", "light"]]
    for i in range(24):
        has = [(i >> k) & 1 for k in range(3)]
        arr = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
        arr[:, :, 2] += 190 * has[0]
        arr[:, :6] += 150 * has[1]
        arr[:6, :] += 60 * has[2]
        write_image(root / "images" / f"{i:02d}.png", arr)
        rows.append(
            [
                f"{i:02d}.png",
                ";".join(n for n, h in zip(LABELS, has, strict=True) if h),
                round(float(arr.mean()), 2),
            ]
        )
    with open(root / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    common = {"labels": root / "table.csv", "size": "12x12", "val": 0.25, "workers": 1}
    ml = build_dataset(
        root / "images", root / "ml", task="multilabel", label_col="tags", label_delim=";", **common
    ).out_dir
    rg = build_dataset(
        root / "images", root / "rg", task="regression", target_cols=["light"], **common
    ).out_dir
    keras.utils.set_random_seed(1)

    def body():
        return [
            keras.Input((12, 12, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
        ]

    out = {"root": root, "ml": ml, "rg": rg}
    for name, layers in (
        ("ml", [*body(), keras.layers.Dense(3, activation="sigmoid")]),
        ("rg", [*body(), keras.layers.Dense(1), units_layer(open_dataset(rg))]),
    ):
        run = root / f"run_{name}"
        run.mkdir()
        (run / "run.json").write_text("{}")
        model = keras.Sequential(layers)
        save_model(model, run / "best.keras", model_metadata(open_dataset(out[name])))
        out[f"{name}_model"] = run / "best.keras"
    return out


def _split(info, split):
    from cnncli.datasets.store import iter_records

    recs = list(iter_records(info, split))
    return np.stack([r.image for r in recs]), np.stack([r.label for r in recs])


def test_what_is_stored_with_a_model_is_read_and_checked(kit, tmp_path):
    from cnncli.inference.model import open_model
    from cnncli.models.metadata import check_stored

    ml, rg = open_model(kit["ml_model"]), open_model(kit["rg_model"])
    assert (ml.task, ml.head.kind, ml.class_names) == ("multilabel", "multilabel", list(LABELS))
    assert ml.thresholds == [0.5, 0.5, 0.5]
    assert (rg.task, rg.head.kind, rg.class_names) == ("regression", "regression", ["light"])
    assert rg.targets[0]["name"] == "light" and rg.targets[0]["std"] > 0
    for stored, words in (
        ({"task": "ranking"}, "has task 'ranking', not one of classify, multilabel, regression"),
        (
            {"task": "multilabel", "class_names": ["a", "b"], "thresholds": [0.5, 2]},
            "has thresholds [0.5, 2], not a list of numbers in 0..1",
        ),
        (
            {"task": "multilabel", "class_names": ["a", "b"], "thresholds": [0.5]},
            "has 1 thresholds for 2 labels",
        ),
        ({"task": "regression"}, "has task regression but no targets"),
        (
            {
                "task": "regression",
                "targets": [{"name": "y", "mean": 1, "std": 0, "min": 0, "max": 2}],
            },
            "has target 'y' with std 0, not positive",
        ),
    ):
        with pytest.raises(ModelFileError) as e:
            check_stored(stored, "m.keras")
        assert e.value.message.startswith("m.keras: the stored cnncli metadata " + words)


def test_evaluate_multilabel_metrics_sheet_and_threshold(kit, tmp_path):
    from sklearn.metrics import f1_score, hamming_loss

    from cnncli.datasets.store import open_dataset
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.misclassified import multilabel_caption
    from cnncli.inference.model import open_model, probabilities

    info = open_dataset(kit["ml"])
    x, y = _split(info, "val")
    p = probabilities(open_model(kit["ml_model"]), x)
    for threshold in (None, 0.45):
        r = evaluate(
            kit["ml_model"],
            kit["ml"],
            split="val",
            threshold=threshold,
            errors_png=tmp_path / f"e{threshold}.png",
            errors_csv=tmp_path / f"e{threshold}.csv",
        )
        pred = (p > (threshold or 0.5)).astype(int)
        assert r.task == "multilabel" and r.count == len(y)
        assert r.metrics["macro_f1"] == pytest.approx(
            f1_score(y, pred, average="macro", zero_division=0)
        )
        assert r.metrics["micro_f1"] == pytest.approx(
            f1_score(y, pred, average="micro", zero_division=0)
        )
        assert r.metrics["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
        assert r.metrics["subset_accuracy"] == pytest.approx(np.mean((pred == y).all(axis=1)))
        assert [m.support for m in r.labels] == list(y.sum(axis=0).astype(int))
        assert [m.threshold for m in r.labels] == [threshold or 0.5] * 3
        wrong = (pred != y).sum(axis=1)
        with open(tmp_path / f"e{threshold}.csv", newline="") as f:
            listed = list(csv.DictReader(f))
        assert len(listed) == int((wrong > 0).sum())
        assert [int(row["wrong"]) for row in listed] == sorted(wrong[wrong > 0], reverse=True)
        assert (tmp_path / f"e{threshold}.png").read_bytes()[:4] == b"\x89PNG"
        json.dumps(r.to_json())
    assert multilabel_caption(1, ["left", "top"], ["top"], "a/b.png", 1) == (
        "actual: left, top //  predicted: top\n#1 · 1 wrong · b.png"
    )


def test_tune_thresholds_stores_them_in_the_model_file(kit, tmp_path):
    import shutil

    from cnncli.datasets.store import open_dataset
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.metrics import best_thresholds
    from cnncli.inference.model import open_model, probabilities
    from cnncli.models.io import read_metadata

    run = tmp_path / "run"
    run.mkdir()
    model = shutil.copy(kit["ml_model"], run / "best.keras")
    x, y = _split(open_dataset(kit["ml"]), "val")
    want = best_thresholds(y, probabilities(open_model(model), x))
    before = zipfile.ZipFile(model).read("model.weights.h5")
    r = evaluate(model, kit["ml"], split="train", tune_thresholds=True)
    assert r.tuned and r.thresholds == pytest.approx(want)
    assert read_metadata(model)["thresholds"] == pytest.approx(want, abs=1e-4)
    assert zipfile.ZipFile(model).read("model.weights.h5") == before  # weights untouched
    assert open_model(model).thresholds == pytest.approx(want, abs=1e-4)
    again = evaluate(model, kit["ml"], split="train")  # the stored ones are used
    assert [m.threshold for m in again.labels] == pytest.approx(want, abs=1e-4)
    with pytest.raises(UsageError, match="for multi-label models"):
        evaluate(kit["rg_model"], kit["rg"], threshold=0.4)
    no_val = tmp_path / "noval"
    shutil.copytree(kit["ml"], no_val)
    manifest = json.loads((no_val / "manifest.json").read_text())
    manifest["splits"]["val"]["count"] = 0
    (no_val / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="picks thresholds on the val split"):
        evaluate(model, no_val, split="train", tune_thresholds=True)


def test_evaluate_regression_through_the_cli(kit, cli, tmp_path):
    from sklearn.metrics import mean_absolute_error, r2_score

    from cnncli.datasets.store import open_dataset
    from cnncli.inference.model import open_model, probabilities

    info = open_dataset(kit["rg"])
    x, y = _split(info, "val")
    p = probabilities(open_model(kit["rg_model"]), x)
    worst = tmp_path / "worst"
    r = cli(
        "evaluate",
        str(kit["rg_model"]),
        str(kit["rg"]),
        "--errors",
        f"{worst}.png",
        "--errors-csv",
        f"{worst}.csv",
        "--json",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    (t,) = data["targets"]
    assert t["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-5)
    assert t["r2"] == pytest.approx(r2_score(y, p), rel=1e-5, abs=1e-6)
    assert t["baseline_mae"] == pytest.approx(np.mean(np.abs(y - info.targets[0].mean)))
    run = kit["rg_model"].parent
    for kind in ("scatter", "residuals"):
        assert (run / f"best.{kind}-val.png").read_bytes()[:4] == b"\x89PNG"
        assert data["files"][f"{kind}_png"] == str(run / f"best.{kind}-val.png")
    with open(tmp_path / "worst.csv", newline="") as f:
        listed = list(csv.DictReader(f))
    errors = [abs(float(row["pred_light"]) - float(row["true_light"])) for row in listed]
    assert errors == sorted(errors, reverse=True) and len(listed) == len(y)
    r = cli("evaluate", str(kit["rg_model"]), str(kit["rg"]), "--overwrite")
    assert r.exit_code == 0 and "MAE of the train mean" in r.stdout
    r = cli("evaluate", str(kit["rg_model"]), str(kit["rg"]), "--confusion", "c.png")
    assert r.exit_code == 2
    assert (
        "--confusion draws a classifier's confusion matrix; this dataset's task is "
        "regression" in r.stderr
    )


def test_predict_prints_labels_above_thresholds_and_values(kit, cli):
    from cnncli.images import load_image
    from cnncli.inference.model import open_model, probabilities

    files = sorted((kit["root"] / "images").glob("*.png"))[:4]
    m = open_model(kit["ml_model"])
    p = probabilities(m, np.stack([load_image(f, m.image) for f in files]))
    r = cli("predict", str(kit["ml_model"]), *map(str, files), "--csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(r.stdout.splitlines()))
    assert rows[0] == ["file", "labels", *(f"probability_{n}" for n in LABELS)]
    for row, probs in zip(rows[1:], p, strict=True):
        assert set(filter(None, row[1].split(";"))) == {
            n for n, q in zip(LABELS, probs, strict=True) if q > 0.5
        }
        assert [float(v) for v in row[2:]] == pytest.approx(probs, abs=1e-5)
    r = cli("predict", str(kit["ml_model"]), str(files[0]), "--json")
    first = json.loads(r.stdout)["predictions"][0]
    assert set(first) == {"file", "labels", "probabilities"}
    assert first["probabilities"]["top"] == pytest.approx(p[0][2], abs=1e-6)

    r = cli("predict", str(kit["rg_model"]), *map(str, files), "--csv")
    rows = list(csv.reader(r.stdout.splitlines()))
    rm = open_model(kit["rg_model"])
    values = probabilities(rm, np.stack([load_image(f, rm.image) for f in files]))
    assert rows[0] == ["file", "light"]
    assert [float(row[1]) for row in rows[1:]] == pytest.approx(values[:, 0], rel=1e-5)
    r = cli("predict", str(kit["rg_model"]), str(files[0]), "--top-k", "2")
    assert r.exit_code == 2 and "--top-k is for classifiers" in r.stderr


def test_activations_gradcam_and_embed_colours(kit, tmp_path):
    from cnncli.inference.activations import activations
    from cnncli.inference.embed import embed

    image = sorted((kit["root"] / "images").glob("*.png"))[5]
    r = activations(kit["ml_model"], [image], tmp_path / "a", gradcam=True, class_index="top")
    page = (tmp_path / "a" / "index.html").read_text()
    assert r.images[0].gradcam_class == "top" and "Grad-CAM: label top" in page
    assert "Predicted labels (above their thresholds)" in page
    r = activations(kit["rg_model"], [image], tmp_path / "b", gradcam=True)
    assert r.images[0].gradcam_class == "light"  # the first target's value explained
    assert r.images[0].predicted_class.startswith("light ")
    assert "Predicted values" in (tmp_path / "b" / "index.html").read_text()

    e = embed(
        kit["ml_model"], [kit["ml"]], out_csv=tmp_path / "ml.csv", clusters=2, color_by="left"
    )
    assert e.color_by == "left" and e.projection.is_file()
    assert e.values.shape == (24, 3) and set(np.unique(e.values)) <= {0.0, 1.0}
    e = embed(kit["rg_model"], [kit["rg"]], out_csv=tmp_path / "rg.csv", clusters=2)
    assert e.color_by == "light" and e.projection.is_file() and e.dims == 3  # before the head
    with pytest.raises(UsageError, match="--color-by 'round' is not a label of the model"):
        embed(kit["ml_model"], [kit["ml"]], out_csv=tmp_path / "x.csv", color_by="round")
