"""What a TensorFlow command refuses before TensorFlow loads (seconds of import): a model
file that is missing or not a model, and a named input that does not exist. One call at the
top of a command body. The errors are the library's own, so a mistake reads (and exits, 2)
the same as when the library meets it later."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the module itself is imported when the check runs (start-up stays light)
    from cnncli.models.model_file import ModelFile


def check_first(model: Path | None = None, inputs: Sequence[Path] = ()) -> ModelFile | None:
    """Refuse `model` unless it is a model file (by its name and first bytes) and any of
    `inputs` (image files, folders, datasets the user named) that does not exist. Nothing
    here imports TensorFlow. Returns a Keras model file as read (ModelFile: the command
    passes it on, so the file is opened once), else None."""
    from cnncli.errors import ImageError, InputError, not_found
    from cnncli.models.exported_files import exported_kind
    from cnncli.models.model_file import read_model_file
    from cnncli.models.sidecar import read_sidecar, sidecar_path

    if model is not None and exported_kind(model):  # cnncli export's: its sidecar is read
        if exported_kind(model) == "savedmodel" or sidecar_path(model).exists():
            read_sidecar(model)  # (a lone .onnx/.tflite: cnncli.inference.lone_exported)
        elif not Path(model).is_file():
            raise InputError(f"model file {model} not found", "give the path of a model file")
    file = read_model_file(model) if model is not None and not exported_kind(model) else None
    for path in inputs:
        if not_found(path):  # a symlink loop, a name too long: said as such
            raise ImageError(path, "file not found")  # what load_image says when it reads it
    return file
