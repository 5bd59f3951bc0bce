"""The default network of `cnncli train` (the `fast` recipe, cnncli.training.recipes): a
modern small CNN designed for a dataset's image size, channel count and number of images.

    AveragePooling2D(stem)            only where the picture holds far fewer pixels of
                                      information than its size (28x28 upscaled from 8x8),
                                      or to bring a large image down to MAX_WORKING pixels
    [Conv2D 3x3, BatchNorm, ReLU] x2  widths w, 2w
    [MaxPool 2, Conv2D 3x3, BatchNorm, ReLU] until about 4-7 pixels are left
    GlobalAveragePooling2D, the head

BatchNorm's momentum is 0.9, not Keras' 0.99: with ~40 steps an epoch the moving variance
of 0.99 never decays from its initial 1.0 in a short run, and the model that evaluates on
it collapses (0.097 test accuracy on the digits at 10 epochs, while training reached 0.99).
A run that may be shorter still (`min_steps`: a few dozen images, one batch an epoch, a
stop at 8 epochs) gets the momentum whose initial statistics fade below SETTLED of their
weight within it: the 30 façade photos (8 steps at least) 0.69; at 0.9 their statistics
kept 43% of the initial 1.0 and one seed's model answered one class for every photo.

The design is written as a spec (cnncli.models.spec), so `cnncli summary --spec` rebuilds
it and run.json records it. `image_detail` measures the stem from sample pixels (NumPy only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cnncli.errors import InputError

if TYPE_CHECKING:
    import numpy as np

BN_MOMENTUM = 0.9
SETTLED = 0.05  # the initial moving statistics' weight left after the shortest run
MAX_WORKING = 64  # the largest side the convolutions see after the stem
MIN_SIDE = 8  # the smallest image side the network takes (after its stem: at least this)
LAST_SIDE = 7  # max-pool stages continue while the side is above this
DETAIL_LOSS = 0.025  # spectral energy a stem may drop (share of the non-mean energy)
MAX_DETAIL_POOL = 8
SMALL_DATA = 500  # train images below this: half the widths (fewer weights to fit)


def image_detail(images: np.ndarray) -> tuple[int, float]:
    """(k, lost): the largest average-pool factor k (1..MAX_DETAIL_POOL) whose cut-off
    frequency keeps all but DETAIL_LOSS of the images' spectral energy (the mean of each
    image left out), and the share a pool of k would drop. `images`: N x H x W x C pixels.
    28x28 digits upscaled bilinearly from 8x8 give k = 3; photos at their own size, 1."""
    import numpy as np

    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[0] == 0:
        return 1, 0.0
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2
    total = float(power.sum())
    if total <= 0:  # flat images: nothing to keep
        return 1, 0.0
    fy = np.abs(np.fft.fftfreq(x.shape[1]))[:, None]
    fx = np.abs(np.fft.fftfreq(x.shape[2]))[None, :]
    best, lost_at_best = 1, 0.0
    for k in range(2, MAX_DETAIL_POOL + 1):
        inside = (fy <= 0.5 / k) & (fx <= 0.5 / k)
        lost = float(power[:, ~inside].sum()) / total
        if lost >= DETAIL_LOSS:
            break
        best, lost_at_best = k, lost
    return best, lost_at_best


@dataclass
class SmallDesign:
    """The chosen network: its stem, widths and the reasons, as run.json records them."""

    input_shape: tuple[int, int, int]
    stem: int  # average-pool factor (1: none)
    widths: list[int]
    stages: int  # max-pool stages after the first two convolutions
    reasons: list[str] = field(default_factory=list)
    momentum: float = BN_MOMENTUM  # BatchNorm's

    @property
    def working_side(self) -> int:
        return min(self.input_shape[:2]) // self.stem

    def describe(self) -> str:
        h, w, c = self.input_shape
        stem = (
            f"average-pool {self.stem} to {h // self.stem}x{w // self.stem}, "
            if (self.stem > 1)
            else ""
        )
        return (
            f"small CNN for {h}x{w}x{c}: {stem}conv {'/'.join(map(str, self.widths))} "
            f"with BatchNorm (momentum {self.momentum:g}), global average pooling"
        )

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "stem": self.stem,
            "widths": self.widths,
            "stages": self.stages,
            "reasons": self.reasons,
            "bn_momentum": self.momentum,
            "description": self.describe(),
        }

    def spec(self) -> dict:
        """The design as a spec dict (its head for 10 classes: build_from_spec replaces it)."""
        layers: list = []
        if self.stem > 1:
            layers.append({"AveragePooling2D": {"pool_size": self.stem}})
        for i, width in enumerate(self.widths):
            if i >= 2:
                layers.append({"MaxPooling2D": {"pool_size": 2}})
            layers += [
                {
                    "Conv2D": {
                        "filters": width,
                        "kernel_size": 3,
                        "padding": "same",
                        "use_bias": False,
                    }
                },
                {"BatchNormalization": {"momentum": self.momentum}},
                {"ReLU": {}},
            ]
        layers += [
            {"GlobalAveragePooling2D": {}},
            {"Dense": {"units": 10, "activation": "softmax"}},
        ]
        return {"name": "small_cnn", "input_shape": list(self.input_shape), "layers": layers}


def design_small_network(
    input_shape: tuple[int, int, int],
    train_images: int,
    detail: int = 1,
    min_steps: int | None = None,
) -> SmallDesign:
    """The network for images of `input_shape` (H, W, C), `train_images` of them, whose
    pixels hold detail down to an average-pool factor `detail` (image_detail), for a run of
    at least `min_steps` steps (None: many). An image side below MIN_SIDE -> InputError
    (too small for the network's stages)."""
    h, w, c = (int(d) for d in input_shape)
    side = min(h, w)
    if side < MIN_SIDE:
        raise InputError(
            f"the images are {h}x{w}, too small for the default network (it takes at least "
            f"{MIN_SIDE}x{MIN_SIDE})",
            f"rebuild the dataset with --size {MIN_SIDE}x{MIN_SIDE} or larger, or choose "
            "--arch/--spec",
        )
    reasons = []
    by_detail = max(1, min(int(detail), side // MIN_SIDE))
    by_size = max(1, math.ceil(side / MAX_WORKING))
    stem = max(by_detail, by_size)
    if stem > 1 and by_detail >= by_size:
        reasons.append(
            f"stem average-pools {stem}x{stem}: the {h}x{w} images hold about "
            f"{side // detail}x{side // detail} pixels of detail"
        )
    elif stem > 1:
        reasons.append(
            f"stem average-pools {stem}x{stem}: the convolutions see at most "
            f"{MAX_WORKING}x{MAX_WORKING} pixels on this CPU budget"
        )
    else:
        reasons.append(f"no stem pooling: the {h}x{w} images hold detail at every pixel")
    working = side // stem
    stages = 0
    while working > LAST_SIDE and stages < 4:
        working //= 2
        stages += 1
    base = 16 if train_images < SMALL_DATA else 32
    if train_images < SMALL_DATA:
        reasons.append(f"widths from {base}: only {train_images} train images")
    widths = [base, 2 * base] + [min(4 * base * 2 ** max(0, i - 1), 256) for i in range(stages)]
    reasons.append(f"{stages} max-pool stage(s) bring {side // stem} pixels to {working}")
    momentum = BN_MOMENTUM
    if min_steps and BN_MOMENTUM**min_steps > SETTLED:
        momentum = round(SETTLED ** (1 / min_steps), 2)
        reasons.append(
            f"BatchNorm momentum {momentum:g}: the run may be only {min_steps} steps long"
        )
    return SmallDesign((h, w, c), stem, widths, stages, reasons, momentum)
