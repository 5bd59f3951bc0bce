"""Exported models run by their own runtimes, behind the face of a Keras model: a `.tflite`
file (the LiteRT interpreter of ai-edge-litert), an `.onnx` file (onnxruntime) or a
SavedModel folder (TensorFlow), each with its sidecar `PATH.cnncli.json` (cnncli.export
.sidecar). `open_exported` gives the same ModelInfo that open_model gives for a .keras file,
with an `ExportedModel` as its model: `predict(batch)` / `predict_on_batch(batch)` return
the outputs as a NumPy array and `inputs[0].shape` is (None, H, W, C), which is all that
predict and evaluate ask of a model. Nothing here imports TensorFlow or a runtime until a
model is opened.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from cnncli.errors import InputError, ModelError, ModelFileError
from cnncli.export.formats import get_format, require_packages
from cnncli.export.sidecar import head_from_sidecar, read_sidecar, sidecar_path
from cnncli.images import ImageSpec
from cnncli.inference.model import ModelInfo


def exported_kind(path: str | os.PathLike) -> str | None:
    """'litert' (.tflite), 'onnx' (.onnx) or 'savedmodel' (a folder with saved_model.pb) for
    an exported model at `path`, else None. Reads names only."""
    path = Path(path)
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").is_file() else None
    return {".tflite": "litert", ".onnx": "onnx"}.get(path.suffix.lower())


class ExportedModel:
    """An exported model run by its runtime, called like a Keras model."""

    def __init__(self, path: Path, kind: str, input_shape):
        self.path, self.kind = Path(path), kind
        self.inputs = [SimpleNamespace(shape=tuple(input_shape))]
        self._runner = None

    def predict(self, batch, verbose=0, batch_size=None) -> np.ndarray:
        """(N, H, W, C) float inputs (scaled as the sidecar says) -> (N, units) outputs."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self._runner is None:
            self._runner = _RUNNERS[self.kind](self.path)
        return np.asarray(self._runner(x), dtype=np.float32)

    predict_on_batch = predict

    @property
    def layers(self):
        """None to look inside: activations, embed and Grad-CAM need the Keras model."""
        raise ModelError(
            f"{self.path} is an exported ({self.kind}) model: it has no Keras layers to look "
            "inside",
            "give the .keras file it was exported from (its sidecar's source.path)",
        )

    def __call__(self, *args, **kwargs):  # what looks inside a model calls it on symbols
        return self.layers


# What LiteRT's and the TFLite converter's C++ side print on every use, straight to the
# process's stderr: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", the
# converter's "fully_quantize: 0, inference_type: 6, ..." and glog-shaped info lines.
_NATIVE_NOISE = re.compile(
    rb"^(INFO: |fully_quantize: |Estimated count of arithmetic ops|[IW]\d{4} [\d:. ]+\d+ )"
)


@contextmanager
def native_quiet():
    """Within the block, what native code writes to file descriptor 2 is captured; at the
    end, all but the known info lines (_NATIVE_NOISE) is written out again."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().splitlines(keepends=True)
            rest = b"".join(line for line in lines if not _NATIVE_NOISE.match(line))
            if rest:
                os.write(2, rest)


def _litert(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    with native_quiet():
        interpreter = Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    state = {"shape": None}

    def run(x: np.ndarray) -> np.ndarray:
        if state["shape"] != x.shape:  # the batch size changed: resize once, then reuse
            interpreter.resize_tensor_input(source, list(x.shape))
            with native_quiet():
                interpreter.allocate_tensors()
            state["shape"] = x.shape
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return run


def _onnx(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _savedmodel(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = getattr(loaded, "serve", None) or loaded.signatures["serving_default"]

    def run(x: np.ndarray, keep=loaded) -> np.ndarray:  # `keep`: its variables stay alive
        out = fn(tf.constant(x))
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return out.numpy()

    return run


_RUNNERS = {"litert": _litert, "onnx": _onnx, "savedmodel": _savedmodel}


def open_exported(path: str | os.PathLike) -> ModelInfo:
    """The ModelInfo of an exported model (its sidecar read and checked; the runtime's
    package required, named with the extra to install when missing). The model itself is
    loaded on its first forward pass."""
    path = Path(path)
    kind = exported_kind(path)
    if kind is None:
        raise InputError(
            f"{path} is not an exported model", "give a .tflite, an .onnx or a SavedModel folder"
        )
    notes: list[str] = []
    require_packages(get_format(kind))
    if sidecar_path(path).exists() or kind == "savedmodel":
        side = read_sidecar(path)
    else:  # issue 28 §11: an .onnx's metadata_props, or a .tflite read as saved elsewhere
        from cnncli.inference.lone_exported import lone_sidecar

        side, notes = lone_sidecar(path, kind, native_quiet)
    image = ImageSpec.from_dict(side["image"])
    head = head_from_sidecar(side)
    names = list(side["class_names"])
    if len(names) != head.num_classes:
        raise ModelFileError(
            f"{path}: its sidecar names {len(names)} classes for {head.num_classes} outputs",
            "export it again with cnncli export",
        )
    model = ExportedModel(path, kind, [None, *image.shape])
    extra = {f.name: side[f.name] for f in fields(ModelInfo)
             if f.name in ("task", "thresholds", "targets") and f.name in side}  # fmt: skip
    return ModelInfo(
        model=model, path=path, class_names=names, image=image,
        pixel_scale=float(side["pixel_scale"]), from_cnncli=not side.get("assumed"), head=head,
        notes=notes, image_stored=not side.get("assumed"),
        names_from="indices" if side.get("assumed") else "stored", **extra,
    )  # fmt: skip
