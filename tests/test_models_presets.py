"""The course's architectures: parameter counts, heads, input shapes, smallest-input errors."""

from __future__ import annotations

import pytest

from cnncli.errors import ModelError, UsageError
from cnncli.models.presets import ARCHITECTURES, build_architecture

COURSE_PARAMS = {
    "mnist": 93_322,
    "mnist-wide": 3_156_098,
    "catsdogs": 3_453_121,
    "catsdogs-dropout": 3_453_121,
    "lenet5": 61_706,
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_builds_at_its_defaults_with_the_listed_count(name):
    arch = ARCHITECTURES[name]
    model = build_architecture(name)
    assert tuple(model.input_shape[1:]) == arch.input_shape
    assert model.count_params() == arch.params  # what --list-arch shows is Keras' number
    assert arch["input_shape"] == arch.input_shape  # dict-style access works too
    if name in COURSE_PARAMS:
        assert model.count_params() == COURSE_PARAMS[name]


def test_facade_layer_for_layer_and_its_25_value_flatten():
    model = build_architecture("facade")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        *["Conv2D", "LeakyReLU", "MaxPooling2D"] * 4,
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    flatten = model.get_layer(index=12)
    assert tuple(flatten.output.shape) == (None, 25)
    # conv 5*5*4*10+10, 5*5*10*10+10, 3*3*10*20+20, 2*2*20*25+25, dense 25*10+10, 10+1
    assert model.count_params() == 1010 + 2510 + 1820 + 2025 + 260 + 11 == 7636
    pools = [
        layer.pool_size
        for layer in model.layers
        if kinds[model.layers.index(layer)] == "MaxPooling2D"
    ]
    assert pools == [(5, 5), (5, 5), (5, 5), (4, 4)]
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_heads_follow_the_classes():
    two = build_architecture("mnist", num_classes=2)
    assert two.output_shape == (None, 1)
    assert two.layers[-1].activation.__name__ == "sigmoid"
    five = build_architecture("catsdogs", input_shape=(64, 64, 3), num_classes=5)
    assert five.output_shape == (None, 5)
    assert five.layers[-1].activation.__name__ == "softmax"
    assert build_architecture("mnist").output_shape == (None, 10)  # the course's 10 digits


def test_input_shape_follows_the_data():
    model = build_architecture("facade", input_shape=(1000, 1000, 3))
    assert model.input_shape == (None, 1000, 1000, 3)
    assert model.get_layer(index=12).output.shape[-1] == 2 * 2 * 25


@pytest.mark.parametrize(
    "name,shape,smallest",
    [
        ("facade", (64, 64, 4), "500x500x4"),
        ("mnist", (10, 10, 1), "18x18x1"),
        ("tiny", (5, 5, 3), "8x8x3"),
    ],
)
def test_too_small_input_says_the_smallest_it_takes(name, shape, smallest):
    with pytest.raises(ModelError) as err:
        build_architecture(name, input_shape=shape)
    assert f"the smallest input it takes is {smallest}" in str(err.value)
    assert name in str(err.value)
    # and that size really builds
    h, w, c = (int(d) for d in smallest.split("x"))
    build_architecture(name, input_shape=(h, w, c))


def test_unknown_architecture_lists_the_names():
    with pytest.raises(UsageError) as err:
        build_architecture("resnet")
    assert "unknown architecture 'resnet'" in str(err.value)
    for name in ARCHITECTURES:
        assert name in str(err.value)


def test_lenet5_is_the_classic_layout():
    model = build_architecture("lenet5")
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert shapes == [
        (28, 28, 6),
        (14, 14, 6),
        (10, 10, 16),
        (5, 5, 16),
        (400,),
        (120,),
        (84,),
        (10,),
    ]
