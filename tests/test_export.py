"""cnncli export: each format round-trips a small trained model with the agreement checked,
the sidecar carries what predict and evaluate need and they read it back, int8 stays within
a stated bound of float, and each bad input is one line with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

INT8_BOUND = 0.2  # int8 accuracy within 0.2 of float on the check split (9 images)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    """A tiny 8x8 model trained 1 epoch, exported once to each format (and LiteRT int8)."""
    from typer.testing import CliRunner

    from cnncli.cli.main import app
    from cnncli.export.run import export_model

    root = tmp_path_factory.mktemp("export")
    tiny.make_images(root / "images", tiny.SHAPES, per_class=12)
    ds = tiny.build(root / "images", root / "ds")
    model = tiny.model(3)
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y, _ = tiny.split_arrays(ds, "train")
    model.fit(x, y, epochs=1, verbose=0)
    path = tiny.save_with_metadata(model, root / "run" / "model.keras", tiny.SHAPES)
    out = root / "out"
    results = {
        fmt: export_model(path, fmt, out / f"m{suffix}", check=ds)
        for fmt, suffix in (("savedmodel", "_sm"), ("litert", ".tflite"), ("onnx", ".onnx"))
    }
    int8 = CliRunner().invoke(
        app,
        [
            "export",
            str(path),
            "--format",
            "litert",
            "--int8",
            "--calibration",
            str(ds),
            "-o",
            str(out / "q.tflite"),
        ],
    )
    return {
        "root": root,
        "ds": ds,
        "path": path,
        "model": model,
        "results": results,
        "int8": int8,
        "out": out,
    }


@pytest.mark.slow
def test_each_format_agrees_with_keras(trained):
    for fmt, result in trained["results"].items():
        c = result.check
        assert c.passed and c.images == 9 and c.split == "test", fmt
        assert c.top1_agreement == 1.0 and c.max_abs_diff <= 1e-4, (fmt, c)
        assert c.keras_accuracy == c.exported_accuracy, fmt
        assert result.path.exists() and result.size > 0, fmt


def test_sidecar_carries_names_image_scale_source_and_check(trained, tiny):
    from cnncli.export.sidecar import file_sha256

    result = trained["results"]["litert"]
    side = json.loads(result.sidecar.read_text(encoding="utf-8"))
    assert result.sidecar.name == "m.tflite.cnncli.json"
    assert side["class_names"] == tiny.SHAPES and side["task"] == "classify"
    assert side["image"]["height"] == 8 and side["image"]["channels"] == 3
    assert side["pixel_scale"] == 1.0 and side["format"] == "litert" and not side["int8"]
    assert side["source"]["sha256"] == file_sha256(trained["path"])
    assert side["cnncli_version"] and side["check"]["top1_agreement"] == 1.0


def test_onnx_metadata_props_and_dynamic_batch(trained, tiny):
    import onnx

    m = onnx.load(str(trained["results"]["onnx"].path))
    props = {p.key: p.value for p in m.metadata_props}
    assert json.loads(props["class_names"]) == tiny.SHAPES
    assert json.loads(props["cnncli"])["image"]["width"] == 8
    batch = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch.HasField("dim_value")  # a named (dynamic) batch dimension


def test_predict_and_evaluate_read_each_exported_model(trained, tiny):
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.predict import predict

    files = sorted((trained["root"] / "images" / "square").glob("*.png"))[:4]
    want = predict(trained["path"], files, top_k=3)
    ev = evaluate(trained["path"], trained["ds"], confusion_png=None)
    for fmt, result in trained["results"].items():
        unsafe = fmt == "savedmodel"  # a SavedModel is a program: run only with --unsafe
        got = predict(result.path, files, top_k=3, unsafe=unsafe)
        assert [r.class_name for r in got] == [r.class_name for r in want], fmt
        for a, b in zip(got, want, strict=True):
            assert a.probability == pytest.approx(b.probability, abs=1e-5), fmt
        assert got.model.class_names == tiny.SHAPES and got.conversion == want.conversion
        ev2 = evaluate(result.path, trained["ds"], confusion_png=None, unsafe=unsafe)
        assert ev2.accuracy == ev.accuracy and (ev2.confusion == ev.confusion).all(), fmt
        assert ev2.loss == pytest.approx(ev.loss, abs=1e-4), fmt


def test_predict_cli_prints_the_same_table_for_a_tflite(trained, cli):
    images = trained["root"] / "images" / "circle"
    a = cli("predict", trained["path"], images, "--csv")
    b = cli("predict", trained["results"]["litert"].path, images, "--csv")
    assert a.exit_code == b.exit_code == 0, b.output
    rows_a = [r.split(",") for r in a.stdout.strip().splitlines()]
    rows_b = [r.split(",") for r in b.stdout.strip().splitlines()]
    assert [r[:2] for r in rows_a] == [r[:2] for r in rows_b] and len(rows_a) == 13
    assert np.allclose(
        [float(r[2]) for r in rows_a[1:]], [float(r[2]) for r in rows_b[1:]], atol=1e-5
    )


def test_int8_gains_are_worded_as_gains():
    from cnncli.export.check_tasks import points_line

    assert points_line(-0.0028, "accuracy", "x") == "int8 gained 0.28 points of accuracy on x"
    assert points_line(0.0111, "accuracy", "x") == "int8 lost 1.11 points of accuracy on x"
    assert points_line(0.0, "accuracy", "x") == "int8 cost no accuracy on x"


def test_int8_reports_accuracy_lost_within_bound(trained):
    r = trained["int8"]
    assert r.exit_code == 0, r.output
    from cnncli.export.check_tasks import points_line

    side = json.loads((trained["out"] / "q.tflite.cnncli.json").read_text(encoding="utf-8"))
    c = side["check"]
    said = points_line(c["accuracy_lost"], "accuracy", "X").removesuffix(" on X")
    assert said in " ".join(r.stderr.split())
    assert side["int8"] and c["tolerance"] is None and c["images"] == 9
    assert abs(c["accuracy_lost"]) <= INT8_BOUND and c["top1_agreement"] >= 1 - INT8_BOUND
    assert (trained["out"] / "q.tflite").stat().st_size > 0


def test_a_failed_check_leaves_nothing(trained, cli, monkeypatch):
    from cnncli.export import check

    monkeypatch.setattr(check, "FLOAT_TOLERANCE", -1.0)  # nothing can agree this well
    out = trained["root"] / "fail"
    out.mkdir()
    r = cli("export", trained["path"], "--format", "onnx", "-o", out / "m.onnx")
    assert r.exit_code == 1 and "nothing was written" in r.stderr
    assert list(out.iterdir()) == []


def test_bad_inputs_are_one_line_each(trained, cli, tmp_path, tiny):
    path, ds = trained["path"], trained["ds"]
    tiny.make_images(tmp_path / "big", tiny.SHAPES, per_class=4, size=(16, 16))
    big = tiny.build(tmp_path / "big", tmp_path / "bigds")
    existing = trained["results"]["onnx"].path
    cases = [
        (
            ["--format", "coreml"],
            "unknown export format 'coreml': use --format savedmodel|litert|onnx",
        ),
        (["--format", "litert", "--int8"], "--int8 needs --calibration DATASET_DIR"),
        (["--format", "onnx", "--int8", "--calibration", ds], "quantizes LiteRT files only"),
        (
            ["--format", "litert", "--check", big, "-o", tmp_path / "x.tflite"],
            "holds 16x16 RGB (stretch) images but the model takes 8x8 RGB",
        ),
        (
            ["--format", "litert", "--int8", "--calibration", big, "-o", tmp_path / "x.tflite"],
            "holds 16x16 RGB (stretch) images but the model takes 8x8 RGB",
        ),
        (["--format", "onnx", "-o", existing], "--overwrite"),
        (["--format", "onnx", "-o", tmp_path / "x.tflite"], "must end in .onnx"),
    ]
    for args, words in cases:
        r = cli("export", path, *args)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert not (tmp_path / "x.tflite").exists()


def test_missing_extra_names_the_pip_command(trained, cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    r = cli("export", trained["path"], "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert r.exit_code == 2
    assert "onnxruntime" in r.stderr and "pip install 'cnncli[export]'" in r.stderr


def test_code_in_the_model_is_refused_unless_unsafe(cli, tmp_path):
    import keras

    from cnncli.models.io import save_model

    m = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Lambda(lambda t: t * 2),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    save_model(m, tmp_path / "code.keras", {"class_names": ["a", "b"]})
    r = cli("export", tmp_path / "code.keras", "--format", "onnx", "-o", tmp_path / "c.onnx")
    assert r.exit_code == 1 and "Lambda" in r.stderr and "--unsafe" in r.stderr
    assert not (tmp_path / "c.onnx").exists()


def test_exported_file_without_its_sidecar(trained, cli, tmp_path):
    import shutil

    lone = tmp_path / "lone_sm"  # a SavedModel folder has nothing else to read it from
    shutil.copytree(trained["results"]["savedmodel"].path, lone)
    r = cli("predict", lone, trained["root"] / "images" / "circle")
    assert r.exit_code == 2 and "lone_sm.cnncli.json" in r.stderr


def test_lone_onnx_and_tflite_are_read_without_their_sidecar(trained, cli, tmp_path, tiny):
    """issue 28 §11: an .onnx from its metadata_props; a .tflite with --classes/--scale."""
    images = trained["root"] / "images" / "circle"
    with_side = cli("predict", trained["results"]["onnx"].path, images, "--json")
    want = [p["probability"] for p in json.loads(with_side.stdout)["predictions"]]
    for fmt, suffix in (("onnx", ".onnx"), ("litert", ".tflite")):
        lone = tmp_path / f"lone{suffix}"
        lone.write_bytes(trained["results"][fmt].path.read_bytes())
        extra = [] if fmt == "onnx" else ["--classes", ",".join(tiny.SHAPES), "--scale", "1"]
        r = cli("predict", lone, images, "--json", *extra)
        assert r.exit_code == 0, r.stderr
        data = json.loads(r.stdout)
        got = [p["probability"] for p in data["predictions"]]
        assert np.allclose(got, want, atol=1e-5)
        assert {p["class"] for p in data["predictions"]} <= set(tiny.SHAPES)
        said = "read from its metadata_props" if fmt == "onnx" else "read as a model saved"
        assert f"no sidecar beside lone{suffix}: {said}" in r.stderr
    bare = cli("predict", tmp_path / "lone.tflite", images, "--json")
    assert bare.exit_code == 0 and "class names: the output indices 0, 1, 2" in bare.stderr
    assert json.loads(bare.stdout)["predictions"][0]["class"] in {"0", "1", "2"}


def test_bad_requests_fail_before_tensorflow_loads(trained, fresh_cli, tmp_path):
    results, heavy = fresh_cli(
        [
            ["export", trained["path"], "--format", "tflite"],
            ["export", trained["path"], "--format", "litert", "--int8"],
            ["export", trained["path"], "--format", "onnx", "-o", trained["results"]["onnx"].path],
        ],
        tmp_path,
    )
    assert [code for code, _ in results] == [2, 2, 2]
    assert heavy == []


def test_looking_inside_an_exported_model_names_the_keras_file(trained, cli, tmp_path):
    image = sorted((trained["root"] / "images" / "circle").glob("*.png"))[0]
    r = cli("activations", trained["results"]["onnx"].path, image, "-o", tmp_path / "a")
    assert r.exit_code == 1 and "has no Keras layers to look inside" in r.stderr


def test_without_a_dataset_the_check_uses_sample_images(trained, cli, tmp_path):
    out = tmp_path / "sm"
    r = cli("export", trained["path"], "--format", "savedmodel", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    check = json.loads(r.stdout)["check"]
    assert check["images_from"] == "sample data" and check["images"] == 16
    assert check["passed"] and check["keras_accuracy"] is None
    assert (out / "saved_model.pb").is_file() and (tmp_path / "sm.cnncli.json").is_file()
