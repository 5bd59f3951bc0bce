"""The course's architectures by name, plus `lenet5` and `tiny`.

Each architecture is a list of (Keras layer class, keyword arguments), the same form a spec
file holds, so `cnncli summary --arch NAME --export spec.yaml` writes exactly what is built.
The last layer is the head and follows the number of classes: 2 classes -> Dense(1,
sigmoid); N > 2 -> Dense(N, softmax).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnncli.errors import ModelError, UsageError
from cnncli.models.spec import SPEC_VERSION, build_layers, head_entry


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    input_shape: tuple[int, int, int]  # the course's default (H, W, C)
    num_classes: int  # the course's default
    params: int | None  # the parameter count at the defaults (the course's number)
    body: list = field(default_factory=list)  # (class name, kwargs), head excluded

    def __getitem__(self, key):  # dict-style access: ARCHITECTURES["mnist"]["input_shape"]
        return getattr(self, key)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "params": self.params,
        }


def _conv(filters, k, **kw):
    return ("Conv2D", {"filters": filters, "kernel_size": k, **kw})


def _pool(size):
    return ("MaxPooling2D", {"pool_size": size})


_FACADE = [
    _conv(10, 5, padding="same"),
    ("LeakyReLU", {}),
    _pool(5),
    _conv(10, 5, padding="same"),
    ("LeakyReLU", {}),
    _pool(5),
    _conv(20, 3, padding="same"),
    ("LeakyReLU", {}),
    _pool(5),
    _conv(25, 2, padding="same"),
    ("LeakyReLU", {}),
    _pool(4),
    ("Flatten", {}),
    ("Dense", {"units": 10, "activation": "relu"}),
    ("Dropout", {"rate": 0.5}),
]
_MNIST = [
    _conv(32, 3, activation="relu"),
    _pool(2),
    _conv(64, 3, activation="relu"),
    _pool(2),
    _conv(64, 3, activation="relu"),
    ("Flatten", {}),
    ("Dense", {"units": 64, "activation": "relu"}),
]
_MNIST_WIDE = [
    _conv(32, 5, padding="same", activation="relu"),
    _pool(2),
    _conv(64, 2, padding="same", activation="relu"),
    _pool(2),
    ("Dropout", {"rate": 0.25}),
    ("Flatten", {}),
    ("Dense", {"units": 1000, "activation": "relu"}),
]
_CATSDOGS_CONV = [
    layer
    for filters in (32, 64, 128, 128)
    for layer in (_conv(filters, 3, activation="relu"), _pool(2))
]
_CATSDOGS = [*_CATSDOGS_CONV, ("Flatten", {}), ("Dense", {"units": 512, "activation": "relu"})]
_CATSDOGS_DROPOUT = [
    *_CATSDOGS_CONV,
    ("Flatten", {}),
    ("Dropout", {"rate": 0.5}),
    ("Dense", {"units": 512, "activation": "relu"}),
]
# LeNet-5 (LeCun et al. 1998) in Keras layers: tanh activations and 2x2 average pooling
# for the subsampling layers (without their trainable coefficients), C3 fully connected.
_LENET5 = [
    _conv(6, 5, activation="tanh"),
    ("AveragePooling2D", {"pool_size": 2}),
    _conv(16, 5, activation="tanh"),
    ("AveragePooling2D", {"pool_size": 2}),
    ("Flatten", {}),
    ("Dense", {"units": 120, "activation": "tanh"}),
    ("Dense", {"units": 84, "activation": "tanh"}),
]
_TINY = [
    _conv(4, 3, activation="relu"),
    _pool(2),
    _conv(8, 3, activation="relu"),
    ("GlobalAveragePooling2D", {}),
]

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "facade",
            "the course's façade-material model: 4 conv+LeakyReLU+max-pool blocks, "
            "25-value flatten, Dense(10), Dropout(0.5)",
            (500, 500, 4),
            2,
            7_636,  # not printed in the course: Keras' count_params() (checked in the tests)
            _FACADE,
        ),
        Architecture(
            "mnist",
            "the course's MNIST CNN: Conv 32/64/64 (3x3, relu), max-pool, Dense(64)",
            (28, 28, 1),
            10,
            93_322,
            _MNIST,
        ),
        Architecture(
            "mnist-wide",
            "the course's wider MNIST CNN: Conv 32 (5x5) and 64 (2x2), Dropout(0.25), Dense(1000)",
            (28, 28, 1),
            10,
            3_156_098,
            _MNIST_WIDE,
        ),
        Architecture(
            "catsdogs",
            "the course's cats-vs-dogs CNN: 4 conv+max-pool blocks (32/64/128/128), Dense(512)",
            (150, 150, 3),
            2,
            3_453_121,
            _CATSDOGS,
        ),
        Architecture(
            "catsdogs-dropout",
            "catsdogs with Dropout(0.5) after Flatten (the course's augmented version)",
            (150, 150, 3),
            2,
            3_453_121,
            _CATSDOGS_DROPOUT,
        ),
        Architecture(
            "lenet5",
            "classic LeNet-5: Conv 6@5x5, avg-pool, Conv 16@5x5, avg-pool, Dense 120, 84 (tanh)",
            (32, 32, 1),
            10,
            61_706,
            _LENET5,
        ),
        Architecture(
            "tiny",
            "a very small CNN for smoke tests and CI: Conv 4 and 8 (3x3), global average pool",
            (64, 64, 3),
            2,
            417,
            _TINY,
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    """The Architecture called `name`; an unknown name -> UsageError listing the names."""
    arch = ARCHITECTURES.get(str(name).strip().lower().replace("_", "-"))
    if arch is None:
        raise UsageError(
            f"unknown architecture {name!r}", f"choose one of {', '.join(ARCHITECTURES)}"
        )
    return arch


def architecture_entries(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    task: str = "classify",
) -> tuple[tuple[int, int, int], list[tuple[str, dict]]]:
    """(input shape, layer entries with the head) for a named architecture; `task` and
    `num_classes` choose the head (cnncli.models.spec.head_entry)."""
    arch = get_architecture(name)
    shape = tuple(int(d) for d in (input_shape or arch.input_shape))
    if len(shape) != 3 or any(d < 1 for d in shape):
        raise UsageError(f"input shape must be HxWxC with positive sizes, got {shape}")
    n = arch.num_classes if num_classes is None else int(num_classes)
    body = [(cls, dict(kwargs)) for cls, kwargs in arch.body]
    return shape, [*body, head_entry(n, task)]


def build_architecture(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    task: str = "classify",
) -> Any:
    """A keras.Sequential of the named architecture; defaults are the course's shapes;
    `task` (multilabel, regression) and `num_classes` (labels, targets) choose the head.

    Unknown name -> UsageError; an input too small for the architecture -> ModelError
    saying the smallest input it takes.
    """
    arch = get_architecture(name)
    shape, entries = architecture_entries(name, input_shape, num_classes, task)

    def describe(i: int) -> str:
        return f"architecture {arch.name!r}, layer {i + 1} ({entries[i][0]})"

    return build_layers(entries, shape, arch.name.replace("-", "_"), describe, error=ModelError)


def architecture_to_spec(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
) -> dict:
    """A named architecture written as a spec dict (cnncli.models.spec.write_spec)."""
    arch = get_architecture(name)
    shape, entries = architecture_entries(name, input_shape, num_classes)
    return {
        "format_version": SPEC_VERSION,
        "name": arch.name,
        "input_shape": list(shape),
        "layers": [{cls: dict(kwargs)} for cls, kwargs in entries],
    }


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "architecture_entries",
    "architecture_to_spec",
    "build_architecture",
    "get_architecture",
]
