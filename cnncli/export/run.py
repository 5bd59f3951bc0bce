"""`export_model`: a cnncli model file -> a SavedModel folder, a LiteRT file or an ONNX file,
with its sidecar, proven to give the Keras model's answers before it is put in place.

Everything a user can get wrong is refused before TensorFlow loads: the format, --int8
without litert or calibration data, an output that exists (unless `overwrite`), a missing
runtime package (the extra to install is named), a dataset whose images are not the model's
size. The export is written to a temporary path beside the target (cnncli.atomic), under the
target's claim (cnncli.claims), checked (cnncli.export.check), and renamed into place only
when the check passes: a failed check leaves nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from cnncli.atomic import atomic_dir, atomic_file, scratch
from cnncli.claims import claim
from cnncli.datasets.store import open_dataset
from cnncli.errors import DatasetError, ModelError, OutputExistsError, UsageError, writing
from cnncli.export import check as checks
from cnncli.export.convert import representative_images, write_model
from cnncli.export.formats import check_request, checked_output, default_output
from cnncli.export.sidecar import make_sidecar, model_sha256, sidecar_path
from cnncli.images import ImageSpec
from cnncli.models.formats import get_format, require_packages
from cnncli.models.model_file import ModelFile, read_model_file
from cnncli.progress import Progress


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    format: str
    int8: bool
    size: int  # bytes: the file, or the SavedModel folder's files together
    check: checks.CheckResult
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "sidecar": str(self.sidecar),
            "format": self.format,
            "int8": self.int8,
            "size": self.size,
            "check": self.check.to_json(),
            "notes": list(self.notes),
        }


def export_model(
    model: str | os.PathLike | ModelFile,
    format: str,
    output: Path | None = None,
    *,
    int8: bool = False,
    calibration: str | os.PathLike | None = None,
    check: str | os.PathLike | None = None,
    overwrite: bool = False,
    unsafe: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Export the model file `model` as `format` (savedmodel, litert, onnx) to `output`
    (default: formats.default_output), with its sidecar, after the agreement check on the
    images of `check` (a dataset folder; default: `calibration`, else a few sample images).
    `int8` (litert only) quantizes with images of `calibration`'s train split.
    `progress(done, total)` counts the checked images. Raises ModelError (exit 1) when a
    float export differs from the Keras model beyond the tolerance; nothing is left then.
    `model` may be the file's ModelFile as a caller read it: the file is read once."""
    fmt = get_format(format)
    check_request(fmt, int8, calibration)
    file = read_model_file(model)  # its checks, metadata and sha256, from one open
    model = file.path
    output = checked_output(output if output is not None else default_output(model, fmt, int8), fmt)
    if output.resolve() == model.resolve():
        raise UsageError(f"-o {output} is the model being exported", "write it elsewhere")
    for path in (output, sidecar_path(output)):
        if path.exists() and not overwrite:
            raise OutputExistsError(path)
    require_packages(fmt)
    calibration_set = open_dataset(calibration) if calibration is not None else None
    check_set = open_dataset(check) if check is not None else calibration_set
    stored = file.metadata or {}
    if stored.get("image"):  # the image it takes, stored: checked before TensorFlow loads
        _check_fits(ImageSpec.from_dict(stored["image"]), calibration_set, check_set)

    from cnncli.inference.model import open_model
    from cnncli.inference.runtimes import ExportedModel

    info = open_model(file, unsafe=unsafe)
    if not stored.get("image"):  # else its input shape's, known once loaded
        _check_fits(info.image, calibration_set, check_set)
    side = make_sidecar(info, fmt.name, int8, stored, file)
    representative = None
    if int8:
        assert calibration_set is not None  # check_request: --int8 needs a calibration set
        representative = representative_images(calibration_set, info.pixel_scale)
    output.parent.mkdir(parents=True, exist_ok=True)
    with (
        claim(output, "cnncli export"),
        writing(output),
        _target(output, fmt.folder, overwrite) as tmp,
    ):
        write_model(info.model, fmt.name, tmp, side, representative, output)
        exported = replace(info, model=ExportedModel(tmp, fmt.name, [None, *info.image.shape]))
        result = _run_check(info, exported, check_set, int8, progress)
        if not result.passed:
            raise ModelError(
                f"the {fmt.name} export gives outputs up to {result.max_abs_diff:.3g} away "
                f"from the Keras model's (allowed: {result.tolerance:.3g}) on "
                f"{result.images} images; nothing was written",
                "report this with the model; the export is not safe to use",
            )
        side["check"] = result.to_json()
        # the pair switches together: the sidecar names the new model by its digest and is
        # renamed into place first, the model last; a kill between the two leaves the old
        # model beside a sidecar that does not name it, which predict refuses
        side["model_sha256"] = model_sha256(tmp)
        _write_sidecar(output, side)
    size = _size(output)
    return ExportResult(
        output, sidecar_path(output), fmt.name, int8, size, result, list(info.notes)
    )


def _check_fits(spec: ImageSpec, *datasets) -> None:
    """DatasetError when a dataset's images are not the model's size and channels."""
    for ds in datasets:
        if ds is not None and tuple(ds.image.shape) != tuple(spec.shape):
            raise DatasetError(
                f"dataset {ds.path} holds {ds.image.describe()} images but the model takes "
                f"{spec.describe()}",
                f"give a dataset built with --size {spec.height}x{spec.width} --color {spec.color}",
            )


@contextmanager
def _target(output: Path, folder: bool, overwrite: bool):
    """A temporary file or folder beside `output`, renamed to it when the block ends
    well (libraries' temporary files beside it too); removed when it raises."""
    if folder:
        with atomic_dir(output, overwrite=overwrite) as tmp, scratch(output):
            yield tmp
    else:
        with atomic_file(output, overwrite=overwrite, scratch_beside=True) as tmp:
            yield tmp


def _write_sidecar(output: Path, side: dict) -> None:
    from cnncli.atomic import write_json

    write_json(sidecar_path(output), side)


def _run_check(info, exported, dataset, int8: bool, progress) -> checks.CheckResult:
    if dataset is None:
        batches = checks.sample_batches(info.image)
        return checks.compare(
            info, exported, batches, checks.SAMPLE_IMAGES, int8, "sample data", progress=progress
        )
    from cnncli.inference.evaluate import default_split

    split = default_split(dataset)
    labelled = dataset.task == info.task and dataset.output_size == (
        info.head.num_classes if info.task == "classify" else len(info.class_names)
    )
    batches = checks.dataset_batches(dataset, split, labelled)
    return checks.compare(
        info, exported, batches, dataset.count(split), int8, str(dataset.path), split, progress
    )


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return os.path.getsize(path)
