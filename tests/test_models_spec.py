"""Spec files: round trips from the named architectures, the course's notation, and errors
that name the layer's position and the key."""

from __future__ import annotations

import json

import pytest

from cnncli.errors import UsageError
from cnncli.models.presets import ARCHITECTURES, architecture_to_spec, build_architecture
from cnncli.models.spec import build_from_spec, load_spec, write_spec


@pytest.mark.parametrize("ext", [".yaml", ".json"])
@pytest.mark.parametrize("name", ["facade", "mnist", "lenet5"])
def test_export_then_build_gives_the_same_model(tmp_path, name, ext):
    path = write_spec(architecture_to_spec(name), tmp_path / f"{name}{ext}")
    spec = load_spec(path)
    model = build_from_spec(path)
    ref = build_architecture(name)
    assert model.count_params() == ref.count_params() == ARCHITECTURES[name].params
    assert [type(x).__name__ for x in model.layers] == [type(x).__name__ for x in ref.layers]
    assert [tuple(x.output.shape) for x in model.layers] == [
        tuple(x.output.shape) for x in ref.layers
    ]
    assert spec["input_shape"] == list(ARCHITECTURES[name].input_shape)


def test_yaml_reads_as_the_course_writes_layers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: mine\n"
        "input_shape: 32x32x3\n"
        "layers:\n"
        "  - Conv2D: {filters: 10, kernel_size: 5, padding: same}\n"
        "  - LeakyReLU\n"
        "  - MaxPooling2D: 4\n"
        "  - Flatten: {}\n"
        "  - Dense: [3, softmax]\n",
        encoding="utf-8",
    )
    model = build_from_spec(path)
    assert model.name == "mine"
    assert model.output_shape == (None, 3)
    assert model.count_params() == (5 * 5 * 3 * 10 + 10) + (8 * 8 * 10 * 3 + 3)
    # --classes replaces the head; --input the shape
    two = build_from_spec(path, input_shape=(16, 16, 1), num_classes=2)
    assert two.output_shape == (None, 1) and two.input_shape == (None, 16, 16, 1)


def _spec(*layers, shape=(16, 16, 3)):
    return {"input_shape": list(shape), "layers": list(layers)}


@pytest.mark.parametrize(
    "layers,expected",
    [
        (
            [{"Conv2D": {"filters": 4, "kernel_size": 3}}, {"Conv2d": {}}],
            "spec layer 2: unknown layer 'Conv2d': did you mean Conv2D?",
        ),
        (
            [{"Conv2D": {"filtres": 4, "kernel_size": 3}}],
            "spec layer 1 (Conv2D): unknown argument 'filtres': did you mean 'filters'?",
        ),
        (
            [{"Flatten": {}}, {"Dense": {"units": 4, "activation": "no-such"}}],
            "spec layer 2 (Dense): bad argument 'activation'",
        ),
        (
            [{"Conv2D": {"filters": 4, "kernel_size": 3}}, {"MaxPooling2D": 16}, {"Flatten": {}}],
            "spec layer 2 (MaxPooling2D): the output shape collapses for input 16x16x3 "
            "(from (14, 14, 4)): the smallest input it takes is 18x18x3",
        ),
        ([{"Lambda": {"function": "x"}}], "spec layer 1: Lambda is not allowed"),
        ([{"os.system": {}}], "spec layer 1: 'os.system' is not a Keras layer class name"),
        (
            [{"Dense": {"units": 2, "kernel_initializer": {"class_name": "X", "module": "os"}}}],
            "spec layer 1 (Dense): argument 'kernel_initializer' must be a number",
        ),
    ],
)
def test_spec_errors_name_position_and_key(layers, expected):
    with pytest.raises(UsageError) as err:
        build_from_spec(_spec(*layers))
    assert str(err.value).startswith(expected), str(err.value)


def test_collapse_error_gives_the_smallest_input():
    with pytest.raises(UsageError) as err:
        build_from_spec(_spec({"MaxPooling2D": 5}, {"MaxPooling2D": 5}, {"Flatten": {}}))
    assert "the smallest input it takes is 25x25x3" in str(err.value)


def test_spec_file_problems(tmp_path):
    with pytest.raises(UsageError, match="missing key 'input_shape'"):
        build_from_spec({"layers": [{"Flatten": {}}]})
    with pytest.raises(UsageError, match="format_version 2 is not one this cnncli reads"):
        build_from_spec({"format_version": 2, "input_shape": [4, 4, 1], "layers": ["Flatten"]})
    with pytest.raises(UsageError, match="unknown key 'layer'"):
        build_from_spec({"input_shape": [4, 4, 1], "layer": []})
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid YAML/JSON"):
        load_spec(bad)
    # a YAML tag that would build a Python object is refused by safe_load
    evil = tmp_path / "evil.yaml"
    evil.write_text("input_shape: !!python/object/apply:os.getcwd []\nlayers: []\n")
    with pytest.raises(UsageError, match="not valid YAML/JSON"):
        load_spec(evil)
    with pytest.raises(UsageError, match="name it .yaml, .yml or .json"):
        write_spec({}, tmp_path / "x.txt")


def test_json_spec_is_plain_json(tmp_path):
    path = write_spec(architecture_to_spec("tiny", (32, 32, 1), 4), tmp_path / "t.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["input_shape"] == [32, 32, 1]
    assert data["layers"][-1] == {"Dense": {"units": 4, "activation": "softmax"}}
