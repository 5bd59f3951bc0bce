"""cnncli.training (fit, model, options): the run folder, resume equivalence, interruption,
bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cnncli.errors import DatasetError, InputError, ModelError, OutputExistsError, UsageError


@pytest.fixture(scope="session")
def make_dataset(write_image):
    """make_dataset(root, classes, n, size) -> a learnable dataset of stripes, built at root/ds."""

    def make(root, classes=("brick", "marble"), n=12, size=16, **kw):
        from cnncli.datasets.build import build_dataset

        rng = np.random.default_rng(2)
        for k, c in enumerate(classes):
            for i in range(n):
                arr = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
                arr[:, : (k + 1) * size // (len(classes) + 1)] += 120  # learnable
                write_image(root / "images" / c / f"{i}.png", arr)
        build_dataset(root / "images", root / "ds", val=0.25, workers=1, **kw)
        return root / "ds"

    return make


@pytest.fixture(scope="module")
def ds2(tmp_path_factory, make_dataset):
    return make_dataset(tmp_path_factory.mktemp("train2"))


def tiny(shape=(16, 16, 3), units=1, act="sigmoid", seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(units, activation=act),
        ],
        name="tiny_test",
    )


def opts(**kw):
    from cnncli.training.options import TrainOptions

    return TrainOptions(**{"epochs": 2, "batch_size": 8, **kw})


def test_short_run_writes_the_run_folder(ds2, tmp_path):
    from cnncli.datasets.store import open_dataset
    from cnncli.training.fit import train

    run = tmp_path / "run"
    result = train(ds2, run, model=tiny(), options=opts(save_best_only=False))
    assert result.epochs_run == 2 and len(result.history) == 2
    names = sorted(p.name for p in run.iterdir())
    for name in (
        "best.keras",
        "last.keras",
        "checkpoints",
        "history.csv",
        "history.png",
        "run.json",
        "state",
    ):
        assert name in names
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    vl = [r["val_loss"] for r in result.history]
    assert ckpts == [f"save-{e + 1:02d}-{v:.4f}.keras" for e, v in enumerate(vl)]
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert float(rows[1]["val_loss"]) == pytest.approx(vl[1])
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    meta = json.loads((run / "run.json").read_text())
    info = open_dataset(ds2)
    assert meta["status"] == "finished"
    assert meta["dataset"]["sha256"] == info.sha256
    assert meta["options"]["epochs"] == 2 and meta["options"]["batch_size"] == 8
    assert set(meta["versions"]) >= {"cnncli", "tensorflow", "keras", "python"}
    assert len(meta["epoch_seconds"]) == 2 and all(s > 0 for s in meta["epoch_seconds"])
    best = int(np.argmin(vl)) + 1
    assert meta["best"]["epoch"] == best and meta["best"]["value"] == pytest.approx(min(vl))
    assert meta["metadata"]["class_names"] == ["brick", "marble"]
    assert meta["metadata"]["pixel_scale"] == 1.0
    assert meta["model"]["head"] == "binary"

    # the saved model takes raw pixels and reproduces the validation loss of its epoch
    import keras

    from cnncli.datasets.tfdata import make_tf_dataset

    model = keras.models.load_model(run / "last.keras", compile=False)
    x, y = next(iter(make_tf_dataset(info, "val", batch_size=100)))
    p = model.predict(x, verbose=0)[:, 0].astype(np.float64)
    yv = y.numpy()
    bce = -np.mean(yv * np.log(np.clip(p, 1e-7, 1)) + (1 - yv) * np.log(np.clip(1 - p, 1e-7, 1)))
    assert bce == pytest.approx(vl[-1], rel=1e-4)


class InterruptAt(__import__("keras").callbacks.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) before the given global step."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt


def _weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def test_the_train_step_is_traced_once(ds2, tmp_path, monkeypatch):
    """The model, its optimizer and its metrics are built before fit: built while Keras
    traces the first step, TensorFlow traced that step twice (0.9-1.9 s of a short run)."""
    import keras

    from cnncli.training.fit import train

    traced = []
    step = keras.Model.train_step

    def counted(self, data):  # runs when TensorFlow traces the step
        traced.append(1)
        return step(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counted)
    train(ds2, tmp_path / "run", model=tiny(), options=opts(epochs=2, ema=0.9))
    assert len(traced) == 1


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(ds2, tmp_path):
    from cnncli.errors import ExitCode
    from cnncli.training.events import TrainingInterrupted
    from cnncli.training.fit import resume, train

    o = dict(epochs=3, seed=5, steps_per_execution=1)  # a step at a time: stop mid-epoch
    full = train(ds2, tmp_path / "full", model=tiny(seed=5), options=opts(**o))
    steps = 3  # 18 train images / batch 8
    with pytest.raises(TrainingInterrupted) as exc:
        train(
            ds2,
            tmp_path / "cut",
            model=tiny(seed=5),
            options=opts(**o),
            callbacks=[InterruptAt(2 * steps + 1)],
        )
    assert exc.value.exit_code == ExitCode.INTERRUPTED == 130
    assert "interrupted after 2 finished epoch(s)" in str(exc.value)
    assert f"cnncli train --resume {tmp_path / 'cut'}" in str(exc.value)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"

    # a kill -9 between writing history.csv and committing the state leaves an extra row
    hist = tmp_path / "cut" / "history.csv"
    hist.write_text(hist.read_text() + "3,0.5,0.5,0.5,0.5\n")

    resumed = resume(tmp_path / "cut")
    assert resumed.resumed_from == 2 and resumed.epochs_run == 3
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(full.history, resumed.history, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
    with open(hist, newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    for wa, wb in zip(
        _weights(tmp_path / "full/last.keras"), _weights(tmp_path / "cut/last.keras"), strict=True
    ):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert full.best_epoch == resumed.best_epoch
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "finished"
    # nothing more to do
    with pytest.raises(UsageError, match="already finished 3 of 3 epochs"):
        resume(tmp_path / "cut")


def test_early_stop_and_class_weights_and_categorical_head(tmp_path, make_dataset):
    from cnncli.datasets.store import open_dataset
    from cnncli.training.fit import train
    from cnncli.training.model import class_weights

    ds3 = make_dataset(tmp_path, classes=("a", "b", "c"), n=8)
    r = train(
        ds3,
        tmp_path / "run",
        model=tiny(units=3, act="softmax"),
        options=opts(epochs=6, early_stop=1, monitor="accuracy", class_weight="auto", lr=1e-9),
    )
    # learning rate ~0: accuracy never improves after epoch 1, so patience 1 stops at 2
    assert r.stopped_early and r.epochs_run == 2
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["model"]["head"] == "categorical" and meta["status"] == "early-stopped"
    assert meta["model"]["loss"] == "SparseCategoricalCrossentropy"
    w = class_weights(open_dataset(ds3))
    assert w == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0})


def test_default_run_folder_names(tmp_path):
    from cnncli.training.rundir import default_run_dir

    root = tmp_path / "runs"
    assert default_run_dir(root) == root / "train"
    (root / "train").mkdir(parents=True)
    assert default_run_dir(root) == root / "train2"
    (root / "train2").mkdir()
    (root / "train7").mkdir()
    assert default_run_dir(root) == root / "train3"


def test_bad_inputs(ds2, tmp_path, make_dataset):
    import shutil

    from cnncli.training.events import TrainingInterrupted
    from cnncli.training.fit import resume, train

    with pytest.raises(DatasetError, match="not found"):
        train(tmp_path / "nope", tmp_path / "r0", model=tiny(), options=opts())
    # another format version
    other = tmp_path / "v9"
    shutil.copytree(ds2, other)
    m = json.loads((other / "manifest.json").read_text())
    m["format_version"] = 9
    (other / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="format version 9"):
        train(other, tmp_path / "r1", model=tiny(), options=opts())
    # incomplete: a shard missing
    inc = tmp_path / "inc"
    shutil.copytree(ds2, inc)
    next(inc.glob("train-*.tfrecord")).unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        train(inc, tmp_path / "r2", model=tiny(), options=opts())
    # an architecture that does not fit the data
    with pytest.raises(ModelError, match=r"expects images of shape 28x28x1 but .* 16x16x3"):
        train(ds2, tmp_path / "r3", model=tiny(shape=(28, 28, 1)), options=opts())
    with pytest.raises(ModelError, match="output has 10 unit"):
        train(ds2, tmp_path / "r4", model=tiny(units=10, act="softmax"), options=opts())
    for name in ("r0", "r1", "r2", "r3", "r4"):
        assert not (tmp_path / name).exists()  # nothing written for a refused run
    with pytest.raises(UsageError, match="cannot be filled"):
        train(ds2, tmp_path / "r5", model=tiny(), options=opts(checkpoint="c-{val_acc}.keras"))
    with pytest.raises(UsageError, match="unknown optimizer 'adamw'"):
        train(ds2, tmp_path / "r6", model=tiny(), options=opts(optimizer="adamw"))

    # existing output: refused, untouched
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        train(ds2, out, model=tiny(), options=opts())
    assert (out / "keep.txt").read_text() == "mine"

    # --resume with another dataset
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(ds2, run, model=tiny(), options=opts(), callbacks=[InterruptAt(3)])
    with pytest.raises(InputError, match="trained on another dataset"):
        resume(run, dataset_dir=make_dataset(tmp_path / "other", n=6))
    with pytest.raises(InputError, match="no run.json"):
        resume(tmp_path / "exists")


def test_augmentation_is_active_only_in_training(ds2):
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.training.augment import AugmentOptions
    from cnncli.training.model import build_training_model

    info = open_dataset(ds2)
    arch = tiny()
    aug = AugmentOptions.course(zoom=0.3)
    assert aug == AugmentOptions(rotation=40, shift=0.1, shear=0.2, zoom=0.3, flip=True)
    net = build_training_model(arch, info, aug)
    plain = build_training_model(arch, info, None)  # the same architecture layers, no augmentation
    names = [layer.name for layer in net.layers]
    assert names[:7] == [
        "pixels",
        "rescale",
        "aug_flip",
        "aug_rotation",
        "aug_shift",
        "aug_shear",
        "aug_zoom",
    ]
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(net(x, training=False), plain(x, training=False), rtol=1e-6)
    # in training the augmentation changes what the layers after it see
    feats = keras.Model(net.input, net.get_layer("aug_zoom").output)
    assert not np.allclose(feats(x, training=True), x / 255.0, atol=1e-3)
    np.testing.assert_allclose(feats(x, training=False), x / 255.0, rtol=1e-6)
    with pytest.raises(UsageError, match="rotation must be 0..180 degrees, got 200"):
        AugmentOptions(rotation=200).check()


def test_a_model_with_augmentation_saves_and_loads_again(ds2, tmp_path):
    """Keras 3.15's RandomShear writes a config it cannot read back; cnncli's loads, with the
    same shear range, and saves again loadably (resume saves every epoch)."""
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.training.augment import AugmentOptions, make_shear_portable
    from cnncli.training.model import build_training_model

    net = build_training_model(tiny(), open_dataset(ds2), AugmentOptions.course())
    first = tmp_path / "aug.keras"
    net.save(first)
    loaded = keras.models.load_model(first)
    assert loaded.get_layer("aug_shear").x_factor == pytest.approx((-0.2, 0.2))
    make_shear_portable(loaded)
    loaded.save(tmp_path / "again.keras")
    keras.models.load_model(tmp_path / "again.keras")
    bare = keras.layers.RandomShear(0.2, 0.2)  # the Keras bug this works around
    with pytest.raises((TypeError, ValueError)):
        keras.layers.RandomShear.from_config(bare.get_config())


def test_head_of_a_nested_model_and_stacked_augmentation(ds2, tmp_path):
    """A functional architecture is nested in the training model: its sigmoid must still be
    seen (no from_logits); augmentation options on a model that has augmentation refuse."""
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.models.head import Head
    from cnncli.training.augment import AugmentOptions
    from cnncli.training.fit import train
    from cnncli.training.model import build_training_model, training_head

    inner = tiny()
    functional = keras.Model(inner.inputs, inner.outputs, name="functional_tiny")
    info = open_dataset(ds2)
    net = build_training_model(functional, info, None)
    assert type(net.layers[-1]).__name__ == "Functional"  # nested, last layer is the model
    assert training_head(net, 2) == Head("binary", from_logits=False, units=1)
    logits = tiny(act=None)
    assert training_head(
        build_training_model(keras.Model(logits.inputs, logits.outputs), info, None), 2
    ) == Head("binary", True, 1)

    aug = AugmentOptions.course()
    with_aug = build_training_model(tiny(), info, aug)
    with pytest.raises(UsageError, match=r"already has augmentation layers \(aug_flip, "):
        build_training_model(with_aug, info, aug)
    # and through train(): refused before anything is written
    with pytest.raises(UsageError, match="leave out --augment"):
        train(ds2, tmp_path / "r", model=with_aug, options=opts(augment=aug))
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["one-device", "mirrored"])
def test_one_machine_strategies_train_like_the_default(ds2, tmp_path, strategy):
    """OneDeviceStrategy and MirroredStrategy (one CPU here) give the default path's run:
    the same history for the same seed (no batch is taken from the first epoch)."""
    from cnncli.training.fit import train

    plain = train(ds2, tmp_path / "plain", model=tiny(), options=opts())
    r = train(ds2, tmp_path / strategy, model=tiny(), options=opts(), strategy=strategy)
    meta = json.loads((tmp_path / strategy / "run.json").read_text())
    assert meta["distribute"]["strategy"] == strategy
    for a, b in zip(plain.history, r.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_saved_models_leave_augmentation_out_and_resume_keeps_it(ds2, tmp_path):
    """best/last/checkpoints hold no augmentation layers (no no-op maps in activations, no
    Random* rows in summary) and give the training model's outputs; the resume state keeps
    the augmentation, so an interrupted and resumed run equals an uninterrupted one."""
    import keras

    from cnncli.models.io import load_model
    from cnncli.training.augment import AugmentOptions, existing_augmentation
    from cnncli.training.callbacks import load_variables
    from cnncli.training.events import TrainingInterrupted
    from cnncli.training.fit import resume, train

    o = dict(
        epochs=2,
        seed=3,
        augment=AugmentOptions.course(),
        save_best_only=False,
        steps_per_execution=1,
    )
    full = train(ds2, tmp_path / "full", model=tiny(seed=3), options=opts(**o))
    with pytest.raises(TrainingInterrupted):
        train(
            ds2,
            tmp_path / "cut",
            model=tiny(seed=3),
            options=opts(**o),
            callbacks=[InterruptAt(3 + 1)],
        )
    resumed = resume(tmp_path / "cut")
    for a, b in zip(full.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)

    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    state = keras.models.load_model(tmp_path / "cut/state/model.keras")
    load_variables(state, tmp_path / "cut/state/epoch-0002.npz")
    assert existing_augmentation(state)[:2] == ["aug_flip", "aug_rotation"]
    for run in ("full", "cut"):
        files = ["best.keras", "last.keras", *sorted((tmp_path / run / "checkpoints").iterdir())]
        for name in files:
            model = load_model(tmp_path / run / name).model
            assert existing_augmentation(model) == [], (run, name)
            assert [type(layer).__name__ for layer in model.layers] == [
                "InputLayer",
                "Rescaling",
                "Conv2D",
                "MaxPooling2D",
                "Flatten",
                "Dropout",
                "Dense",
            ], (run, name)
    last = load_model(tmp_path / "cut/last.keras").model
    np.testing.assert_allclose(last(x), state(x, training=False), rtol=1e-5)
    # load + evaluate works as on any compiled Keras model (the course's notebooks do it)
    assert keras.models.load_model(tmp_path / "full/best.keras").compiled


def test_checkpoint_pattern_without_a_folder_goes_to_checkpoints(ds2):
    from cnncli.datasets.store import open_dataset
    from cnncli.training.options import TrainOptions

    info = open_dataset(ds2)
    course = TrainOptions(checkpoint="save-{epoch:02d}-{val_loss:.4f}.h5").for_dataset(info)
    assert course.checkpoint == "checkpoints/save-{epoch:02d}-{val_loss:.4f}.h5"
    for kept in ("ck/e{epoch}.keras", "/abs/e{epoch}.h5"):
        assert TrainOptions(checkpoint=kept).for_dataset(info).checkpoint == kept
    with pytest.raises(UsageError, match="unknown --monitor 'val_acc': use one of loss, acc"):
        TrainOptions(monitor="val_acc").for_dataset(info)
