"""Which device a run trains on and in which precision, and how many steps Keras runs per
call (`steps_per_execution`).

`--precision auto` (the default) picks mixed bfloat16 where the hardware computes it
natively and the model is large enough to gain: a CPU with AMX-BF16 (oneDNN's AMX kernels
run bf16 convolutions and matmuls at several times the fp32 rate), a GPU of compute
capability 8.0 or newer (mixed float16, with loss scaling, on 7.x); fp32 elsewhere. On a CPU
without AMX, bf16 is emulated and several times slower than fp32. In a mixed-precision model
the head (from the last layer with weights on) and any augmentation stay float32, so the
output and the loss are float32; the variables are float32 throughout. The models saved for use are
float32 copies (`float32_model`): predict, evaluate and activations load and answer in
float32 on any machine.

The pure choices (`device_from`, `choose_precision`, `choose_steps_per_execution`) take
what was measured, so tests can give them any machine; `detect_device` reads this one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
# forward MFLOP per image under which a model does not gain from bf16: its convolutions are
# too small for the casts around them to pay (measured: the mnist model, ~5 MFLOP, gains)
MIN_GAIN_MFLOP = 2.0
MAX_STEPS_PER_EXECUTION = 16
# an execution (one Keras call) of at least this long makes the per-step overhead small
EXECUTION_SECONDS = 0.05
ASSUMED_GFLOPS = 200.0  # for the step time estimate only (a 2-core AVX-512 CPU, fp32)
# Keras traces a multi-step loop once per run, at about the cost of tracing one step once
# the model is built before fit (distribute.prepare_model): the default digits run, 45 steps
# an epoch, 15 a call: first epoch 1.82-2.08 s against 1.80-2.06 s with 1 a call, the four
# after it 2.04-2.24 s against 2.39-3.00 s (bench/bench_recipe.py --only spe compares
# them); a run shorter than this many steps keeps one step per execution
MIN_RUN_STEPS = 50


@dataclass(frozen=True)
class Device:
    """The device a run trains on: kind "cpu" or "gpu", its name, whether it computes bf16
    and fp16 natively, and what says so (a CPU flag, a compute capability)."""

    kind: str
    name: str
    bf16: bool = False
    fp16: bool = False
    evidence: str = ""

    def describe(self) -> str:
        return f"{self.name} ({self.kind.upper()})"

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_info(path: str | Path = "/proc/cpuinfo") -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _field(text: str, key: str) -> str:
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return ""


def device_from(cpuinfo: str, gpus: Sequence[tuple[str, tuple[int, int] | None]] = ()) -> Device:
    """The device TensorFlow trains on: the first GPU of `gpus` ((name, compute capability)
    pairs) if any, else the CPU `cpuinfo` (the text of /proc/cpuinfo) describes."""
    if gpus:
        name, cc = gpus[0]
        major = cc[0] if cc else 0
        cap = f"compute capability {cc[0]}.{cc[1]}" if cc else "unknown compute capability"
        return Device("gpu", name or "GPU", bf16=major >= 8, fp16=major >= 7, evidence=cap)
    import platform

    flags = set(_field(cpuinfo, "flags").split())
    name = _field(cpuinfo, "model name") or platform.processor() or "unknown CPU"
    if "amx_bf16" in flags:
        return Device("cpu", name, bf16=True, evidence="AMX-BF16")
    evidence = "AVX512-BF16 without AMX" if "avx512_bf16" in flags else "no AMX-BF16"
    return Device("cpu", name, bf16=False, evidence=evidence)


def detect_device() -> Device:
    """This machine's training device (TensorFlow places work on its first GPU if any)."""
    import tensorflow as tf

    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # details are best effort
            details = {}
        gpus.append((details.get("device_name", gpu.name), details.get("compute_capability")))
    return device_from(cpu_info(), gpus)


@dataclass(frozen=True)
class Precision:
    """What a run computes in: name fp32/bf16/fp16, the Keras dtype policy, and why."""

    name: str
    reason: str

    @property
    def policy(self) -> str:
        return POLICIES[self.name]

    @property
    def mixed(self) -> bool:
        return self.name != "fp32"

    def describe(self) -> str:
        return f"precision {self.name}: {self.reason}"

    def to_dict(self) -> dict:
        return {"name": self.name, "policy": self.policy, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> Precision:
        return cls(d["name"], d.get("reason", ""))


def choose_precision(asked: str, device: Device, mflop_per_image: float) -> Precision:
    """The precision for `asked` (auto, fp32, bf16) on `device` for a model of
    `mflop_per_image` forward MFLOP per image, with the reason in words."""
    where = "GPU" if device.kind == "gpu" else "CPU"
    if asked == "fp32":
        return Precision("fp32", "as asked (--precision fp32)")
    if asked == "bf16":
        slow = (
            ""
            if device.bf16
            else (
                f"; this {where} has {device.evidence}, so bf16 is emulated and likely slower "
                "than fp32"
            )
        )
        return Precision("bf16", f"as asked (--precision bf16){slow}")
    if device.kind == "gpu" and (device.bf16 or device.fp16):
        name = "bf16" if device.bf16 else "fp16"
        return Precision(name, f"GPU {device.name} ({device.evidence}) computes {name}")
    if not device.bf16:
        return Precision("fp32", f"this {where} has {device.evidence}: bf16 would be emulated")
    if mflop_per_image < MIN_GAIN_MFLOP:
        return Precision(
            "fp32",
            f"this CPU has {device.evidence}, but the model ({mflop_per_image:.2g} MFLOP per "
            f"image) is too small to gain from it",
        )
    return Precision("bf16", f"this CPU has {device.evidence}")


def choose_steps_per_execution(
    steps: int, flop_per_step: float, asked: int | None = None, run_steps: int | None = None
) -> tuple[int, str]:
    """(steps per Keras call, why). Keras rounds an epoch up to whole executions (it would
    train on extra batches), so this is always a divisor of `steps`: the largest one up to
    `asked`, or (None) up to the count that makes an execution last EXECUTION_SECONDS at
    ASSUMED_GFLOPS (small, fast steps gain most; a slow step keeps 1, so the progress bar
    still moves every batch). `run_steps`: the steps left in the run; a run shorter than
    MIN_RUN_STEPS keeps 1 unless asked."""
    if steps < 1:
        return 1, "no steps"
    if asked is None and run_steps is not None and run_steps < MIN_RUN_STEPS:
        return 1, f"a short run ({run_steps} steps)"
    if asked is not None:
        want = asked
    else:
        step_s = flop_per_step / (ASSUMED_GFLOPS * 1e9)
        want = max(
            1, min(MAX_STEPS_PER_EXECUTION, math.ceil(EXECUTION_SECONDS / max(step_s, 1e-9)))
        )
    best = max(d for d in range(1, min(want, steps) + 1) if steps % d == 0)
    if asked is not None:
        why = (
            "as asked"
            if best == asked
            else (
                f"the largest divisor of the {steps} steps of an epoch up to {asked} (Keras would "
                "otherwise run extra batches)"
            )
        )
    elif best == 1 and want > 1:
        why = f"no divisor of the {steps} steps of an epoch up to {want}"
    else:
        why = "short steps" if best > 1 else "long steps"
    return best, why


# --------------------------------------------------------------------- the model
def _leaf_layers(model) -> list:
    out = []
    for layer in model.layers:
        if getattr(layer, "layers", None) is not None and hasattr(layer, "inputs"):
            out += _leaf_layers(layer)
        else:
            out.append(layer)
    return out


def forward_flops(model: Any) -> float:
    """Multiply-add FLOPs (x2) of one image through the model's convolutions and dense
    layers (the work oneDNN or cuDNN does; element-wise layers are left out)."""
    total = 0.0
    for layer in _leaf_layers(model):
        kind = type(layer).__name__
        try:
            out_shape = layer.output.shape
            in_shape = layer.input.shape
        except (AttributeError, ValueError):
            continue
        if kind in ("Conv2D", "Conv1D", "Conv3D"):
            kernel = math.prod(layer.kernel.shape)  # k..k x in x out
            total += 2.0 * kernel * math.prod(d or 1 for d in out_shape[1:-1])
        elif kind == "Dense":
            total += 2.0 * math.prod(layer.kernel.shape) * math.prod(d or 1 for d in in_shape[1:-1])
        elif kind in ("DepthwiseConv2D", "SeparableConv2D"):
            kernel = sum(math.prod(w.shape) for w in layer.trainable_weights if w.ndim > 1)
            total += 2.0 * kernel * math.prod(d or 1 for d in out_shape[1:-1])
    return total


def _float32_names(model) -> set[str]:
    """Layers that stay float32 in a mixed model: the head (from the last layer with
    weights on) and, when augmentation comes before the first layer with weights, every
    layer before it (image transforms stay float32). Otherwise the Rescaling of raw pixels
    computes in the mixed policy: the input is cast once, and the scaling and the first
    convolution then move half the bytes of float32."""
    from cnncli.training.augment import is_augmentation

    leaves = _leaf_layers(model)
    weighted = [i for i, layer in enumerate(leaves) if layer.weights]
    if not weighted:
        return {layer.name for layer in leaves}
    first, last = weighted[0], weighted[-1]
    augmented = any(is_augmentation(layer) for layer in leaves[:first])
    return {layer.name for i, layer in enumerate(leaves) if i >= last or (augmented and i < first)}


def with_policy(model: Any, policy: str) -> Any:
    """A copy of `model` (same weights) computing in `policy` ("float32", "mixed_bfloat16",
    "mixed_float16"), its input side and head in float32 (see the module docstring); the
    model itself when it already is. Compile the copy. Call it in the strategy's scope."""
    import keras

    names = _float32_names(model) if policy != "float32" else set()
    leaves = _leaf_layers(model)
    if (
        all(
            str(layer.dtype_policy.name) == ("float32" if layer.name in names else policy)
            for layer in leaves
        )
        and model.dtype_policy.name == policy
    ):
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in names else policy
        return type(layer).from_config(config)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)  # the model objects' own policy (loss scaling)
    try:
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def float32_model(model: Any) -> Any:
    """`model` computing in float32 (a copy with its weights, or itself if it is)."""
    return with_policy(model, "float32")


def policy_of(model: Any) -> str:
    """The compute policy of a model's body: the most common among its layers with weights."""
    names = [str(layer.dtype_policy.name) for layer in _leaf_layers(model) if layer.weights]
    return max(set(names), key=names.count) if names else "float32"
