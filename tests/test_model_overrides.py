"""--classes and --scale: class names and pixel scale for a model saved elsewhere (or to
replace what a cnncli model stores), parsed in one place, the same in predict, evaluate,
activations and embed; a wrong count or value is one line, a bad value before TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnncli.errors import UsageError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, tiny):
    """Three class folders, their dataset (all in train), and a softmax model saved by
    plain Keras (no class names, no scale), whose Rescaling layer takes raw pixels."""
    root = tmp_path_factory.mktemp("overrides")
    images = tiny.make_images(root / "images", tiny.SHAPES, per_class=3, seed=2)
    ds = tiny.build(images, root / "ds", val=0.0, test=0.0)
    model = tiny.model(3, seed=2)
    path = root / "plain.keras"
    model.save(path)
    return {"root": root, "images": images, "ds": ds, "model": model, "path": path}


def test_scale_is_parsed_as_a_person_writes_it():
    from cnncli.inference.model import parse_pixel_scale

    assert parse_pixel_scale("1/255") == 1 / 255
    assert parse_pixel_scale(" 1 / 255 ") == 1 / 255
    assert parse_pixel_scale("1") == 1.0
    assert parse_pixel_scale("0.00392") == 0.00392
    assert parse_pixel_scale(0.5) == 0.5 and parse_pixel_scale(None) is None
    for bad in ("abc", "0", "-1", "1/0", "nan", "inf", "1/x"):
        with pytest.raises(UsageError) as e:
            parse_pixel_scale(bad)
        assert str(e.value) == (
            f"--scale {bad!r} is not a positive number: write it as 1/255, 1 or 0.00392"
        )


def test_classes_are_parsed_from_commas():
    from cnncli.inference.model import parse_class_names

    assert parse_class_names("cat, dog ,bird") == ["cat", "dog", "bird"]
    assert parse_class_names("대리석,벽돌") == ["대리석", "벽돌"]
    assert parse_class_names(["a", "b"]) == ["a", "b"] and parse_class_names(None) is None
    with pytest.raises(UsageError, match="needs two or more names, none empty"):
        parse_class_names("cat")
    with pytest.raises(UsageError, match="needs two or more names, none empty"):
        parse_class_names("cat,,dog")
    with pytest.raises(UsageError, match="--classes names cat more than once"):
        parse_class_names("cat,dog,cat")


def test_predict_with_classes_and_scale(shapes, tiny):
    """The model rescales its input itself: --scale 1 gives Keras' own output on raw
    pixels, named by --classes; the defaults' notes are gone."""
    from cnncli.inference.predict import predict

    files = sorted((shapes["images"] / "square").glob("*.png"))
    result = predict(shapes["path"], files, top_k=3, class_names="a,b,c", pixel_scale="1")
    x = np.stack([np.asarray(Image.open(f), dtype="float32") for f in files])
    probs = shapes["model"].predict(x, verbose=0)
    for row, p in zip(result.rows, probs, strict=True):
        assert row.class_name == "abc"[int(p.argmax())]
        assert dict(row.top_k) == pytest.approx(dict(zip("abc", p.tolist(), strict=True)), abs=1e-6)
    assert result.conversion.endswith("pixels x 1")
    assert result.notes == []  # nothing assumed any more
    default = predict(shapes["path"], files)  # the Rescaling layer is seen: scale 1 unasked
    assert any(n.startswith("pixel scale: 1 (the model's first layer") for n in default.notes)
    assert [r.class_name for r in default.rows] == [
        "012"["abc".index(r.class_name)] for r in result.rows
    ]


def test_a_count_that_does_not_match_the_head_is_one_line(cli, shapes, tiny, tmp_path):
    img = sorted(shapes["images"].rglob("*.png"))[0]
    result = cli("predict", shapes["path"], img, "--classes", "a,b")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --classes gives 2 names but the model predicts 3 classes: "
        "give 3 names, comma-separated, in the order of the model's outputs"
    )
    sigmoid = tmp_path / "sigmoid.keras"
    tiny.model(2).save(sigmoid)
    result = cli("predict", sigmoid, img, "--classes", "a,b,c")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --classes gives 3 names but the model predicts 2 classes (one sigmoid unit: "
        "2 classes): give 2 names, comma-separated, in the order of the model's outputs"
    )


def test_replacing_stored_values_is_noted(shapes, tiny, tmp_path):
    from cnncli.inference.model import open_model

    path = tiny.save_with_metadata(shapes["model"], tmp_path / "m.keras", tiny.SHAPES)
    info = open_model(path, class_names="x,y,z", pixel_scale="1/255")
    assert info.class_names == ["x", "y", "z"] and info.pixel_scale == 1 / 255
    assert info.notes == [
        "class names: x, y, z from --classes, not the ones stored with the model "
        "(circle, square, triangle)",
        "pixel scale: 1/255 from --scale, not the one stored with the model (1)",
    ]
    same = open_model(path, class_names=tiny.SHAPES, pixel_scale=1)
    assert same.notes == [] and same.class_names == tiny.SHAPES
    again = open_model(info, class_names="p,q,r")  # a ModelInfo takes them too
    assert again.class_names == ["p", "q", "r"] and again.pixel_scale == 1 / 255


def test_evaluate_matches_the_given_classes_to_the_dataset_by_name(shapes):
    """The dataset's classes are circle, square, triangle; the model's outputs are named
    square, circle, triangle: evaluate compares by name, not by index."""
    from cnncli.inference.evaluate import evaluate

    by_index = evaluate(shapes["path"], shapes["ds"], pixel_scale="1")
    by_name = evaluate(
        shapes["path"], shapes["ds"], pixel_scale="1", class_names="square,circle,triangle"
    )
    np.testing.assert_allclose(by_name.probabilities, by_index.probabilities[:, [1, 0, 2]])
    assert "are the dataset's in another order: matched by name" in " ".join(by_name.notes)
    differ = evaluate(shapes["path"], shapes["ds"], class_names="a,b,c")
    assert any("the dataset's are used, by index" in n for n in differ.notes)


def test_activations_and_embed_take_them_too(cli, shapes, tmp_path):
    img = sorted((shapes["images"] / "circle").glob("*.png"))[0]
    args = ("--classes", "a,b,c", "--scale", "1")
    result = cli("activations", shapes["path"], img, "-o", tmp_path / "act", "--json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"][0]["predicted_class"] in ("a", "b", "c")
    assert data["conversion"].endswith("pixels x 1") and data["notes"] == []
    result = cli("embed", shapes["path"], img, "-o", tmp_path / "v.csv", *args)
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "v.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1].split(",")[2] in ("a", "b", "c")  # file, class, predicted, ...


def test_one_help_text_for_the_four_commands(cli):
    from cnncli.cli import options

    for flag, declared in (("--classes", options.ClassesOpt), ("--scale", options.ScaleOpt)):
        (info,) = declared.__metadata__
        words = " ".join(info.help.split())
        for command in ("predict", "evaluate", "activations", "embed"):
            result = cli(command, "--help")
            text = " ".join(result.stdout.replace("│", " ").split())
            assert flag in text and words[:40] in text, (command, flag)


def test_a_model_that_rescales_itself_gets_scale_1_by_default(tmp_path):
    """A model saved elsewhere whose first layer is Rescaling takes raw pixels: dividing by
    255 again (the old default) would feed it values near 0."""
    import keras

    from cnncli.inference.model import open_model

    def model(first):
        layers = [keras.Input((8, 8, 3)), keras.layers.RandomFlip()]
        layers += [first] if first is not None else []
        layers += [keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
        return keras.Sequential(layers)

    path = tmp_path / "plain.keras"
    model(keras.layers.Rescaling(1 / 255)).save(path)  # saved by plain Keras: no metadata
    info = open_model(path)
    assert info.pixel_scale == 1.0
    assert "pixel scale: 1 (the model's first layer scales the pixels itself)" in info.notes
    bare = open_model(model(None))
    assert bare.pixel_scale == pytest.approx(1 / 255)
    assert open_model(path, pixel_scale="1/255").pixel_scale == pytest.approx(1 / 255)
