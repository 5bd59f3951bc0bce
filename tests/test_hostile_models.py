"""Hostile and inconsistent model files (issue 23): a SavedModel runs only with --unsafe, a
config that declares gigabytes of weights is refused before Keras builds it, an exported
model's sidecar is checked against the model itself (its sha256, its real input and output
shapes, an ONNX file's own metadata), what metadata and sidecars hold is bounded, a model
replaced under `evaluate --tune-thresholds` keeps its own thresholds, and bad exported files
are one line each (exit 2). Models are tiny and untrained: the checks are under test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnncli.errors import BusyError, ModelError, ModelFileError


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny):
    """A 3-class model (8x8) with its LiteRT and ONNX exports, and one 2-class model."""
    from cnncli.export.run import export_model

    root = tmp_path_factory.mktemp("hostile")
    tiny.make_images(root / "images", tiny.SHAPES, per_class=2)
    model = tiny.save_with_metadata(tiny.model(3), root / "m.keras", tiny.SHAPES)
    two = tiny.save_with_metadata(tiny.model(2, seed=1), root / "two.keras", ["cat", "dog"])
    out = root / "out"
    exports = {
        fmt: export_model(model, fmt, out / f"m{ext}").path
        for fmt, ext in (("litert", ".tflite"), ("onnx", ".onnx"))
    }
    image = sorted((root / "images" / "circle").glob("*.png"))[0]
    return {"root": root, "model": model, "two": two, "image": image, **exports}


def _copy_pair(src: Path, folder: Path, name: str | None = None) -> Path:
    """The exported file and its sidecar, copied into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / (name or src.name)
    shutil.copyfile(src, dst)
    shutil.copyfile(f"{src}.cnncli.json", f"{dst}.cnncli.json")
    return dst


def _edit_sidecar(path: Path, rehash: bool = False, **changes) -> dict:
    side_path = Path(f"{path}.cnncli.json")
    side = json.loads(side_path.read_text())
    side.update(changes)
    if rehash:  # the attacker writes both files: the digest matches
        from cnncli.models.sidecar import model_sha256

        side["model_sha256"] = model_sha256(path)
    side_path.write_text(json.dumps(side))
    return side


def _one_line_exit_2(r, *phrases) -> None:
    assert r.exit_code == 2, r.output
    assert "unexpected" not in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for phrase in phrases:
        assert phrase in r.stderr, r.stderr


# --- 1: a SavedModel is a program ------------------------------------------------------


def _hostile_savedmodel(folder: Path, victim: Path) -> Path:
    """A SavedModel whose serving function writes `victim`, with a sidecar as cnncli
    writes one (names, image, head, the folder's digest)."""
    import tensorflow as tf

    from cnncli.models.sidecar import model_sha256

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(victim), "owned")
            n = tf.shape(x)[0]
            return tf.fill([n, 3], 1 / 3)

    tf.saved_model.save(Hostile(), str(folder))
    side = {
        "format_version": 2,
        "format": "savedmodel",
        "int8": False,
        "task": "classify",
        "class_names": ["a", "b", "c"],
        "head": {"kind": "categorical", "from_logits": False, "units": 3},
        "image": {"height": 8, "width": 8, "color": "rgb", "fit": "stretch"},
        "pixel_scale": 1.0,
        "model_sha256": model_sha256(folder),
    }
    Path(f"{folder}.cnncli.json").write_text(json.dumps(side))
    return folder


def test_a_savedmodel_runs_its_code_only_with_unsafe(made, cli, tmp_path):
    victim = tmp_path / "victim.txt"
    folder = _hostile_savedmodel(tmp_path / "sm", victim)
    r = cli("predict", folder, made["image"])
    _one_line_exit_2(r, "TensorFlow program", "--unsafe")
    assert not victim.exists()
    tiny_ds = made["root"] / "ds"
    if not tiny_ds.exists():
        from cnncli.datasets.build import build_dataset

        build_dataset(made["root"] / "images", tiny_ds, val=0, test=0.5, seed=0, workers=1)
    r = cli("evaluate", folder, tiny_ds)
    _one_line_exit_2(r, "TensorFlow program")
    assert not victim.exists()
    r = cli("predict", folder, made["image"], "--unsafe", "--json")  # trusted: it runs
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "owned"


# --- 4: a config that declares gigabytes ------------------------------------------------


def _bomb(src: Path, dst: Path, layer: int, key: str, value) -> Path:
    with zipfile.ZipFile(src) as z:
        items = {i.filename: z.read(i.filename) for i in z.infolist()}
    config = json.loads(items["config.json"])
    config["config"]["layers"][layer]["config"][key] = value
    items["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    return dst


def test_a_config_declaring_huge_layers_is_refused_before_keras_builds(made, cli, tmp_path, tiny):
    import h5py

    from cnncli.models.io import load_model, save_model

    # tiny.model: [Input, Rescaling, Conv2D(2), GlobalAveragePooling2D, Dense]; sizes small enough
    # that the old code builds them in a moment (and then fails on the weights), large
    # enough to be far more than the file stores
    for layer, key, value in ((-1, "units", 3_000_000), (2, "filters", 2_000_000)):
        bomb = _bomb(made["model"], tmp_path / f"bomb_{key}.keras", layer, key, value)
        start = time.perf_counter()
        with pytest.raises(
            ModelFileError,
            match="its architecture declares at least .* of weights but the file stores",
        ):
            load_model(bomb)
        assert time.perf_counter() - start < 2
        _one_line_exit_2(cli("predict", bomb, made["image"]), "declares at least")
    h5 = tmp_path / "bomb.h5"  # the legacy format: the config is a root attribute
    save_model(tiny.model(3), h5, {"class_names": tiny.SHAPES})
    with h5py.File(h5, "a") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][-1]["config"]["units"] = 3_000_000
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelFileError, match="declares at least"):
        load_model(h5)


def test_the_weight_bound_never_exceeds_real_models(tmp_path):
    import keras

    from cnncli.models.backbones import build_backbone_model
    from cnncli.models.declared import check_declared_weights, declared_params
    from cnncli.models.presets import build_architecture

    models = [build_architecture(name) for name in ("mnist", "lenet5", "tiny")]
    models.append(
        build_backbone_model("mobilenetv2", (32, 32, 3), keras.layers.Dense(3), alpha=0.35)
    )
    for model in models:
        config = keras.saving.serialize_keras_object(model)
        config = json.loads(json.dumps(config, default=str))
        assert 0 < declared_params(config) <= model.count_params(), model.name
    small = models[-1]
    small.save(tmp_path / "bb.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "bb.keras").read("config.json"))
    check_declared_weights(tmp_path / "bb.keras", "keras", config)  # no error


@pytest.mark.slow
def test_the_weight_bound_never_exceeds_any_backbone_or_course_model():
    import keras

    from cnncli.models.backbones import BACKBONES, build_backbone_model
    from cnncli.models.declared import declared_params
    from cnncli.models.presets import ARCHITECTURES, build_architecture

    models = [build_architecture(name) for name in ARCHITECTURES]
    for name, bb in BACKBONES.items():
        size = max(bb.min_size, 32)
        models.append(build_backbone_model(name, (size, size, 3), keras.layers.Dense(5)))
    for model in models:
        name = model.name
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(model), default=str))
        assert 0 < declared_params(config) <= model.count_params(), name


# --- 7: sidecars checked against the model ----------------------------------------------


@pytest.mark.parametrize("fmt", ["litert", "onnx"])
@pytest.mark.parametrize(
    "changes, phrase",
    [
        (
            {
                "head": {"kind": "binary", "from_logits": False, "units": 1},
                "class_names": ["a", "b"],
            },
            "output unit",
        ),
        (
            {
                "head": {"kind": "categorical", "from_logits": False, "units": 10},
                "class_names": list("abcdefghij"),
            },
            "output unit",
        ),
        ({"image": {"height": 16, "width": 16, "color": "rgb"}}, "inputs but its sidecar"),
        ({"image": {"height": 8, "width": 8, "color": "grayscale"}}, "inputs but its sidecar"),
        ({"task": "bogus"}, "task 'bogus'"),
        (
            {
                "task": "multilabel",
                "head": {"kind": "multilabel", "from_logits": False, "units": 3},
                "thresholds": [0.5, 0.5],
            },
            "2 thresholds for 3 labels",
        ),
        ({"class_names": ["a", "a", "b"]}, "more than once"),
        ({"class_names": ["a", "b"]}, "names 2"),
        ({"pixel_scale": 1e308}, "pixel_scale"),
    ],
)
def test_a_sidecar_that_disagrees_with_its_model_is_refused(
    made, cli, tmp_path, fmt, changes, phrase
):
    path = _copy_pair(made[fmt], tmp_path)
    _edit_sidecar(path, **changes)
    r = cli("predict", path, made["image"])
    _one_line_exit_2(r)
    if fmt == "litert":  # (the ONNX file's own metadata may disagree first)
        assert phrase in r.stderr, r.stderr


def test_an_onnx_file_whose_own_metadata_disagrees_is_refused(made, cli, tmp_path):
    path = _copy_pair(made["onnx"], tmp_path)
    _edit_sidecar(path, class_names=["x", "y", "z"])
    _one_line_exit_2(cli("predict", path, made["image"]), "disagree on class_names")


# --- 8: the model and its sidecar switch together ---------------------------------------


def test_an_export_killed_between_its_renames_leaves_a_pair_that_is_refused(
    made, cli, tmp_path, monkeypatch
):
    from cnncli.export.run import export_model
    from cnncli.models.sidecar import model_sha256

    target = _copy_pair(made["litert"], tmp_path)
    side = json.loads(Path(f"{target}.cnncli.json").read_text())
    assert side["format_version"] == 2 and side["model_sha256"] == model_sha256(target)
    real = os.replace

    def killed(src, dst):  # the process dies just before the model's own rename
        if Path(dst) == target:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        export_model(made["two"], "litert", target, overwrite=True)
    monkeypatch.undo()
    assert json.loads(Path(f"{target}.cnncli.json").read_text())["class_names"] == ["cat", "dog"]
    r = cli("predict", target, made["image"])  # the old model beside the new sidecar
    _one_line_exit_2(r, "is not the model its sidecar", "export it again")


def test_an_old_sidecar_without_the_digest_is_accepted_with_a_note(made, cli, tmp_path):
    path = _copy_pair(made["litert"], tmp_path)
    side = json.loads(Path(f"{path}.cnncli.json").read_text())
    del side["model_sha256"]
    side["format_version"] = 1
    Path(f"{path}.cnncli.json").write_text(json.dumps(side))
    r = cli("predict", path, made["image"], "--csv")
    assert r.exit_code == 0, r.output
    assert "predates the check" in r.stderr
    side["format_version"] = 2  # a version 2 sidecar must have it
    Path(f"{path}.cnncli.json").write_text(json.dumps(side))
    _one_line_exit_2(cli("predict", path, made["image"]), "has no model_sha256")


# --- 11, 15: what metadata says is bounded ----------------------------------------------


@pytest.mark.parametrize(
    "meta, phrase",
    [
        ({"pixel_scale": 1e308}, "pixel_scale 1e+308, outside"),
        ({"pixel_scale": 1e-300}, "outside"),
        ({"class_names": ["a", "b", "a"]}, "names the class 'a' more than once"),
        ({"class_names": ["a", "b"]}, "names 2"),  # fewer names than the 3 outputs
    ],
)
def test_model_metadata_out_of_bounds_is_exit_2(made, cli, tmp_path, tiny, meta, phrase):
    from cnncli.models.io import save_model

    stored = {
        "class_names": tiny.SHAPES,
        "pixel_scale": 1.0,
        "image": {"height": 8, "width": 8, "color": "rgb"},
        **meta,
    }
    path = save_model(tiny.model(3), tmp_path / "m.keras", stored)
    _one_line_exit_2(cli("predict", path, made["image"]), phrase)


# --- 9: --tune-thresholds and a model replaced under it ----------------------------------


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory, write_image):
    import csv

    import keras

    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset
    from cnncli.export.run import export_model
    from cnncli.models.io import save_model
    from cnncli.training.rundir import model_metadata

    root = tmp_path_factory.mktemp("tune")
    rng = np.random.default_rng(3)
    rows = [["image", "tags"]]
    for i in range(16):
        arr = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        write_image(root / "images" / f"{i:02d}.png", arr)
        rows.append([f"{i:02d}.png", ";".join(t for k, t in enumerate("ab") if (i >> k) & 1)])
    with open(root / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    ds = build_dataset(
        root / "images",
        root / "ds",
        task="multilabel",
        label_col="tags",
        label_delim=";",
        labels=root / "table.csv",
        val=0.5,
        test=0,
        workers=1,
    ).out_dir
    models = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        net = keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Flatten(),
                keras.layers.Dense(2, activation="sigmoid"),
            ]
        )
        path = save_model(net, root / f"model{seed}.keras", model_metadata(open_dataset(ds)))
        models.append(path)
    tflite = export_model(models[0], "litert", root / "ml.tflite").path
    return {"ds": ds, "models": models, "tflite": tflite}


def _run_folder(tmp_path: Path, model: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    return Path(shutil.copy(model, run / "best.keras"))


def test_tune_thresholds_on_an_exported_model_is_refused_before_evaluating(
    multilabel, cli, monkeypatch
):
    import cnncli.inference.evaluate_tasks as tasks

    monkeypatch.setattr(tasks, "_run", lambda *a, **k: pytest.fail("it evaluated"))
    r = cli("evaluate", multilabel["tflite"], multilabel["ds"], "--tune-thresholds")
    _one_line_exit_2(r, "cannot store them", ".keras file it was exported from")


def test_a_model_replaced_during_tuning_keeps_its_own_thresholds(multilabel, tmp_path, monkeypatch):
    import cnncli.inference.evaluate_tasks as tasks
    from cnncli.inference.evaluate import evaluate
    from cnncli.models.io import read_metadata

    best = _run_folder(tmp_path, multilabel["models"][0])
    real = tasks.best_thresholds

    def replaced_meanwhile(*args):  # what training's hard-link-and-rename of best.keras does
        new = best.with_name(".best.keras.new")
        shutil.copyfile(multilabel["models"][1], new)
        os.replace(new, best)
        return np.array([0.9, 0.1])

    monkeypatch.setattr(tasks, "best_thresholds", replaced_meanwhile)
    with pytest.raises(ModelError, match="was replaced while"):
        evaluate(best, multilabel["ds"], split="val", tune_thresholds=True)
    assert best.read_bytes() == multilabel["models"][1].read_bytes()
    assert read_metadata(best)["thresholds"] == [0.5, 0.5]  # not the other model's
    monkeypatch.setattr(tasks, "best_thresholds", real)
    r = evaluate(best, multilabel["ds"], split="val", tune_thresholds=True)
    assert r.tuned and read_metadata(best)["thresholds"] == pytest.approx(r.thresholds, abs=1e-4)


def test_tuning_is_refused_while_a_training_writes_the_run_folder(multilabel, tmp_path):
    from cnncli.inference.evaluate import evaluate

    best = _run_folder(tmp_path, multilabel["models"][0])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom cnncli.claims import claim\n"
            "with claim(sys.argv[1], 'cnncli train'):\n    print('held', flush=True)\n"
            "    time.sleep(60)\n",
            str(best.parent),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match="being written by cnncli train"):
            evaluate(best, multilabel["ds"], split="val", tune_thresholds=True)
    finally:
        holder.kill()
        holder.wait()
    assert read_thresholds(best) == [0.5, 0.5]


def read_thresholds(path: Path):
    from cnncli.models.io import read_metadata

    return read_metadata(path)["thresholds"]


def test_what_a_killed_tuning_left_is_cleaned(multilabel, tmp_path):
    from cnncli.atomic import HOST_TAG
    from cnncli.inference.evaluate import evaluate

    best = _run_folder(tmp_path, multilabel["models"][0])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = best.with_name(f".best.keras.tmp-{dead.pid}-{HOST_TAG}beef.keras")
    left.write_bytes(best.read_bytes())
    evaluate(best, multilabel["ds"], split="val", tune_thresholds=True)
    assert not left.exists()


# --- 12: a full disk during export ------------------------------------------------------


def test_a_full_disk_during_export_names_the_disk(made, cli, tmp_path, monkeypatch):
    import cnncli.export.convert as convert

    def full(*args):
        raise RuntimeError(
            "{{function_node __wrapped__SaveV2_dtypes_4_device_/job:localhost}} "
            "/x/variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; "
            "No space left on device [Op:SaveV2]"
        )

    monkeypatch.setattr(convert, "_convert", full)
    out = tmp_path / "sm"
    r = cli("export", made["model"], "--format", "savedmodel", "-o", out)
    assert r.exit_code == 1, r.output
    assert "the disk is full" in r.stderr and str(out) in r.stderr
    assert "try another --format" not in r.stderr and not out.exists()


# --- 13: files a runtime cannot read ----------------------------------------------------


def test_bad_tflite_files_are_one_line_each(made, cli, tmp_path):
    data = made["litert"].read_bytes()
    rng = np.random.default_rng(0)
    flipped = bytearray(data)
    for i in rng.integers(0, len(data), 6):
        flipped[i] ^= 0xFF
    cases = {
        "empty": (b"", "is empty"),
        "garbage": (
            rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
            "not a valid TensorFlow Lite file",
        ),
        "cut": (data[: len(data) // 3], "not a valid TensorFlow Lite file"),
        "flipped": (bytes(flipped), "not a valid TensorFlow Lite file"),
    }
    for name, (content, phrase) in cases.items():
        path = _copy_pair(made["litert"], tmp_path, f"{name}.tflite")
        path.write_bytes(content)
        _edit_sidecar(path, rehash=True)
        _one_line_exit_2(cli("predict", path, made["image"]), phrase)


def _with_external(src: Path, folder: Path, location: str, dims=None) -> Path:
    """The ONNX export with its largest initializer's data moved to `location`."""
    import onnx

    model = onnx.load(str(src))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    data_file = folder / "weights.bin"
    data_file.write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    if dims is not None:
        del tensor.dims[:]
        tensor.dims.extend(dims)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    path = folder / "x.onnx"
    onnx.save(model, str(path))
    shutil.copyfile(f"{src}.cnncli.json", f"{path}.cnncli.json")
    _edit_sidecar(path, rehash=True)
    return path


def test_onnx_external_data_stays_in_its_folder_and_is_bounded(made, cli, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    inside = tmp_path / "model"
    inside.mkdir()
    ok = _with_external(made["onnx"], inside, "weights.bin")
    r = cli("predict", ok, made["image"], "--csv")
    assert r.exit_code == 0, r.output  # data beside the model: fine
    for location in ("../secret.bin", str(secret), "/dev/zero"):
        path = _with_external(made["onnx"], inside, location)
        _one_line_exit_2(
            cli("predict", path, made["image"]), "the ONNX file refers to data outside its folder"
        )
    path = _with_external(made["onnx"], inside, "weights.bin", dims=[1_000_000, 750_000])
    _one_line_exit_2(cli("predict", path, made["image"]), "declares 2.7 TB of data")


# --- 15: running an .onnx needs onnxruntime only -----------------------------------------


def test_predict_on_onnx_needs_only_onnxruntime(made, cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tf2onnx", "onnx") else real(name, *a),
    )
    r = cli("predict", made["onnx"], made["image"], "--csv")
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    r = cli("predict", made["onnx"], made["image"])
    _one_line_exit_2(r, "needs onnxruntime", "pip install onnxruntime")


def test_store_metadata_refuses_a_changed_file(made, tmp_path):
    from cnncli.models.io import store_metadata

    path = Path(shutil.copy(made["model"], tmp_path / "m.keras"))
    with pytest.raises(ModelError, match="was replaced"):
        store_metadata(path, {"pixel_scale": 0.5}, expect_sha256="0" * 64)
    with pytest.raises(ModelFileError, match="pixel_scale"):
        store_metadata(path, {"pixel_scale": 1e308})
