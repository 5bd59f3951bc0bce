"""evaluate: loss and accuracy equal Keras' model.evaluate, per-class metrics equal
scikit-learn's, the error sheet and CSV hold the misclassified rows, the CLI's tables, JSON
and one-line errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnncli.errors import DatasetError, ModelError, UsageError


@pytest.fixture(scope="module")
def facade(tmp_path_factory, tiny):
    """A 2-class dataset (Korean names) and a sigmoid model saved with metadata."""
    root = tmp_path_factory.mktemp("facade")
    tiny.make_images(root / "images", tiny.FACADE, per_class=8)
    ds = tiny.build(root / "images", root / "ds")
    model = tiny.model(2)
    path = tiny.save_with_metadata(model, root / "model.keras", tiny.FACADE)
    return {"root": root, "images": root / "images", "ds": ds, "model": model, "path": path}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, tiny):
    """A 3-class dataset and a softmax model."""
    root = tmp_path_factory.mktemp("shapes")
    tiny.make_images(root / "images", tiny.SHAPES, per_class=8, seed=1)
    ds = tiny.build(root / "images", root / "ds")
    model = tiny.model(3, seed=1)
    path = tiny.save_with_metadata(model, root / "model.keras", tiny.SHAPES)
    return {"root": root, "images": root / "images", "ds": ds, "model": model, "path": path}


# --- the numbers ---------------------------------------------------------------------------


def _keras_evaluate(model, x, y, loss, scale=1.0):
    model.compile(loss=loss, metrics=["accuracy"])
    out = model.evaluate(x * scale, y, batch_size=4, verbose=0, return_dict=True)
    return out["loss"], out["accuracy"]


def test_sigmoid_loss_and_accuracy_equal_keras_evaluate(facade, tiny):
    from cnncli.inference.evaluate import evaluate

    r = evaluate(facade["path"], facade["ds"], batch_size=3)
    x, y, _ = tiny.split_arrays(facade["ds"], "test")
    loss, acc = _keras_evaluate(facade["model"], x, y, "binary_crossentropy")
    assert r.split == "test" and r.count == len(y) == 4
    assert r.loss_name == "binary_crossentropy"
    assert r.loss == pytest.approx(loss, rel=1e-5)
    assert r.accuracy == pytest.approx(acc, abs=1e-6)


def test_softmax_loss_and_accuracy_equal_keras_evaluate(shapes, tiny):
    from cnncli.inference.evaluate import evaluate

    r = evaluate(shapes["path"], shapes["ds"], split="val")
    x, y, _ = tiny.split_arrays(shapes["ds"], "val")
    loss, acc = _keras_evaluate(shapes["model"], x, y, "sparse_categorical_crossentropy")
    assert r.loss_name == "sparse_categorical_crossentropy"
    assert r.loss == pytest.approx(loss, rel=1e-5)
    assert r.accuracy == pytest.approx(acc, abs=1e-6)


def test_logits_head_and_external_model_defaults(shapes, tmp_path, tiny):
    """A model saved elsewhere (no metadata, no Rescaling, logits): pixels scaled by 1/255,
    classes named by index, loss from logits; all stated in the notes."""
    import keras

    from cnncli.inference.evaluate import evaluate

    model = tiny.model(3, head="logits", rescale=False, seed=2)
    path = tmp_path / "external.keras"
    model.save(path)
    r = evaluate(path, shapes["ds"], split="test")
    x, y, _ = tiny.split_arrays(shapes["ds"], "test")
    loss, acc = _keras_evaluate(
        model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True), scale=1 / 255
    )
    assert r.loss == pytest.approx(loss, rel=1e-5)
    assert r.accuracy == pytest.approx(acc, abs=1e-6)
    notes = " | ".join(r.notes)
    assert "1/255" in notes and ("index" in notes or "indices" in notes)


def test_nested_model_head_is_read_from_its_last_inner_layer(shapes, tmp_path, tiny):
    """Input -> Rescaling -> Sequential(... Dense softmax): probabilities, not logits."""
    import keras

    from cnncli.inference.evaluate import evaluate
    from cnncli.models.head import model_head

    keras.utils.set_random_seed(5)
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, inner(keras.layers.Rescaling(1 / 255)(inputs)))
    head = model_head(model)
    assert (head.kind, head.from_logits, head.units) == ("categorical", False, 3)
    path = tiny.save_with_metadata(model, tmp_path / "nested.keras", tiny.SHAPES)
    r = evaluate(path, shapes["ds"], split="test")
    x, y, _ = tiny.split_arrays(shapes["ds"], "test")
    loss, acc = _keras_evaluate(model, x, y, "sparse_categorical_crossentropy")
    assert r.loss == pytest.approx(loss, rel=1e-5)
    assert r.accuracy == pytest.approx(acc, abs=1e-6)


def test_per_class_metrics_and_confusion_equal_sklearn(shapes, tiny):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from cnncli.inference.evaluate import evaluate

    r = evaluate(shapes["path"], shapes["ds"], split="train")
    x, y, _ = tiny.split_arrays(shapes["ds"], "train")
    pred = np.asarray(shapes["model"].predict(x, verbose=0)).argmax(axis=1)
    assert r.labels.tolist() == y.tolist()
    assert r.predicted.tolist() == pred.tolist()
    p, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=[0, 1, 2], zero_division=0
    )
    assert [m.precision for m in r.per_class] == pytest.approx(p)
    assert [m.recall for m in r.per_class] == pytest.approx(rec)
    assert [m.f1 for m in r.per_class] == pytest.approx(f1)
    assert [m.support for m in r.per_class] == support.tolist()
    assert r.confusion.tolist() == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    macro = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert r.macro["f1"] == pytest.approx(macro[2])


def test_error_sheet_and_csv_hold_the_misclassified_rows(shapes, tmp_path, tiny):
    from cnncli.inference.evaluate import evaluate

    r = evaluate(
        shapes["path"], shapes["ds"], split="train",
        errors_png=tmp_path / "wrong.png", errors_csv=tmp_path / "wrong.csv",
    )  # fmt: skip
    _, y, paths = tiny.split_arrays(shapes["ds"], "train")
    wrong = np.flatnonzero(r.predicted != y)
    assert len(wrong) > 0  # the fixture model is untrained: some errors to list
    with open(tmp_path / "wrong.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == [paths[i] for i in wrong]
    assert [row["actual"] for row in rows] == [tiny.SHAPES[y[i]] for i in wrong]
    assert [row["predicted"] for row in rows] == [tiny.SHAPES[r.predicted[i]] for i in wrong]
    for row, i in zip(rows, wrong, strict=True):
        assert float(row["probability"]) == pytest.approx(
            r.probabilities[i, r.predicted[i]], abs=1e-6
        )
    with Image.open(tmp_path / "wrong.png") as img:
        assert img.format == "PNG"
        cols = min(8, math.ceil(math.sqrt(len(wrong))))  # a near-square grid
        rows = math.ceil(len(wrong) / cols)
        assert cols * 200 < img.width < cols * 200 + 20  # one 200 px cell per image
        assert img.height > rows * 200
    assert r.files == {
        "errors_csv": str(tmp_path / "wrong.csv"),
        "errors_png": str(tmp_path / "wrong.png"),
    }


def test_error_titles_follow_the_course():
    from cnncli.inference.evaluate import error_title

    assert error_title("대리석", "벽돌") == "실제 : 대리석 // 예측 : 벽돌"
    assert error_title("4", "9") == "actual: 4 // predicted: 9"


def test_default_split_is_test_then_val(facade, tmp_path, tiny):
    from cnncli.inference.evaluate import evaluate

    no_test = tiny.build(facade["images"], tmp_path / "ds", val=0.25, test=0.0)
    assert evaluate(facade["path"], no_test).split == "val"
    with pytest.raises(DatasetError, match="has no 'test' images"):
        evaluate(facade["path"], no_test, split="test")
    with pytest.raises(UsageError, match="unknown split 'testing'"):
        evaluate(facade["path"], no_test, split="testing")


def test_model_that_does_not_fit_the_dataset(facade, shapes):
    from cnncli.inference.evaluate import evaluate

    with pytest.raises(ModelError, match="predicts 3 classes but the dataset has 2"):
        evaluate(shapes["path"], facade["ds"])


# --- the command ---------------------------------------------------------------------------


def test_cli_tables_and_default_confusion_beside_the_model(cli, facade):
    out = facade["root"] / "model.confusion-test.png"
    result = cli("evaluate", facade["path"], facade["ds"])
    assert result.exit_code == 0, result.output
    for text in ("loss", "accuracy", "Per class", "macro avg", "Confusion matrix", "대리석"):
        assert text in result.stdout
    assert f"wrote confusion matrix: {out}" in result.stderr
    with Image.open(out) as img:
        assert img.format == "PNG"


def test_cli_json_schema(cli, facade, tmp_path, tiny):
    result = cli(
        "evaluate", facade["path"], facade["ds"], "--split", "val", "--json",
        "--confusion", tmp_path / "c.png", "--errors-csv", tmp_path / "w.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "model", "dataset", "split", "count", "loss", "loss_name", "accuracy", "classes",
        "macro_avg", "weighted_avg", "confusion_matrix", "misclassified", "conversion",
        "notes", "files",
    }  # fmt: skip
    assert data["split"] == "val" and data["count"] == 4
    assert [c["name"] for c in data["classes"]] == tiny.FACADE
    assert set(data["classes"][0]) == {"index", "name", "precision", "recall", "f1", "support"}
    cm = data["confusion_matrix"]
    assert cm["labels"] == tiny.FACADE and sum(map(sum, cm["matrix"])) == 4
    assert len(data["misclassified"]) == 4 - round(data["accuracy"] * 4)
    assert data["files"] == {
        "confusion_png": str(tmp_path / "c.png"),
        "errors_csv": str(tmp_path / "w.csv"),
    }


def test_cli_bad_inputs_one_line(cli, facade, tmp_path):
    cases = [
        (["evaluate", tmp_path / "missing.keras", facade["ds"]], 1,
         f"error: model file {tmp_path / 'missing.keras'} not found: "
         "give the path of a .keras or .h5 file"),
        (["evaluate", facade["path"], facade["ds"], "--split", "testing"], 2,
         "error: unknown split 'testing': use one of train, val, test"),
        (["evaluate", facade["path"], tmp_path / "nods"], 1, None),
    ]  # fmt: skip
    for args, code, line in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith(" ")]
        errors = [x for x in lines if x.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
        if line:
            assert errors[0] == line
    assert not (facade["root"] / "missing.confusion-test.png").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_help_does_not_import_tensorflow(command):
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cnncli.cli.main import app\n"
        f"r = CliRunner().invoke(app, [{command!r}, '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('HEAVY=' + ','.join(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("HEAVY="), out.stdout
