"""One loaded-model adapter for the four commands that run a model: predict, evaluate,
activations and embed give the same class and probability for the same image, whatever the
head (sigmoid, softmax, one logit unit, several logit units); they see the same files of a
folder in the same order; they report progress the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnncli.inference.activations import activations
from cnncli.inference.embed import embed
from cnncli.inference.evaluate import evaluate
from cnncli.inference.model import open_model
from cnncli.inference.predict import predict

PER_CLASS = 3


def _model(units: int, activation: str | None, bias, scale: float, seed: int):
    """Input -> Conv2D -> GlobalAveragePooling2D -> Dense(units, activation) with the given
    bias: its output sits near `bias`, spread over the images by `scale`."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(units, activation=activation, name="head"),
        ]
    )
    w, _ = model.layers[-1].get_weights()
    model.layers[-1].set_weights([w * scale, np.asarray(bias, np.float32)])
    return model


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# (units, activation, bias, kernel scale, how the raw output becomes P(class) for the oracle)
HEADS = {
    "sigmoid": (1, "sigmoid", [0.1], 8.0, lambda o: np.c_[1 - o[:, 0], o[:, 0]]),
    "softmax": (3, "softmax", [0.0, 0.2, 0.1], 8.0, lambda o: o),
    # the one-unit logit head: an output near 0.3 means class 1, p = sigmoid(0.3)
    # = 0.574 (it was read as p(class 1) = 0.3, so class 0 with 0.70, by activations/embed)
    "logit-1": (1, None, [0.3], 0.01, lambda o: np.c_[1 - _sigmoid(o[:, 0]), _sigmoid(o[:, 0])]),
    # the many-unit logit head: logits near [0.2, 0.5, 0.3] (they sum to 1, so they
    # were taken for probabilities): class 1 with p 0.391, not 0.5
    "logit-3": (3, None, [0.2, 0.5, 0.3], 0.01, _softmax),
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, tiny):
    """A 2-class and a 3-class folder of 8x8 images, and the dataset built from each (all
    images in the train split)."""
    root = tmp_path_factory.mktemp("agree")
    out = {}
    for n, classes in ((2, tiny.FACADE), (3, tiny.SHAPES)):
        images = tiny.make_images(root / f"images{n}", classes, per_class=PER_CLASS, seed=n)
        out[n] = (images, tiny.build(images, root / f"ds{n}", val=0.0, test=0.0))
    return out


@pytest.mark.parametrize("head", list(HEADS))
def test_four_commands_give_the_same_class_and_probability(head, datasets, tiny, tmp_path):
    units, activation, bias, scale, oracle = HEADS[head]
    model = _model(units, activation, bias, scale, seed=len(head))
    n_classes = max(2, units)
    images, ds = datasets[n_classes]
    path = tmp_path / "model.keras"
    if activation:  # saved by cnncli, with class names and pixel scale
        classes = tiny.FACADE if n_classes == 2 else tiny.SHAPES
        tiny.save_with_metadata(model, path, classes, pixel_scale=1 / 255)
    else:  # saved elsewhere: classes named by index, pixels scaled by 1/255
        model.save(path)
        classes = [str(i) for i in range(n_classes)]
    info = open_model(path)
    assert info.head.from_logits == (activation is None)

    # the oracle: Keras' own output on the same pixels, turned into probabilities by hand
    from cnncli.images import load_image

    files = sorted(images.rglob("*.png"))
    x = np.stack([load_image(f, info.image) for f in files]).astype(np.float32) / 255
    probs = oracle(np.asarray(model.predict(x, verbose=0), np.float64))
    best = probs[:, 1] > 0.5 if n_classes == 2 else probs.argmax(axis=1)
    expected = {f: (int(c), float(p[int(c)])) for f, c, p in zip(files, best, probs, strict=True)}

    got = {
        "predict": {
            Path(r.file): (r.class_index, r.probability) for r in predict(path, [images]).rows
        }
    }
    ev = evaluate(path, ds, split="train")
    got["evaluate"] = {
        images / rel: (int(c), float(p[int(c)]))
        for rel, c, p in zip(ev.paths, ev.predicted, ev.probabilities, strict=True)
    }
    act = activations(path, [images], tmp_path / "act", layers="conv", gradcam=True)
    got["activations"] = {r.image: (r.predicted_index, r.probability) for r in act.images}
    emb = embed(path, [images], out_csv=tmp_path / "v.csv")
    got["embed"] = {
        Path(f): (classes.index(c), p)
        for f, c, p in zip(emb.files, emb.predicted, emb.probability, strict=True)
    }
    for command, answers in got.items():
        assert sorted(answers) == files, command
        for f in files:
            assert answers[f][0] == expected[f][0], (command, f)
            assert answers[f][1] == pytest.approx(expected[f][1], abs=1e-5), (command, f)
    # Grad-CAM explains the class predict names
    assert all(r.gradcam_class == r.predicted_class for r in act.images)
    if head == "logit-1":
        assert all(c == 1 and p == pytest.approx(0.5744, abs=0.01) for c, p in expected.values())
    if head == "logit-3":
        assert all(c == 1 and p == pytest.approx(0.3907, abs=0.01) for c, p in expected.values())
    # the CSV of embed holds the same class and probability
    import pandas as pd

    table = pd.read_csv(tmp_path / "v.csv", dtype={"predicted": str})
    assert table["predicted"].tolist() == emb.predicted
    np.testing.assert_allclose(table["probability"], emb.probability, atol=1e-6)


def test_gradcam_of_a_logit_head_differentiates_the_chosen_class(tmp_path, write_image):
    """One logit unit: class 1's score is the logit z, class 0's is -z, so their maps differ
    where the gradient's sign matters, and the default class is predict's."""
    model = _model(1, None, [0.3], 1.0, seed=3)
    rng = np.random.default_rng(4)
    img = write_image(tmp_path / "a.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    default = activations(model, [img], tmp_path / "d", layers="conv", gradcam=True).images[0]
    one = activations(model, [img], tmp_path / "1", layers="conv", gradcam=True, class_index=1)
    zero = activations(model, [img], tmp_path / "0", layers="conv", gradcam=True, class_index="0")
    [row] = predict(model, [img]).rows
    assert default.gradcam_class == row.class_name == default.predicted_class
    same = one if row.class_index == 1 else zero
    np.testing.assert_allclose(default.gradcam_map, same.images[0].gradcam_map, atol=1e-6)
    assert zero.images[0].gradcam_class == "0" and one.images[0].gradcam_class == "1"


# --- the files of a folder ----------------------------------------------------------------


@pytest.fixture
def messy_folder(tmp_path, write_image):
    folder = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for rel in ("img2.png", "img10.png", ".ipynb_checkpoints/img1.png"):
        write_image(folder / rel, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._x.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    return folder


def test_every_command_sees_the_same_files_in_the_same_order(messy_folder, tmp_path):
    from cnncli.datasets.image_paths import list_image_files
    from cnncli.images import find_images

    model = _model(3, "softmax", [0.0, 0.0, 0.0], 1.0, seed=0)
    want = ["img2.png", "img10.png"]
    assert [p.name for p in find_images(messy_folder)] == want
    assert list(list_image_files(messy_folder)) == want
    assert [Path(r.file).name for r in predict(model, [messy_folder]).rows] == want
    act = activations(model, [messy_folder], tmp_path / "a", layers="conv")
    assert [r.image.name for r in act.images] == want
    assert [r.out_dir.name for r in act.images] == ["img2", "img10"]
    emb = embed(model, [messy_folder], out_csv=tmp_path / "v.csv")
    assert [Path(f).name for f in emb.files] == want


def test_progress_is_done_and_total_for_every_command(messy_folder, datasets, tmp_path):
    model = _model(3, "softmax", [0.0, 0.0, 0.0], 1.0, seed=0)
    calls = {name: [] for name in ("predict", "activations", "embed", "evaluate")}

    def record(name):
        return lambda done, total: calls[name].append((done, total))

    predict(model, [messy_folder], batch_size=1, progress=record("predict"))
    activations(
        model, [messy_folder], tmp_path / "a", layers="conv", progress=record("activations")
    )
    embed(model, [messy_folder], out_csv=tmp_path / "v.csv", progress=record("embed"), batch_size=1)
    evaluate(model, datasets[3][1], split="train", batch_size=4, progress=record("evaluate"))
    assert calls["predict"] == [(1, 2), (2, 2)]
    assert calls["activations"] == [(1, 2), (2, 2)]
    assert calls["embed"] == [(0, 2), (1, 2), (2, 2)]
    assert calls["evaluate"] == [(0, 9), (4, 9), (8, 9), (9, 9)]


# --- the adapter ---------------------------------------------------------------------------


def test_open_model_states_conversion_once_and_the_defaults_in_notes(tmp_path, tiny):
    model = _model(1, None, [0.0], 1.0, seed=0)
    bare = open_model(model)
    assert bare.conversion == (
        "images converted to 8x8 RGB (stretch), from the model's input shape "
        "(none stored with the model); pixels x 1/255"
    )
    assert bare.class_names == ["0", "1"] and bare.head.kind == "binary"
    assert not any(n.startswith("image conversion") for n in bare.notes)
    assert any("1/255" in n for n in bare.notes) and any("indices 0, 1" in n for n in bare.notes)
    model.save(tmp_path / "plain.keras")
    from_file = open_model(tmp_path / "plain.keras")
    assert from_file.conversion == bare.conversion and from_file.notes == bare.notes
    saved = open_model(tiny.save_with_metadata(model, tmp_path / "m.keras", tiny.FACADE))
    assert saved.conversion == (
        "images converted to 8x8 RGB (stretch), as the dataset was built "
        "(stored with the model); pixels x 1"
    )
    assert saved.notes == [] and saved.class_names == tiny.FACADE
