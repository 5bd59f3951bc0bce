"""cnncli.models.backbones and cnncli.training.phases: offline weights (a file the test makes,
the official name found in $KERAS_HOME/models, a file for another backbone refused), the
preprocessing and colour conversion inside the model, two-phase training resumed across
the phase change, the summary's backbone row, bad inputs before TensorFlow loads."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cnncli.errors import InputError, UsageError

SMALL = {"backbone": "mobilenet", "alpha": 0.25}  # the smallest backbone: the run tests
V2 = {"backbone": "mobilenetv2", "alpha": 0.35}  # MobileNetV2 at its smallest


@pytest.fixture(scope="module")
def gray32(tmp_path_factory, tiny):
    """A 2-class grayscale dataset of 32x32 images (the smallest input of the backbones)."""
    from cnncli.datasets.build import build_dataset

    root = tmp_path_factory.mktemp("bb")
    images = tiny.make_images(root / "images", ("brick", "marble"), per_class=6, size=(32, 32))
    build_dataset(images, root / "ds", val=0, test=0, workers=1, size=(32, 32), color="grayscale")
    return root / "ds"


@pytest.fixture(scope="module")
def two_phase(gray32, tmp_path_factory):
    """Epoch 1 trains the head (backbone frozen), epoch 2 fine-tunes; resumed after the
    phase change (--resume --epochs 3), epoch 3 fine-tunes on."""
    from cnncli.training.fit import resume, train
    from cnncli.training.options import TrainOptions

    run = tmp_path_factory.mktemp("runs") / "two"
    opts = TrainOptions(
        **SMALL,
        weights="none",
        epochs=2,
        fine_tune_at=2,
        unfreeze=4,
        lr=1e-3,
        batch_size=16,
        seed=1,
    )
    train(gray32, run, options=opts)
    resume(run, epochs=3)
    return run


def _backbone_weights(model):
    from cnncli.models.backbones import backbone_of

    return backbone_of(model).get_weights()


@pytest.mark.slow
def test_two_phase_run_resumed_after_the_phase_change(two_phase):
    from cnncli.inference.model import open_model
    from cnncli.models.backbones import backbone_of

    with open(two_phase / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [float(r["phase"]) for r in rows] == [1.0, 2.0, 2.0]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([1e-3, 1e-5, 1e-5])
    run = json.loads((two_phase / "run.json").read_text())
    assert run["status"] == "finished" and run["resumes"][0]["at_epoch"] == 2
    assert run["model"]["source"] == {"kind": "backbone", "value": "mobilenet"}
    # the resumed second phase: the top 4 weighted layers trainable, BatchNorm kept frozen
    import keras

    last = keras.models.load_model(two_phase / "last.keras", compile=False)
    trainable = [la.name for la in backbone_of(last).layers if la.weights and la.trainable]
    assert trainable == ["conv_dw_13", "conv_pw_13"]
    assert (two_phase / "history.png").is_file()
    # a grayscale dataset, raw pixels, no --unsafe: the conversion and scaling are layers
    opened = open_model(two_phase / "best.keras")
    layer_names = [la.name for la in opened.model.layers]
    assert "to_rgb" in layer_names and "preprocess" in layer_names
    assert opened.model.input_shape == (None, 32, 32, 1)
    # activations and Grad-CAM see inside the backbone: one layer per resolution
    from cnncli.inference.gradcam import gradcam_target
    from cnncli.inference.trace import default_layers, trace_model

    probe = trace_model(opened.model)
    inside = [li for li in default_layers(probe.layers) if li.name.startswith("backbone/")]
    assert [li.shape[:2] for li in inside] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert gradcam_target(probe).name.startswith("backbone/conv_pw_13")


@pytest.mark.slow
def test_a_run_starts_from_a_weights_file_it_made(two_phase, gray32, tmp_path):
    """Pre-trained by the fixture's run: its model and a .weights.h5 saved from its backbone
    are both loaded into a new run's backbone, equal to the file's weights."""
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.models.backbones import backbone_for_run, backbone_of
    from cnncli.training.options import TrainOptions

    info = open_dataset(gray32)
    trained = keras.models.load_model(two_phase / "last.keras", compile=False)
    expected = _backbone_weights(trained)
    path = tmp_path / "pre.weights.h5"
    backbone_of(trained).save_weights(path)
    for weights in (two_phase / "last.keras", path):
        model = backbone_for_run(info, TrainOptions(**SMALL, weights=str(weights), freeze=True))
        got = _backbone_weights(model)
        assert len(got) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
        assert not backbone_of(model).trainable  # --freeze


def test_official_file_found_offline_and_a_wrong_one_refused(tmp_path, monkeypatch):
    """MobileNetV2 alpha 0.35 at 32x32: an official-format (Keras 2 HDF5) no-top file put in
    $KERAS_HOME/models under its official name is found and loaded; a MobileNetV2 file
    given to MobileNet is one line naming the file MobileNet expects."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from cnncli.models.backbones import build_backbone_model, get_backbone, resolve_weights

    bb = get_backbone("MobileNetV2")
    official = bb.weights_file(0.35, 32)
    assert official == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(InputError, match=f"{official} is not in {tmp_path / 'models'}"):
        resolve_weights(bb, 0.35, None, 32)
    source = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None
    )
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / official, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    found = resolve_weights(bb, 0.35, None, 32)
    assert found == tmp_path / "models" / official
    head = keras.layers.Dense(1, activation="sigmoid")
    model = build_backbone_model("mobilenetv2", (32, 32, 3), head, alpha=0.35, weights=found)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(_backbone_weights(model), source.get_weights(), strict=True)
    )
    with pytest.raises(InputError) as e:
        build_backbone_model(
            "mobilenet", (32, 32, 3), keras.layers.Dense(1), alpha=0.25, weights=found
        )
    assert "does not fit the mobilenet (alpha 0.25) backbone" in str(e.value)
    assert "expected mobilenet_2_5_224_tf_no_top.h5 (include_top=False)" in str(e.value)


def test_summary_shows_the_backbone_as_one_row(cli):
    r = cli(
        "summary", "--backbone", "mobilenetv2", "--alpha", "0.35", "--input", "32x32x3", "--json"
    )
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["backbone"]["frozen_params"] == rows["backbone"]["params"] == 410_208
    assert rows["backbone"]["trainable_params"] == 0
    assert data["trainable_params"] == 1281 and len(data["layers"]) == 6
    assert rows["preprocess"]["type"] == "Rescaling"  # MobileNetV2: [-1, 1]


def test_bad_inputs_are_one_line_before_tensorflow(gray32, tmp_path, fresh_cli):
    from cnncli.datasets.build import build_dataset

    small = tmp_path / "images"
    for c in ("a", "b"):
        for i in range(2):
            (small / c).mkdir(parents=True, exist_ok=True)
            from PIL import Image

            Image.new("RGB", (16, 16), (i * 9, 0, 0)).save(small / c / f"{i}.png")
    build_dataset(small, tmp_path / "ds16", val=0, workers=1, size=(16, 16))
    cases = {
        ("--backbone", "vgg99"): "unknown backbone 'vgg99': use one of mobilenet, mobilenetv2,",
        ("--arch", "tiny", "--freeze"): "--freeze needs a pretrained backbone: add --backbone",
        (
            "--backbone",
            "mobilenet",
            "--fine-tune-at",
            "5",
            "--epochs",
            "3",
        ): "--fine-tune-at 5 is beyond --epochs 3",
        (
            "--backbone",
            "mobilenet",
            "--weights",
            "none",
            "-o",
            str(tmp_path / "r"),
            "--ds16",
        ): "mobilenet needs images of at least 32x32 pixels; the dataset's are 16x16",
        ("--backbone", "mobilenet", "--weights", str(tmp_path / "nope.h5")): "weights file",
        ("--backbone", "resnet50", "--alpha", "0.5"): "--alpha is for MobileNet backbones",
        ("--arch", "tiny", "--lr-schedule", "linear"): "unknown --lr-schedule 'linear'",
    }
    runs = []
    for args in cases:
        data = tmp_path / "ds16" if "--ds16" in args else gray32
        runs.append(["train", data, *[a for a in args if a != "--ds16"]])
    results, heavy = fresh_cli(runs, tmp_path)
    for (code, err), (args, want) in zip(results, cases.items(), strict=True):
        assert code == 2, (args, err)
        assert want in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
    assert not heavy
    with pytest.raises(UsageError, match="--unfreeze says how many"):
        from cnncli.training.options import TrainOptions

        TrainOptions(**SMALL, unfreeze=3).check()
