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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from cnncli.errors import InputError, ModelError, ModelFileError
from cnncli.images import ImageSpec
from cnncli.inference.info import ModelInfo
from cnncli.models.exported_files import (  # exported_kind: re-exported (__all__)
    check_litert_file,
    check_onnx_file,
    exported_kind,
)
from cnncli.models.formats import get_format, require_packages
from cnncli.models.sidecar import (
    AGAIN,
    check_model_fits,
    check_onnx_props,
    check_pair,
    head_from_sidecar,
    read_sidecar,
    sidecar_path,
)


class ExportedModel:
    """An exported model run by its runtime, called like a Keras model."""

    def __init__(self, path: Path, kind: str, input_shape):
        self.path, self.kind = Path(path), kind
        self.inputs = [SimpleNamespace(shape=tuple(input_shape))]
        self._runner: Callable[[np.ndarray], np.ndarray] | None = None

    def open(self) -> tuple[list, list, dict]:
        """Load the model into its runtime (once): its input shapes, output shapes (free
        dimensions as None, -1 or a name) and an ONNX file's metadata_props. A file the
        runtime cannot read is a ModelFileError."""
        if self._runner is None:
            self._runner, *self._described = _RUNNERS[self.kind](self.path)
        return tuple(self._described)

    def predict(self, batch, verbose=0, batch_size=None) -> np.ndarray:
        """(N, H, W, C) float inputs (scaled as the sidecar says) -> (N, units) outputs."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        self.open()
        assert self._runner is not None  # open() loaded it or raised
        return np.asarray(self._runner(x), dtype=np.float32)

    predict_on_batch = predict

    @property
    def layers(self) -> Any:
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
def native_quiet() -> Iterator[None]:
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

    check_litert_file(path)
    try:
        with native_quiet():
            interpreter = Interpreter(model_path=str(path))
            interpreter.allocate_tensors()
        ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    except (ValueError, RuntimeError) as e:  # what LiteRT raises for a file it cannot use
        raise _invalid(path, "TensorFlow Lite", e) from None
    if not ins or not outs or ins[0]["dtype"] != np.float32:
        raise ModelFileError(f"{path}: its input is not one float32 image batch", AGAIN)
    source, target = ins[0]["index"], outs[0]["index"]
    state: dict[str, tuple | None] = {"shape": None}

    def run(x: np.ndarray) -> np.ndarray:
        if state["shape"] != x.shape:  # the batch size changed: resize once, then reuse
            interpreter.resize_tensor_input(source, list(x.shape))
            with native_quiet():
                interpreter.allocate_tensors()
            state["shape"] = x.shape
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    shapes = [list(d.get("shape_signature", d["shape"])) for d in (*ins, *outs)]
    return run, shapes[: len(ins)], shapes[len(ins) :], {}


def _onnx(path: Path):
    import onnxruntime

    check_onnx_file(path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        props = dict(session.get_modelmeta().custom_metadata_map)
    except Exception as e:  # onnxruntime's own Fail / InvalidProtobuf / InvalidGraph
        raise _invalid(path, "ONNX", e) from None
    ins, outs = session.get_inputs(), session.get_outputs()
    if not ins or ins[0].type != "tensor(float)":
        raise ModelFileError(f"{path}: its input is not one float32 image batch", AGAIN)
    name = ins[0].name
    run = lambda x: session.run(None, {name: x})[0]  # noqa: E731
    return run, [list(i.shape) for i in ins], [list(o.shape) for o in outs], props


def _savedmodel(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = getattr(loaded, "serve", None) or loaded.signatures["serving_default"]

    def run(x: np.ndarray, keep=loaded) -> np.ndarray:  # `keep`: its variables stay alive
        out = fn(tf.constant(x))
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return out.numpy()

    try:  # a tf.function's input signature; a concrete function's structured inputs
        specs = [s.shape.as_list() for s in tf.nest.flatten(fn.input_signature)]
    except (AttributeError, TypeError):
        specs = []
    return run, specs, [], {}


def _invalid(path: Path, what: str, e: Exception) -> ModelFileError:
    detail = " ".join(str(e).split())[:120]
    return ModelFileError(f"{path} is not a valid {what} file ({detail})", AGAIN)


_RUNNERS = {"litert": _litert, "onnx": _onnx, "savedmodel": _savedmodel}


def open_exported(path: str | os.PathLike, unsafe: bool = False) -> ModelInfo:
    """The ModelInfo of an exported model, checked before it answers anything: its sidecar
    read and checked (cnncli.models.sidecar: its keys, that the model is the one it was
    written for), the runtime's package required (named with the extra to install when
    missing), the file checked (cnncli.models.exported_files) and opened, and its real input
    and output shapes (and an ONNX file's own metadata) compared with the sidecar. A
    SavedModel folder is a TensorFlow program that runs what it holds: refused unless
    `unsafe`, as a model with a Lambda layer is (InputError, before TensorFlow loads)."""
    path = Path(path)
    kind = exported_kind(path)
    if kind is None:
        raise InputError(
            f"{path} is not an exported model", "give a .tflite, an .onnx or a SavedModel folder"
        )
    if kind == "savedmodel" and not unsafe:
        raise InputError(
            f"refusing to run {path}: a SavedModel folder is a TensorFlow program, and its "
            "serving function runs whatever it holds (reading and writing files included)",
            "predict with the .keras file it was exported from, or a .tflite or .onnx "
            "export; pass --unsafe only if you trust where the folder comes from",
        )
    require_packages(get_format(kind), purpose="run", what=path)
    if sidecar_path(path).exists() or kind == "savedmodel":
        side = read_sidecar(path)
        notes = check_pair(path, side)
    else:  # issue 28 §11: a lone .onnx (its metadata_props) or .tflite (saved elsewhere)
        from cnncli.inference.lone_exported import lone_sidecar

        side, notes = lone_sidecar(path, kind, native_quiet)
    image = ImageSpec.from_dict(side["image"])
    head = head_from_sidecar(side, path)
    model = ExportedModel(path, kind, [None, *image.shape])
    inputs, outputs, props = model.open()
    if inputs:  # a SavedModel's serving function may not say its shapes: checked when run
        check_model_fits(side, path, inputs, outputs or [[None, head.units]])
    check_onnx_props(side, props, path)
    extra = {
        f.name: side[f.name]
        for f in fields(ModelInfo)
        if f.name in ("task", "thresholds", "targets") and f.name in side
    }
    return ModelInfo(
        model=model,
        path=path,
        class_names=list(side["class_names"]),
        image=image,
        pixel_scale=float(side["pixel_scale"]),
        from_cnncli=not side.get("assumed"),
        head=head,
        notes=notes,
        image_stored=not side.get("assumed"),
        names_from="indices" if side.get("assumed") else "stored",
        **extra,
    )


__all__ = ["ExportedModel", "exported_kind", "native_quiet", "open_exported"]
