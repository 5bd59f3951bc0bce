"""The shapes through a chain of Keras layers (a spec's, a design's): where the output
collapses, and the smallest square input the chain takes (named in the error)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cnncli.errors import UsageError


def _out_shape(layer, shape: tuple) -> tuple | None:
    """The output shape of `layer` for `shape` (with batch), or None if it collapses."""
    try:
        out = layer.compute_output_shape(shape)
    except Exception:
        try:
            import keras

            spec = layer.compute_output_spec(keras.KerasTensor(shape))
            out = spec.shape
        except Exception:
            return None
    if isinstance(out, list):
        out = out[0]
    out = tuple(out)
    if any(d is not None and d < 1 for d in out[1:]):
        return None
    return out


def smallest_input(layers: Sequence[Any], shape: tuple[int, ...]) -> int | None:
    """The smallest square spatial size n (input (n, n, C)) the layer chain takes, or None."""

    def fits(n: int) -> bool:
        s: tuple | None = (1, *([n] * (len(shape) - 1)), shape[-1])
        for layer in layers:
            s = _out_shape(layer, s) if s is not None else None  # None: the chain broke
        return s is not None

    hi = 1
    while not fits(hi):
        hi *= 2
        if hi > 1 << 16:
            return None
    lo = hi // 2  # fits(lo) is False (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def check_shapes(
    layers: Sequence[Any],
    input_shape: tuple,
    describe: Callable[[int], str],
    error: type[Exception] = UsageError,
) -> None:
    """Run the shapes through the chain; a layer whose output collapses raises `error`
    naming it (`describe(i)`) and the smallest input the chain takes."""
    s = (1, *input_shape)
    for i, layer in enumerate(layers):
        out = _out_shape(layer, s)
        if out is None:
            n = smallest_input(layers, input_shape) if len(input_shape) >= 2 else None
            dims = "x".join(str(d) for d in input_shape)
            hint = (
                f"the smallest input it takes is {'x'.join([str(n)] * (len(input_shape) - 1))}"
                f"x{input_shape[-1]}"
                if n
                else "use a larger input or fewer downsampling layers"
            )
            raise error(
                f"{describe(i)}: the output shape collapses for input {dims} (from {tuple(s[1:])})",
                hint,
            )
        s = out
