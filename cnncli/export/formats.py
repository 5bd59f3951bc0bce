"""What an export request needs, checked without TensorFlow: where its output goes by
default and the options that only make sense together (--int8 with litert and a
calibration dataset). The formats themselves (names, files, packages) are in
cnncli.models.formats."""

from __future__ import annotations

import os
from pathlib import Path

from cnncli.errors import UsageError
from cnncli.models.formats import Format


def check_request(fmt: Format, int8: bool, calibration: str | os.PathLike | None) -> None:
    """--int8 needs litert and a calibration dataset; UsageError otherwise."""
    if int8 and fmt.name != "litert":
        raise UsageError(
            f"--int8 quantizes LiteRT files only, not --format {fmt.name}",
            "use --format litert --int8 --calibration DATASET_DIR",
        )
    if int8 and calibration is None:
        raise UsageError(
            "--int8 needs --calibration DATASET_DIR (images to set the int8 ranges from)",
            "give a dataset built with cnncli dataset build at the model's image size",
        )
    if calibration is not None and not int8:
        raise UsageError(
            "--calibration is for --int8 only", "add --int8, or give the images to --check"
        )


def default_output(model_path: Path, fmt: Format, int8: bool = False) -> Path:
    """`<model name><suffix>` (`best.tflite`, `best.int8.tflite`, `best_savedmodel`), placed
    by cnncli.inference.split_io.default_output_path (the run folder, else here)."""
    from cnncli.inference.split_io import default_output_path

    return default_output_path(model_path, model_path.stem + (".int8" if int8 else "") + fmt.suffix)


def checked_output(output: Path, fmt: Format) -> Path:
    """The output path as given, with a LiteRT/ONNX file's extension required."""
    output = Path(output)
    if not fmt.folder and output.suffix.lower() != fmt.suffix:
        raise UsageError(
            f"-o {output}: a {fmt.what} must end in {fmt.suffix}",
            f"name it like {output.with_suffix(fmt.suffix).name}",
        )
    return output
