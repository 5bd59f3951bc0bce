"""An exported model whose sidecar is missing (issue 28 §11): an `.onnx` that cnncli wrote
carries every key of its sidecar in its metadata_props (cnncli.export.convert), read here
through onnxruntime; a `.tflite` (or an .onnx from elsewhere) is read as a plain .h5 saved
elsewhere is: image size from its input shape, one output column per class, pixels x 1/255,
class names the output indices, each default stated as a note, and --classes/--scale
replace them. Reads bounded metadata only; runs nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from cnncli.errors import InputError, ModelFileError

METADATA_LIMIT = 2**20  # as a sidecar file (cnncli.export.sidecar.SIDECAR_LIMIT)


def lone_sidecar(
    path: Path, kind: str, quiet: Callable[[], AbstractContextManager] = contextlib.nullcontext
) -> tuple[dict, list[str]]:
    """(the sidecar dict, notes on the defaults used) for the exported model at `path`
    (`kind`: onnx or litert) that has no sidecar file; `quiet()` keeps LiteRT's native info
    lines off stderr (cnncli.inference.runtimes.native_quiet). ModelFileError when the
    stored metadata is not usable; InputError for a SavedModel folder (no shape is read)."""
    if kind == "onnx":
        stored, shapes = _onnx(path)
        if stored is not None:
            return stored, [f"no sidecar beside {path.name}: read from its metadata_props"]
    elif kind == "litert":
        shapes = _litert(path, quiet)
    else:
        raise InputError(
            f"{path} has no {path.name}.cnncli.json beside it (class names, image size, "
            "pixel scale)",
            "export the model with cnncli export, which writes it, and keep the two together",
        )
    return _defaults(path, *shapes)


def _onnx(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map or {}
    shapes = (session.get_inputs()[0].shape, session.get_outputs()[0].shape)
    text = props.get("cnncli")
    if text is None:
        return None, shapes
    if len(text) > METADATA_LIMIT:
        raise ModelFileError(f"{path}: its cnncli metadata is over 1 MiB", "export it again")
    try:
        side = json.loads(text)
    except ValueError:
        raise ModelFileError(
            f"{path}: its cnncli metadata is not JSON", "export it again"
        ) from None
    from cnncli.models.sidecar import check_sidecar

    return check_sidecar(side, path, embedded=True), shapes


def _litert(path: Path, quiet):
    from ai_edge_litert.interpreter import Interpreter

    with quiet():
        interpreter = Interpreter(model_path=str(path))
    return (
        interpreter.get_input_details()[0]["shape"],
        interpreter.get_output_details()[0]["shape"],
    )


def _defaults(path: Path, input_shape, output_shape) -> tuple[dict, list[str]]:
    """A sidecar of the defaults a model saved elsewhere gets (cnncli.models.metadata),
    marked `assumed`: nothing in it was stored with the model."""
    from cnncli.images import ImageSpec

    # numpy ints from LiteRT; a dimension <= 0 is unknown
    dims = [
        int(d) if hasattr(d, "__index__") and int(d) > 0 else None for d in list(input_shape)[1:]
    ]
    image = ImageSpec.for_input_shape(dims)
    units = output_shape[-1] if len(output_shape) else None
    if not isinstance(units, int) and not hasattr(units, "__index__"):
        raise ModelFileError(f"{path}: its output has no fixed size", "export it with cnncli")
    units = int(units)  # type: ignore[arg-type]  # an int or a numpy int, checked above
    kind = "binary" if units == 1 else "categorical"
    names = [str(i) for i in range(2 if units == 1 else units)]
    side = {
        "format_version": 1,
        "task": "classify",
        "class_names": names,
        "head": {"kind": kind, "from_logits": False, "units": units},
        "image": image.to_dict(),
        "pixel_scale": 1 / 255,
        "assumed": True,
    }
    notes = [
        f"no sidecar beside {path.name}: read as a model saved elsewhere (its outputs taken "
        "as probabilities)",
        f"class names: the output indices {', '.join(names)}",
        "pixel scale: 1/255 (pixels divided by 255, as the course's notebooks do)",
    ]
    return side, notes
