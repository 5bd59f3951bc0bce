"""cnncli export of a regression and a multilabel model: the check compares the task's own
metric, Keras against the export (MAE and R^2 per target; F1 per label and subset accuracy),
the figures printed and in the JSON equal scikit-learn's on the two models' predictions
(the export run by its runtime directly), and int8 on regression says what it cost."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

LABELS = ("blue", "left", "top")


@pytest.fixture(scope="module")
def made(tmp_path_factory, write_image):
    """A 12x12 multilabel and regression dataset (24 images; 6 check images) and an
    untrained model of each saved as a run saves it, with its outputs spread wide."""
    import keras

    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset
    from cnncli.models.io import save_model
    from cnncli.training.rundir import model_metadata
    from cnncli.training.tasks import units_layer

    root = tmp_path_factory.mktemp("export_tasks")
    rng = np.random.default_rng(3)
    rows = [["image", "tags", "light", "red"]]
    for i in range(24):
        has = [(i >> k) & 1 for k in range(3)]
        arr = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
        arr[:, :, 2] += 190 * has[0]
        arr[:, :6] += 150 * has[1]
        arr[:6, :] += 60 * has[2]
        write_image(root / "images" / f"{i:02d}.png", arr)
        tags = ";".join(n for n, h in zip(LABELS, has, strict=True) if h)
        rows.append([f"{i:02d}.png", tags, round(float(arr.mean()), 2), int(arr[..., 0].mean())])
    with open(root / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    common = {
        "labels": root / "table.csv",
        "size": "12x12",
        "val": 0.25,
        "test": 0.25,
        "workers": 1,
    }
    out = {"root": root}
    out["ml"] = build_dataset(
        root / "images", root / "ml", task="multilabel", label_col="tags", label_delim=";", **common
    ).out_dir
    out["rg"] = build_dataset(
        root / "images", root / "rg", task="regression", target_cols=["light", "red"], **common
    ).out_dir
    keras.utils.set_random_seed(5)
    for name, units, last in (
        ("ml", 3, [keras.layers.Activation("sigmoid")]),
        ("rg", 2, [units_layer(open_dataset(out["rg"]))]),
    ):
        model = keras.Sequential(
            [
                keras.Input((12, 12, 3)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Conv2D(3, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(units, kernel_initializer="random_normal"),
                *last,
            ]
        )
        w, b = model.layers[-2].get_weights()
        model.layers[-2].set_weights([w * 20, b])  # outputs on both sides of the thresholds
        run = root / f"run_{name}"
        run.mkdir()
        save_model(model, run / "best.keras", model_metadata(open_dataset(out[name])))
        out[f"{name}_model"] = run / "best.keras"
    return out


def _check_images(dataset):
    """The check split's images and labels, as the dataset holds them (test: 6 images)."""
    from cnncli.datasets.store import iter_records, open_dataset

    recs = list(iter_records(open_dataset(dataset), "test"))
    x = np.stack([r.image for r in recs]).astype(np.float32)
    return x, np.array([r.label for r in recs], dtype=np.float64)


def _keras_and_tflite(model_path, tflite, x):
    """The Keras model's outputs and the LiteRT file's, run by its interpreter directly."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    ref = np.asarray(keras.models.load_model(model_path, compile=False).predict(x, verbose=0))
    it = Interpreter(model_path=str(tflite))
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return ref.astype(np.float64), np.asarray(it.get_tensor(outp["index"]), np.float64)


@pytest.mark.slow  # the int8 conversion: ~6 s
def test_regression_check_gives_mae_and_r2_per_target_and_what_int8_cost(made, cli):
    from sklearn.metrics import mean_absolute_error, r2_score

    out = made["root"] / "rg.int8.tflite"
    r = cli(
        "export",
        made["rg_model"],
        "--format",
        "litert",
        "--int8",
        "--calibration",
        made["rg"],
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    check = json.loads(out.with_name(out.name + ".cnncli.json").read_text())["check"]
    x, y = _check_images(made["rg"])
    ref, got = _keras_and_tflite(made["rg_model"], out, x)
    assert check["task"] == "regression" and check["images"] == len(x) == 6
    assert [t["name"] for t in check["targets"]] == ["light", "red"]
    for i, t in enumerate(check["targets"]):
        mae_k, mae_e = (
            mean_absolute_error(y[:, i], ref[:, i]),
            mean_absolute_error(y[:, i], got[:, i]),
        )
        r2_k, r2_e = r2_score(y[:, i], ref[:, i]), r2_score(y[:, i], got[:, i])
        assert t["keras_mae"] == pytest.approx(mae_k, rel=1e-6)
        assert t["exported_mae"] == pytest.approx(mae_e, rel=1e-6)
        assert t["mae_cost"] == pytest.approx(mae_e - mae_k, abs=1e-9)
        assert t["keras_r2"] == pytest.approx(r2_k, rel=1e-6, abs=1e-9)
        assert t["exported_r2"] == pytest.approx(r2_e, rel=1e-6, abs=1e-9)
        assert t["r2_lost"] == pytest.approx(r2_k - r2_e, abs=1e-9)
        # the table: each model's MAE and R^2, as printed
        mae_row = f"{mae_k:.4g} / {mae_e:.4g} ({mae_e - mae_k:+.3g})"
        assert f"MAE {t['name']} keras / export │ {mae_row}" in said
        assert (
            f"R² {t['name']} keras / export │ {r2_k:.4f} / {r2_e:.4f} ({r2_e - r2_k:+.4f})" in said
        )
        # what int8 cost, worded by its sign
        cost = mae_e - mae_k
        if cost > 0:
            assert f"int8 cost {cost:.3g} MAE on {t['name']} ({mae_k:.4g} -> {mae_e:.4g};" in said
        elif cost < 0:
            assert f"int8 lowered the MAE on {t['name']} by {-cost:.3g}, a gain" in said
    assert "top-1 agreement" not in said
    assert check["keras_accuracy"] is None and check["labels"] == []


class _Shifted:
    """An "export" whose outputs are the Keras model's plus `shift` per target."""

    def __init__(self, model, shift):
        self.model, self.shift = model, np.asarray(shift)

    def predict_on_batch(self, x):
        return np.asarray(self.model.predict_on_batch(x)) + self.shift


def test_regression_check_figures_equal_scikit_learn_on_both_predictions(made):
    from dataclasses import replace

    from sklearn.metrics import mean_absolute_error, r2_score

    from cnncli.datasets.store import open_dataset
    from cnncli.export import check as checks
    from cnncli.export.check_tasks import summary_rows
    from cnncli.inference.model import open_model

    info = open_model(made["rg_model"])
    shifted = replace(info, model=_Shifted(info.model, [0.5, -2.0]))
    ds = open_dataset(made["rg"])
    c = checks.compare(
        info, shifted, checks.dataset_batches(ds, "test", True), 6, True, "d", "test"
    )
    x, y = _check_images(made["rg"])
    ref = np.asarray(info.model.predict_on_batch(x), np.float64)
    got = ref + [0.5, -2.0]
    rows = dict(summary_rows(c))
    for i, t in enumerate(c.to_json()["targets"]):
        mae_k, mae_e = (
            mean_absolute_error(y[:, i], ref[:, i]),
            mean_absolute_error(y[:, i], got[:, i]),
        )
        r2_k, r2_e = r2_score(y[:, i], ref[:, i]), r2_score(y[:, i], got[:, i])
        assert (t["keras_mae"], t["exported_mae"]) == (pytest.approx(mae_k), pytest.approx(mae_e))
        assert (t["keras_r2"], t["exported_r2"]) == (pytest.approx(r2_k), pytest.approx(r2_e))
        assert t["mae_cost"] == pytest.approx(mae_e - mae_k)
        assert t["r2_lost"] == pytest.approx(r2_k - r2_e)
        want = f"{mae_k:.4g} / {mae_e:.4g} ({mae_e - mae_k:+.3g})"
        assert rows[f"MAE {t['name']} keras / export"] == want
    assert c.max_abs_diff == pytest.approx(2.0) and "top-1 agreement" not in rows


def test_multilabel_check_gives_f1_per_label_and_subset_accuracy(made, cli):
    from sklearn.metrics import accuracy_score, f1_score

    out = made["root"] / "ml.tflite"
    r = cli(
        "export", made["ml_model"], "--format", "litert", "--check", made["ml"], "-o", out, "--json"
    )
    assert r.exit_code == 0, r.output
    check = json.loads(r.stdout)["check"]
    x, y = _check_images(made["ml"])
    ref, got = _keras_and_tflite(made["ml_model"], out, x)
    pred_k, pred_e = (ref > 0.5).astype(int), (got > 0.5).astype(int)
    assert 0 < pred_k.sum() < pred_k.size  # the outputs fall on both sides of 0.5
    assert check["task"] == "multilabel" and check["images"] == 6 and check["passed"]
    f1_k = f1_score(y, pred_k, average=None, zero_division=0)
    f1_e = f1_score(y, pred_e, average=None, zero_division=0)
    assert [x["name"] for x in check["labels"]] == list(LABELS)
    for i, lab in enumerate(check["labels"]):
        assert lab["threshold"] == 0.5
        assert lab["keras_f1"] == pytest.approx(f1_k[i]) and lab["exported_f1"] == pytest.approx(
            f1_e[i]
        )
        assert lab["f1_lost"] == pytest.approx(f1_k[i] - f1_e[i])
    assert check["keras_subset_accuracy"] == pytest.approx(accuracy_score(y, pred_k))
    assert check["exported_subset_accuracy"] == pytest.approx(accuracy_score(y, pred_e))
    assert check["subset_accuracy_lost"] == pytest.approx(
        accuracy_score(y, pred_k) - accuracy_score(y, pred_e)
    )
    assert check["label_agreement"] == pytest.approx(np.mean(np.all(pred_k == pred_e, axis=1)))
    assert check["targets"] == [] and check["top1_agreement"] is None


def test_the_table_and_int8_lines_of_a_multilabel_check():
    from cnncli.export.check import CheckResult
    from cnncli.export.check_tasks import int8_lines, summary_rows

    big = {"name": "big", "threshold": 0.5, "keras_f1": 0.8, "exported_f1": 0.85, "f1_lost": -0.05}
    c = CheckResult(
        "data/ml",
        "test",
        6,
        None,
        0.01,
        None,
        None,
        None,
        task="multilabel",
        label_agreement=5 / 6,
        labels=[big],
        keras_subset_accuracy=0.5,
        exported_subset_accuracy=0.5,
    )
    rows = dict(summary_rows(c))
    assert rows["label-set agreement"] == "0.8333" and "top-1 agreement" not in rows
    assert rows["F1 big keras / export"] == "0.8000 / 0.8500"
    assert rows["subset accuracy keras / export"] == "0.5000 / 0.5000"
    assert int8_lines(c) == [
        "int8 cost no subset accuracy on data/ml (test)",
        "int8 gained 0.050 F1 on big (0.800 -> 0.850; data/ml (test))",
    ]


def test_int8_on_regression_words_a_lower_mae_as_a_gain():
    from cnncli.export.check_tasks import mae_line

    def row(k, e):
        return {"name": "ink", "keras_mae": k, "exported_mae": e, "mae_cost": e - k}

    assert (
        mae_line(row(0.41, 0.44), "d (test)")
        == "int8 cost 0.03 MAE on ink (0.41 -> 0.44; d (test))"
    )
    assert (
        mae_line(row(0.41, 0.4), "d")
        == "int8 lowered the MAE on ink by 0.01, a gain (0.41 -> 0.4; d)"
    )
    assert mae_line(row(0.41, 0.41), "d") == "int8 cost no MAE on ink (0.41 -> 0.41; d)"
