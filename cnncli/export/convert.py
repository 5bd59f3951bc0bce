"""The conversions, each through Keras' own `model.export`: a TensorFlow SavedModel
(`format="tf_saved_model"`), a LiteRT file (`format="litert"`, Keras' TFLite converter
settings, plus full int8 quantization with a representative set) and an ONNX file
(`format="onnx"`, tf2onnx, batch dimension dynamic) with the sidecar in its metadata_props.
Each writes to the path it is given (the caller's temporary path beside the target).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.datasets.store import iter_records
from cnncli.errors import ModelError, output_error, output_error_in_text
from cnncli.export.sidecar import onnx_properties
from cnncli.inference.runtimes import native_quiet

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo

CALIBRATION_IMAGES = 200  # the representative set's size at most (TFLite reads ~100-500)
CALIBRATION_SEED = 0


def write_model(
    keras_model: Any,
    fmt: str,
    path: Path,
    side: dict,
    representative: np.ndarray | None = None,
    output: Path | None = None,
) -> None:
    """Write `keras_model` as `fmt` to `path` (a temporary path for `output`, which a full
    disk's message names); `representative` (float32 model inputs, N x H x W x C) quantizes
    a LiteRT file to int8, weights and activations."""
    if fmt == "onnx":  # Keras' ONNX export needs a model called once (a loaded one is not)
        shape = [1, *(int(d) for d in keras_model.inputs[0].shape[1:])]
        keras_model(np.zeros(shape, np.float32), training=False)
    try:
        _convert(keras_model, fmt, path, side, representative)
    except Exception as e:  # a converter's own error: an op it lacks, a shape it cannot take
        full = " ".join(str(e).split())
        named = output if output is not None else path
        disk = output_error(e, named) if isinstance(e, OSError) else None
        disk = disk or output_error_in_text(full, named)  # TF's writers report it as text
        if disk is not None:
            raise disk from e
        text = full[:200]
        hint = "try another --format; the model may use a layer it cannot convert"
        raise ModelError(f"the {fmt} conversion failed: {text}", hint) from e


def _convert(keras_model, fmt: str, path: Path, side: dict, representative) -> None:
    with warnings.catch_warnings(), _quiet(), native_quiet():
        warnings.simplefilter("ignore")  # tf2onnx's numpy and TF's deprecation notices
        if fmt == "savedmodel":
            keras_model.export(str(path), format="tf_saved_model", verbose=False)
        elif fmt == "litert":
            keras_model.export(
                str(path), format="litert", verbose=False, **int8_settings(representative)
            )
        elif fmt == "onnx":
            logging.getLogger("tf2onnx").setLevel(logging.ERROR)
            keras_model.export(str(path), format="onnx", verbose=False)
            add_onnx_metadata(path, side)
        else:  # formats.get_format refused it before
            raise ValueError(f"unknown export format {fmt!r}")


@contextlib.contextmanager
def _quiet():
    """Keep the converters' progress prints (tf2onnx, the TFLite converter) off stdout, where
    --json goes."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def int8_settings(representative: np.ndarray | None) -> dict:
    """The TFLite converter settings (as Keras' litert export takes them) for int8 weights
    and activations from `representative` (None: float, no settings). Inputs and outputs
    stay float32, so the file takes the same pixels as the Keras model."""
    if representative is None:
        return {}
    import tensorflow as tf

    samples = np.asarray(representative, dtype=np.float32)

    def dataset():
        for i in range(len(samples)):
            yield [samples[i : i + 1]]

    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": dataset,
        "target_spec": {
            "supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        },
    }


def add_onnx_metadata(path: Path, side: dict) -> None:
    """Store the sidecar's keys in the ONNX file's metadata_props (rewritten in place)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in onnx_properties(side).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def representative_images(
    dataset: DatasetInfo, pixel_scale: float, limit: int = CALIBRATION_IMAGES
) -> np.ndarray:
    """Up to `limit` images of the dataset's train split (all splits if it has none), drawn
    with a fixed seed, as float32 model inputs (pixels x `pixel_scale`)."""
    splits = (
        ["train"] if dataset.count("train") else [s for s in dataset.splits if dataset.count(s)]
    )
    total = sum(dataset.count(s) for s in splits)
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = set(rng.choice(total, size=min(limit, total), replace=False).tolist())
    images, seen = [], 0
    for split in splits:
        for rec in iter_records(dataset, split):
            if seen in chosen:
                images.append(rec.image)
            seen += 1
    return np.stack(images).astype(np.float32) * np.float32(pixel_scale)
