"""Recipes of `cnncli train` (cnncli.training.recipes, cnncli.models.small): the default
network designed for the dataset and recorded in run.json, `--recipe course` keeping the
course's settings, bad input; test-time augmentation (cnncli.inference.tta) against a hand
computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def _upscaled(root, classes=("a", "b", "c"), n=10, seed=0):
    """Class folders of 6x6 blobs (the class: where the blob is) upscaled bilinearly to
    30x30 RGB: pictures with far fewer pixels of detail than their size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:6, 0:6]
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cx, cy = 1 + 2 * k + rng.normal(0, 0.3), 2.5 + rng.normal(0, 0.5)
            arr = 200 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 2.0)
            arr = np.clip(arr + rng.integers(0, 20, (6, 6)), 0, 255).astype(np.uint8)
            Image.fromarray(np.repeat(arr[..., None], 3, 2)).resize(
                (30, 30), Image.Resampling.BILINEAR
            ).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def upscaled_ds(tmp_path_factory):
    from cnncli.datasets.build import build_dataset

    root = tmp_path_factory.mktemp("upscaled")
    build_dataset(_upscaled(root / "images"), root / "ds", val=0.2, seed=0, workers=1)
    return root / "ds"


def test_the_stem_and_widths_follow_the_images():
    from sklearn.datasets import load_digits

    from cnncli.errors import InputError
    from cnncli.models.small import design_small_network, image_detail

    rng = np.random.default_rng(0)
    eight = (load_digits().images * (255 / 16)).astype(np.uint8)
    for part in (eight[:256], eight[1000:1256]):
        up = np.stack(
            [
                np.asarray(Image.fromarray(a).resize((28, 28), Image.Resampling.BILINEAR))
                for a in part
            ]
        )[..., None]
        assert image_detail(up)[0] == 3  # 28x28 from 8x8: about 9x9 pixels of detail
    assert image_detail(rng.integers(0, 256, (16, 28, 28, 1)))[0] == 1  # noise: every pixel

    digits = design_small_network((28, 28, 1), 1437, detail=3)
    assert (digits.stem, digits.widths, digits.stages) == (3, [32, 64, 128], 1)
    layers = digits.spec()["layers"]
    assert layers[0] == {"AveragePooling2D": {"pool_size": 3}}
    assert {"BatchNormalization": {"momentum": 0.9}} in layers
    assert layers[-2] == {"GlobalAveragePooling2D": {}}

    photos = design_small_network((500, 500, 4), 31, detail=1)  # the façade set at 500x500
    assert photos.stem == 8 and photos.widths[:2] == [16, 32]  # brought to 62x62; few images
    assert "at most 64x64" in photos.reasons[0]
    assert photos.momentum == 0.9  # a run of many steps
    # 30 photos, one batch an epoch, a run that may stop at epoch 8: 0.69**8 < 0.05 of the
    # initial statistics left (0.9**8: 0.43, and one seed's model answered one class)
    short = design_small_network((500, 500, 4), 30, detail=1, min_steps=8)
    assert (
        short.momentum == 0.69
        and {"BatchNormalization": {"momentum": 0.69}} in (short.spec()["layers"])
    )
    assert short.reasons[-1] == "BatchNorm momentum 0.69: the run may be only 8 steps long"
    sharp = design_small_network((32, 32, 3), 5000, detail=1)
    assert sharp.stem == 1 and sharp.widths == [32, 64, 128, 128, 256] and sharp.stages == 3

    with pytest.raises(InputError) as e:
        design_small_network((6, 6, 3), 100)
    assert "6x6, too small for the default network (it takes at least 8x8)" in e.value.message


@pytest.mark.slow
def test_default_recipe_is_recorded_in_run_json(cli, upscaled_ds, tmp_path):
    run = tmp_path / "run"
    r = cli("train", upscaled_ds, "-o", run, "--epochs", "2")
    assert r.exit_code == 0, r.stderr
    assert "recipe fast (the default (no --arch/--spec/--from))" in r.stderr
    assert "network: small CNN for 30x30x3: average-pool 3 to 10x10" in r.stderr
    meta = json.loads((run / "run.json").read_text())
    recipe = meta["recipe"]
    assert recipe["name"] == "fast" and recipe["network"]["stem"] == 3
    assert recipe["network"]["widths"] == [16, 32, 64]  # 24 train images: the narrow widths
    assert meta["model"]["source"] == {"kind": "default", "value": "small_cnn"}
    opts = meta["options"]
    assert (opts["recipe"], opts["lr_schedule"], opts["label_smoothing"]) == (
        "fast",
        "onecycle",
        0.1,
    )
    assert opts["augment"]["flip"] is False and opts["augment"]["shift"] == 0.1
    assert meta["metadata"]["augment"]["flip"] is False  # what --tta reads
    assert opts["ema"] == 0.22  # a 2-step run: the first weights fade to 0.22**2 < 0.05
    with open(run / "history.csv") as f:
        header = f.readline().strip().split(",")
    assert "learning_rate" in header  # the one-cycle rate, logged per epoch

    from cnncli.models.io import load_model, read_config

    model = load_model(run / "best.keras").model
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:4] == ["InputLayer", "Rescaling", "AveragePooling2D", "Conv2D"]  # no aug
    # trained on one-hot labels with smoothing; saved for use with the plain sparse loss
    trained = read_config(run / "state" / "model.keras")["compile_config"]
    assert trained["loss"]["class_name"] == "CategoricalCrossentropy"
    assert trained["loss"]["config"]["label_smoothing"] == pytest.approx(0.1)
    assert trained["optimizer"]["config"]["use_ema"] is True
    saved = read_config(run / "best.keras")["compile_config"]
    assert saved["loss"]["class_name"] == "SparseCategoricalCrossentropy"


def test_course_recipe_keeps_the_course_settings(cli, upscaled_ds, tmp_path):
    from cnncli.datasets.store import open_dataset
    from cnncli.training.options import TrainOptions, model_source
    from cnncli.training.recipes import apply_recipe

    info = open_dataset(upscaled_ds)
    for given in ({"recipe": "course"}, {}):  # --arch alone: the course recipe
        opts, source, record = apply_recipe(TrainOptions(**given), info, model_source(arch="mnist"))
        opts = opts.for_dataset(info)
        assert record["name"] == "course" and (source.kind, source.value) == ("arch", "mnist")
        assert (opts.epochs, opts.batch_size, opts.optimizer, opts.lr) == (10, 32, "adam", None)
        assert (opts.lr_schedule, opts.label_smoothing, opts.ema, opts.augment) == (
            "constant",
            0.0,
            0.0,
            None,
        )

    run = tmp_path / "course"
    r = cli(
        "train",
        upscaled_ds,
        "--recipe",
        "course",
        "--arch",
        "tiny",
        "--epochs",
        "1",
        "-o",
        run,
        "--quiet",
    )
    assert r.exit_code == 0, r.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["recipe"] == {"name": "course", "why": "--recipe course"}
    with open(run / "history.csv") as f:
        assert f.readline().strip() == "epoch,accuracy,loss,val_accuracy,val_loss"
    from cnncli.models.io import read_config

    optimizer = read_config(run / "state" / "model.keras")["compile_config"]["optimizer"]
    assert optimizer["config"]["learning_rate"] == pytest.approx(0.001)  # Keras' Adam, constant
    assert optimizer["config"]["use_ema"] is False
    model = meta["model"]
    assert model["loss"] == "SparseCategoricalCrossentropy" and model["params"] == 435  # tiny


def test_fast_recipe_on_the_course_model(upscaled_ds):
    from cnncli.datasets.store import open_dataset
    from cnncli.training.augment import AugmentOptions
    from cnncli.training.options import TrainOptions, model_source
    from cnncli.training.recipes import apply_recipe

    info = open_dataset(upscaled_ds)
    given = TrainOptions(recipe="fast", lr=0.01, augment=AugmentOptions(flip=True))
    opts, source, record = apply_recipe(given, info, model_source(arch="mnist"))
    assert source.value == "mnist" and "network" not in record  # the course's model kept
    assert opts.lr == 0.01 and opts.lr_schedule == "onecycle"  # what is given wins
    assert opts.augment == AugmentOptions(rotation=10.0, shift=0.1, flip=True)  # --flip added
    # 24 images, one batch an epoch, a run that may stop at epoch 8: the weight average
    # forgets the first steps' weights (0.69**8 < 0.05; 0.9**8 = 0.43)
    assert opts.ema == 0.69 and record["settings"]["ema_momentum"] == 0.69


def test_bad_recipe_and_too_small_images(cli, upscaled_ds, tmp_path, tiny):
    r = cli("train", upscaled_ds, "--recipe", "quick", "-o", tmp_path / "r")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "unknown --recipe 'quick': use one of fast (" in r.stderr and "course (" in r.stderr
    r = cli(
        "train", upscaled_ds, "--recipe", "fast", "--backbone", "mobilenetv2", "-o", tmp_path / "r"
    )
    assert r.exit_code == 2 and "--recipe fast trains its own network" in r.stderr
    r = cli("train", upscaled_ds, "--arch", "tiny", "--spec", tmp_path / "x.yaml")
    assert r.exit_code == 2 and "at most one of --arch NAME, --spec FILE" in r.stderr

    from cnncli.datasets.build import build_dataset

    build_dataset(
        tiny.make_images(tmp_path / "im", ["a", "b"], 6, size=(6, 6)),
        tmp_path / "ds6",
        val=0.0,
        workers=1,
    )
    r = cli("train", tmp_path / "ds6", "-o", tmp_path / "r6")
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "error: the images are 6x6, too small for the default network (it takes at least "
        "8x8): rebuild the dataset with --size 8x8 or larger, or choose --arch/--spec"
    ]
    assert not (tmp_path / "r6").exists() and not (tmp_path / "r").exists()


def _edge_shift(x, dy, dx):
    """A shift written out by hand: pad with the edge pixels, then cut the window."""
    n, h, w, c = x.shape
    p = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
    return padded[:, p - dy : p - dy + h, p - dx : p - dx + w]


def test_tta_against_a_hand_computation(tiny, tmp_path):
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.model import open_model
    from cnncli.inference.tta import tta_probabilities

    ds = tiny.build(
        tiny.make_images(tmp_path / "im", tiny.SHAPES, 8, size=(8, 8)),
        tmp_path / "ds",
        val=0.0,
        test=0.5,
    )
    keras_model = tiny.model(3)
    x, y, _ = tiny.split_arrays(ds, "test")
    s = 1  # 4% of 8 pixels, at least one
    views = [x] + [_edge_shift(x, dy, dx) for dy, dx in ((0, -s), (0, s), (-s, 0), (s, 0))]
    by_hand = np.mean([keras_model.predict_on_batch(v / 255.0) for v in views], axis=0)
    plain = keras_model.predict_on_batch(x / 255.0)
    info = open_model(keras_model, pixel_scale=1 / 255)
    np.testing.assert_allclose(tta_probabilities(info, x), by_hand, rtol=1e-5, atol=1e-6)

    flipped = [v[:, :, ::-1] for v in views]  # a model trained with flips: mirrored views too
    with_flips = np.mean([keras_model.predict_on_batch(v / 255.0) for v in views + flipped], 0)
    info.augment = {"flip": True, "shift": 0.1}
    np.testing.assert_allclose(tta_probabilities(info, x), with_flips, rtol=1e-5, atol=1e-6)
    info.augment = {"flip": True, "shift": 0.0}  # flips without shifts: the mirror image only
    mirrored = np.mean([plain, keras_model.predict_on_batch(x[:, :, ::-1] / 255.0)], 0)
    np.testing.assert_allclose(tta_probabilities(info, x), mirrored, rtol=1e-5, atol=1e-6)
    info.augment = {"flip": False, "shift": 0.0}  # trained without either: the image alone
    np.testing.assert_allclose(tta_probabilities(info, x), plain, rtol=1e-5, atol=1e-6)

    path = tiny.save_with_metadata(keras_model, tmp_path / "m.keras", tiny.SHAPES, 1 / 255)
    result = evaluate(path, ds, split="test", tta=True)
    assert result.accuracy == pytest.approx(np.mean(by_hand.argmax(1) == y))
    assert result.tta["accuracy_without"] == pytest.approx(np.mean(plain.argmax(1) == y))
    assert result.tta["gain"] == pytest.approx(result.accuracy - result.tta["accuracy_without"])
    assert result.tta["views"] == (
        "5 views: the image and its shifts of 1 px left, right, up and down"
    )


def test_tta_through_the_cli(cli, tiny, tmp_path):
    from dataclasses import replace

    from cnncli.inference.model import open_model
    from cnncli.inference.predict import predict_batches

    images = tiny.make_images(tmp_path / "im", tiny.SHAPES, 6, size=(8, 8))
    ds = tiny.build(images, tmp_path / "ds", val=0.0, test=0.5)
    path = tiny.save_with_metadata(tiny.model(3), tmp_path / "m.keras", tiny.SHAPES, 1 / 255)
    r = cli("evaluate", path, ds, "--tta", "--no-confusion")
    assert r.exit_code == 0, r.stderr
    line = [x for x in r.stderr.splitlines() if x.startswith("--tta")]
    assert len(line) == 1 and "accuracy" in line[0] and " without, " in line[0]
    r = cli("predict", path, images / "circle", "--tta", "--json")
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["predictions"]) == 6

    regression = replace(open_model(path), task="regression")
    stream = predict_batches(regression, [images / "circle" / "0.png"], tta=True)
    assert stream.notes[-1] == (
        "--tta: a regression model's values are not averaged over "
        "shifted images (a shift can move what a target measures); "
        "predicted without it"
    )


@pytest.mark.slow
def test_default_beats_the_course_on_digits(tmp_path):
    """sklearn's digits as 28x28 class folders (20% test): the course's mnist model for its
    10 epochs stays near 0.93-0.95; the default recipe reaches 0.98 or more."""
    from sklearn.datasets import load_digits

    from cnncli.datasets.build import build_dataset
    from cnncli.inference.evaluate import evaluate
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = tmp_path / "digits" / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray((img * (255 / 16)).astype(np.uint8), "L")
        small.resize((28, 28), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
    ds = tmp_path / "ds"
    build_dataset(tmp_path / "digits", ds, val=0.0, test=0.2, seed=0)
    train(ds, tmp_path / "fast", options=TrainOptions(seed=0))
    train(ds, tmp_path / "course", arch="mnist", options=TrainOptions(seed=0))
    fast = evaluate(tmp_path / "fast" / "best.keras", ds, split="test").accuracy
    course = evaluate(tmp_path / "course" / "best.keras", ds, split="test").accuracy
    print(f"test accuracy: default {fast:.4f}, course mnist {course:.4f}")
    assert fast >= 0.98 and fast - course >= 0.02


@pytest.mark.slow
def test_resume_with_more_epochs_replans_the_one_cycle(upscaled_ds, tmp_path):
    """A fast run of 2 epochs resumed with --epochs 4: the epochs added follow the 4-epoch
    one-cycle from the step reached (not the 2-epoch cycle's floor), and say so."""
    import csv
    import math

    from cnncli.training.fit import resume, train
    from cnncli.training.options import TrainOptions

    run = tmp_path / "run"
    train(upscaled_ds, run, options=TrainOptions(epochs=2, batch_size=8))  # 24 images: 3 steps
    resume(run, epochs=4)
    with open(run / "history.csv", newline="") as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]

    def onecycle(step, total, peak=0.005):  # warm-up over a quarter, then cosine to 1%
        warm = round(total * 0.25)
        if step < warm:
            return peak * (0.1 + 0.9 * step / warm)
        t = (step - warm) / (total - warm)
        return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))

    first = [onecycle(s, 6) for s in (0, 3)]  # the first 2 epochs as planned
    added = [onecycle(s, 12) for s in (6, 9)]  # epochs 3 and 4 of a 4-epoch cycle
    assert rates == pytest.approx(first + added, rel=1e-4)
    assert added[0] > 50 * onecycle(6, 6)  # not the 2-epoch cycle's floor
    said = json.loads((run / "run.json").read_text())["resumes"][-1]["schedule"]
    assert said.startswith("one-cycle rate re-planned over 4 epochs (it was planned for 2): ")
    assert f"epoch 3 starts at {added[0]:.3g} where a 4-epoch run would be" in said


@pytest.mark.slow
def test_a_perfect_accuracy_ends_the_fast_recipe_early(tmp_path):
    """The recipe's 30 epochs of 30 easy images (no val split: the training accuracy is
    watched): once it is 1.0 for 3 epochs, the one-cycle is re-planned to end 2 epochs later
    (at least 8 in all), where the run finishes with run.json's epochs and the rate near its
    floor; with --epochs the user's total stands."""
    import csv

    from cnncli.datasets.build import build_dataset
    from cnncli.training.events import TrainEvents
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    said = []

    class Notes(TrainEvents):
        def note(self, text):
            said.append(text)

    ds = tmp_path / "ds"
    build_dataset(_upscaled(tmp_path / "images"), ds, val=0.0, seed=0, workers=1)
    import keras

    weights = []

    class Weights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append(np.concatenate([w.ravel() for w in self.model.get_weights()]))

    run = tmp_path / "run"
    result = train(ds, run, options=TrainOptions(), events=Notes(), callbacks=[Weights()])
    meta = json.loads((run / "run.json").read_text())
    assert (
        meta["recipe"]["settings"]["epochs"] == 30 and meta["recipe"]["settings"]["until_saturated"]
    )
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    perfect = [i for i, r in enumerate(rows) if float(r["accuracy"]) >= 1.0]
    first = next(i for i in perfect if {i, i + 1, i + 2} <= set(perfect))  # 3 in a row
    end = max(first + 3 + 2, 8)
    assert len(rows) == end == result.epochs_run == meta["options"]["epochs"] < 30
    assert meta["status"] == "finished" and not result.stopped_early
    assert said == [meta["recipe"]["saturated"]]
    assert said[0] == (
        f"accuracy 1.0 for 3 epochs (epochs {first + 1}-{first + 3}): the one-cycle rate now "
        f"ends at epoch {end} instead of 30, where the weight average lands"
    )
    # the last epoch trains near the floor (1% of the peak 0.005), not at the 30-epoch rate
    assert float(rows[-1]["learning_rate"]) < 0.15 * 0.005
    # ... in the traced step too: the first re-planned epoch moves the weights far less
    # than the one before (the 30-epoch cycle was still rising there)
    moved = [float(np.abs(b - a).mean()) for a, b in zip(weights, weights[1:], strict=False)]
    assert moved[first + 3 - 1] < 0.6 * moved[first + 3 - 2]

    from cnncli.datasets.store import open_dataset
    from cnncli.training.options import model_source
    from cnncli.training.recipes import apply_recipe

    given = apply_recipe(TrainOptions(epochs=12), open_dataset(ds), model_source())[2]
    assert given["settings"]["epochs"] == 12 and "until_saturated" not in given["settings"]


@pytest.mark.parametrize(
    ("train_images", "epochs", "saturating"),
    [(1437, 5, False), (480, 15, True), (30, 30, True), (60_000, 5, False)],
)
def test_fast_recipe_epochs_follow_the_steps(train_images, epochs, saturating):
    """About FAST_STEPS steps at batch 32, 5 to 30 epochs: the digits (45 steps an epoch)
    train 5 epochs, not 9 (as accurate, 2 s sooner); only a run of more than 8 epochs may
    end early once its accuracy is perfect."""
    from types import SimpleNamespace

    from cnncli.training.options import TrainOptions, model_source
    from cnncli.training.recipes import apply_recipe

    info = SimpleNamespace(
        count=lambda split: train_images if split == "train" else 0,
        class_names=[f"c{i}" for i in range(10)],
        task="classify",
        image=SimpleNamespace(shape=(28, 28, 1)),
    )
    opts = TrainOptions(recipe="fast", batch_size=32)
    filled, _, record = apply_recipe(opts, info, model_source(arch="mnist"))
    assert filled.epochs == record["settings"]["epochs"] == epochs
    assert record["settings"].get("until_saturated", False) is saturating
    if saturating:
        assert record["settings"]["least_epochs"] == 8
