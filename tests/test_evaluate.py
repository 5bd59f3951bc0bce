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
    """Most confidently wrong first (fastai's plot_top_losses order): the lowest probability
    of the actual class first, in the CSV, the JSON list and the sheet alike."""
    from cnncli.inference.evaluate import evaluate

    r = evaluate(
        shapes["path"],
        shapes["ds"],
        split="train",
        errors_png=tmp_path / "wrong.png",
        errors_csv=tmp_path / "wrong.csv",
    )
    _, y, paths = tiny.split_arrays(shapes["ds"], "train")
    p = r.probabilities
    wrong = sorted(
        np.flatnonzero(r.predicted != y),
        key=lambda i: (p[i, y[i]], -p[i, r.predicted[i]], i),
    )
    assert len(wrong) > 2  # the fixture model is untrained: some errors to list
    assert [p[i, y[i]] for i in wrong] == sorted(p[i, y[i]] for i in wrong)
    assert wrong != sorted(wrong)  # the order differs from the dataset's here
    with open(tmp_path / "wrong.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == [paths[i] for i in wrong]
    assert [m.path for m in r.misclassified] == [paths[i] for i in wrong]
    assert [row["actual"] for row in rows] == [tiny.SHAPES[y[i]] for i in wrong]
    assert [row["predicted"] for row in rows] == [tiny.SHAPES[r.predicted[i]] for i in wrong]
    for row, i in zip(rows, wrong, strict=True):
        assert float(row["probability"]) == pytest.approx(p[i, r.predicted[i]], abs=1e-6)
    with Image.open(tmp_path / "wrong.png") as img:
        assert img.format == "PNG"
        cols = min(8, math.ceil(math.sqrt(len(wrong))))  # a near-square grid
        n_rows = math.ceil(len(wrong) / cols)
        assert cols * 200 < img.width < cols * 200 + 20  # one 200 px cell per image
        assert img.height > n_rows * 200
    assert r.files == {
        "errors_csv": str(tmp_path / "wrong.csv"),
        "errors_png": str(tmp_path / "wrong.png"),
    }


def test_error_captions_label_the_rank_and_probability(shapes):
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.misclassified import caption

    r = evaluate(shapes["path"], shapes["ds"], split="train")
    first = r.misclassified[0]
    title, second, file = caption(1, first).splitlines()
    assert title == f"actual: {first.actual} //  predicted: {first.predicted}"
    assert second == (f"#1 · p(actual)={first.actual_probability:.2f} · p={first.probability:.2f}")
    assert file == first.path.rsplit("/", 1)[-1]


def _ink_gaps(text: str, sep: str = "//") -> tuple[int, int]:
    """Blank pixel columns before and after `sep` when `text` is drawn as the error sheet
    draws captions (the bundled font, 12 px)."""
    from PIL import ImageDraw

    from cnncli.drawing.fonts import load_font

    font = load_font(12)

    def ink(t: str) -> np.ndarray:
        img = Image.new("L", (400, 20), 0)
        ImageDraw.Draw(img).text((0, 0), t, font=font, fill=255)
        return np.flatnonzero((np.asarray(img) > 0).any(axis=0))

    i = text.index(sep)
    columns = ink(text)
    head_end = ink(text[:i].rstrip()).max()
    sep_end = ink(text[: i + len(sep)]).max()
    sep_start = columns[columns > head_end].min()
    after = columns[columns > sep_end].min()
    return int(sep_start - head_end), int(after - sep_end)


def test_error_titles_follow_the_course():
    from cnncli.inference.evaluate import error_title

    assert error_title("대리석", "벽돌") == "실제 : 대리석 // 예측 : 벽돌"
    # drawn, the English caption shows a space after "//" as wide as the one before it
    # (the bundled font's slash leans into the next letter: "3 //predicted" with one space)
    before, after = _ink_gaps(error_title("3", "8"))
    assert after >= before - 1 and before >= 3, (before, after)  # one space: (7, 3)


def _sure_model():
    """A sigmoid model that gets every tiny façade image right: class 1 is the bright one."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.layers[-1].set_weights([np.full((3, 1), 0.02, np.float32), np.array([-7.2], np.float32)])
    return model


@pytest.mark.slow
def test_nothing_wrong_shows_the_least_certain_correct_images(facade, tmp_path, tiny, cli):
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.misclassified import sheet_title

    path = tiny.save_with_metadata(_sure_model(), tmp_path / "sure.keras", tiny.FACADE)
    r = evaluate(path, facade["ds"], split="train", errors_png=tmp_path / "e.png")
    assert r.accuracy == 1.0 and r.misclassified == []
    margins = [abs(2 * r.probabilities[m.index, 1] - 1) for m in r.close_calls]
    assert len(r.close_calls) == r.count == 8 and margins == sorted(margins)
    assert all(m.actual == m.predicted for m in r.close_calls)
    assert sheet_title(8, "train", 0, 8) == (
        "no misclassified images of 8 (train)\n"
        "the 8 least certain correct ones, smallest margin first"
    )
    with Image.open(tmp_path / "e.png") as img:  # 8 cells (3 per row): not an empty sheet
        assert 3 * 200 < img.width < 3 * 200 + 20 and img.height > 3 * 200
    result = cli(
        "evaluate",
        path,
        facade["ds"],
        "--split",
        "train",
        "--no-confusion",
        "--errors",
        tmp_path / "e2.png",
    )
    assert result.exit_code == 0, result.output
    assert (
        "wrote error sheet (none misclassified: the 8 least certain correct images): "
        f"{tmp_path / 'e2.png'}"
    ) in " ".join(result.stderr.split())


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


def test_cli_tables_and_default_confusion_here_not_beside_the_model(
    cli, facade, tmp_path, monkeypatch
):
    """A model from elsewhere: the default confusion plot goes to the current folder, and
    the model's folder is left as it was."""
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in facade["root"].iterdir())
    result = cli("evaluate", facade["path"], facade["ds"])
    assert result.exit_code == 0, result.output
    for text in ("loss", "accuracy", "Per class", "macro avg", "Confusion matrix", "대리석"):
        assert text in result.stdout
    assert "wrote confusion matrix: model.confusion-test.png" in result.stderr
    with Image.open(tmp_path / "model.confusion-test.png") as img:
        assert img.format == "PNG"
    assert sorted(p.name for p in facade["root"].iterdir()) == before


def test_default_confusion_goes_to_the_run_folder(cli, facade, tmp_path, monkeypatch):
    """A run's best.keras, and a checkpoint in its checkpoints/ folder: the run folder."""
    import shutil

    run = tmp_path / "runs" / "x"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    shutil.copy(facade["path"], run / "best.keras")
    shutil.copy(facade["path"], run / "checkpoints" / "save-03-0.5000.keras")
    monkeypatch.chdir(tmp_path)
    for model, written in (
        (run / "best.keras", run / "best.confusion-test.png"),
        (run / "checkpoints" / "save-03-0.5000.keras", run / "save-03-0.5000.confusion-test.png"),
    ):
        result = cli("evaluate", model, facade["ds"])
        assert result.exit_code == 0, result.output
        assert f"wrote confusion matrix: {written}" in " ".join(result.stderr.split())
        assert written.is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["save-03-0.5000.keras"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written here


CLI_PROBE = (
    "import sys\n"
    "from typer.testing import CliRunner\n"
    "from cnncli.cli.main import app\n"
    "r = CliRunner().invoke(app, sys.argv[1:])\n"
    "print('EXIT', r.exit_code)\n"
    "print(r.stderr.strip())\n"
    "print('HEAVY=' + ','.join(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
)


def _in_fresh_process(*args, cwd=None) -> list[str]:
    """cnncli ARGS in a new Python: its exit code, stderr, and whether TensorFlow loaded."""
    return subprocess.run(
        [sys.executable, "-c", CLI_PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    ).stdout.splitlines()


def test_existing_outputs_are_refused_before_tensorflow(facade, tmp_path):
    """--errors, --errors-csv and the confusion plot refuse an existing file unless
    --overwrite, checked before TensorFlow is imported."""
    for flag, name in (("--errors", "e.png"), ("--errors-csv", "e.csv"), ("--confusion", "c.png")):
        (tmp_path / name).write_text("mine")
        out = _in_fresh_process(
            "evaluate", facade["path"], facade["ds"], flag, tmp_path / name, cwd=tmp_path
        )
        assert out == [
            "EXIT 2",
            f"error: {tmp_path / name} already exists: choose another output or pass --overwrite",
            "HEAVY=",
        ], out
        assert (tmp_path / name).read_text() == "mine"
        assert not (tmp_path / "model.confusion-test.png").exists()


def test_a_bad_scale_is_refused_before_tensorflow(facade):
    img = sorted(facade["images"].rglob("*.png"))[0]
    for command in (
        ["predict", facade["path"], img],
        ["evaluate", facade["path"], facade["ds"], "--no-confusion"],
    ):
        assert _in_fresh_process(*command, "--scale", "1/0") == [
            "EXIT 2",
            "error: --scale '1/0' is not a positive number: write it as 1/255, 1 or 0.00392",
            "HEAVY=",
        ], command


def test_overwrite_replaces_existing_outputs(cli, facade, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("e.png", "e.csv", "model.confusion-test.png"):
        (tmp_path / name).write_text("mine")
    args = ["evaluate", facade["path"], facade["ds"], "--errors", "e.png", "--errors-csv", "e.csv"]
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: e.png already exists: choose another output or pass --overwrite"
    )
    result = cli(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    for name in ("e.png", "model.confusion-test.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG"
    assert (tmp_path / "e.csv").read_text().startswith("path,actual,predicted,probability")


def test_cli_json_schema(cli, facade, tmp_path, tiny):
    result = cli(
        "evaluate",
        facade["path"],
        facade["ds"],
        "--split",
        "val",
        "--json",
        "--confusion",
        tmp_path / "c.png",
        "--errors-csv",
        tmp_path / "w.csv",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "model",
        "dataset",
        "split",
        "count",
        "loss",
        "loss_name",
        "accuracy",
        "classes",
        "macro_avg",
        "weighted_avg",
        "confusion_matrix",
        "misclassified",
        "conversion",
        "notes",
        "files",
    }
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
        (
            ["evaluate", tmp_path / "missing.keras", facade["ds"]],
            2,
            f"error: model file {tmp_path / 'missing.keras'} not found: "
            "give the path of a .keras or .h5 file",
        ),
        (
            ["evaluate", facade["path"], facade["ds"], "--split", "testing"],
            2,
            "error: unknown split 'testing': use one of train, val, test",
        ),
        (["evaluate", facade["path"], tmp_path / "nods"], 2, None),
    ]
    for args, code, line in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith(" ")]
        errors = [x for x in lines if x.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
        if line:
            assert errors[0] == line
    assert not (facade["root"] / "missing.confusion-test.png").exists()
    assert not (tmp_path / "missing.confusion-test.png").exists()


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
