"""Grad-CAM for one image: the gradient of a class score with respect to the last
convolutional layer's output, averaged per channel, weights that layer's maps.

The class is the one predict names (cnncli.models.head.predicted_classes) unless the user
chooses one. Its score is what the head outputs for it: the logit for a logit head, the
probability for a sigmoid/softmax head (for one sigmoid unit: p for class 1, 1 - p for
class 0; for one logit unit: z and -z), so the map never depends on a guess about values.
A multi-label model explains one label (`--class LABEL`; default: its most likely), its
probability the score; a regression model one target's value (default: the first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from cnncli.drawing.grids import colormap_lut
from cnncli.errors import UsageError
from cnncli.inference.trace import LayerInfo, Probe
from cnncli.models.head import Head, outputs_to_probabilities, predicted_classes


def gradcam_target(probe: Probe) -> LayerInfo:
    """The last convolutional layer with spatial output (else the last spatial layer)."""
    spatial = [li for li in probe.layers if len(li.shape) == 3]
    convs = [li for li in spatial if "Conv" in li.type]
    if not (convs or spatial):
        raise UsageError("--gradcam needs a layer with spatial output", "the model has none")
    return (convs or spatial)[-1]


def parse_class(value: str | int, class_names: Sequence[str]) -> int:
    """--class as a class name or an index into `class_names` (a multi-label model's
    labels, a regression model's targets)."""
    names = list(class_names)
    if isinstance(value, str) and value in names:
        return names.index(value)
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"--class {value!r} is not a class", f"use one of {', '.join(names)}"
        ) from None
    if not 0 <= i < len(names):
        raise UsageError(
            f"--class {i} is out of range", f"the model has classes 0 to {len(names) - 1}"
        )
    return i


def class_score(pred: Any, class_index: int, head: Head) -> Any:
    """The head's output for the class (a tensor under the tape): see the module docstring."""
    if head.kind == "binary":
        if class_index == 1:
            return pred[:, 0]
        return -pred[:, 0] if head.from_logits else 1.0 - pred[:, 0]
    return pred[:, class_index]


def forward_with_gradcam(
    multi: Any, x: np.ndarray, target_pos: int, class_index: int | None, head: Head
) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Run the multi-output model once under a GradientTape. Returns (outputs as arrays,
    the Grad-CAM map at the target layer's size in 0..1, the class index used)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outs = multi(tf.convert_to_tensor(x), training=False)
        pred = outs[-1]
        if class_index is None and head.kind == "regression":
            class_index = 0  # the first target's value
        elif class_index is None:
            probs = outputs_to_probabilities(np.asarray(pred, np.float64), head)
            class_index = int(predicted_classes(probs, head)[0])
        score = class_score(pred, class_index, head)
    conv = outs[target_pos]
    grads = tape.gradient(score, conv)
    cam = cam_from(np.asarray(conv)[0], np.asarray(grads)[0])
    return [np.asarray(o) for o in outs], cam, class_index


def cam_from(conv: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """ReLU(sum over channels of map x mean gradient), scaled to 0..1."""
    weights = grads.mean(axis=(0, 1))
    cam = np.maximum((conv * weights).sum(axis=-1), 0)
    top = cam.max()
    return (cam / top if top > 0 else cam).astype(np.float32)


def resize_map(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D map resized bilinearly (TensorFlow's resize, half-pixel centres)."""
    import tensorflow as tf

    out = tf.image.resize(np.asarray(cam, np.float32)[None, :, :, None], (height, width))
    return out.numpy()[0, :, :, 0]


def gradcam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The image (H, W, C uint8) with the map (H, W, 0..1) drawn over it in the jet colours."""
    base = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)
    heat = colormap_lut("jet")[np.clip(cam * 255, 0, 255).astype(np.uint8)]
    mixed = base.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha
    return Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8))
