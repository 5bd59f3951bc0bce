"""The fast copy of a Keras model: `predict` and `evaluate` on a .keras/.h5 file (or a train
run folder: its best.keras) answer through an exported copy run by LiteRT (or onnxruntime),
made once by cnncli export (with its agreement check against the Keras model) and kept
beside the model, so a later call never imports TensorFlow.

Where the copy lives: `.cnncli-cache/` in the model's train run folder when it is writable,
else the user's cache folder ($XDG_CACHE_HOME/cnncli, ~/.cache/cnncli): nothing is written
beside a model from elsewhere. Each copy is keyed by
the sha256 of the model file (`<stem>-<sha[:16]>.tflite` and its sidecar), so a changed or
replaced best.keras never uses a stale copy, and a record `<copy>.record.json`, written last,
says the copy is complete: the copy's own sha256 (a copy changed since is refused and made
again) or, when the export failed its check, why (remembered: no retry on every call).
The copy is made under a claim (cnncli.claims) on the record: a second predict at the same
time uses Keras for that call and says so; the copy itself is written atomically by
export_model, so no half-written copy is ever read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from cnncli.errors import BusyError, CnnError, InputError, UsageError
from cnncli.export.sidecar import file_sha256
from cnncli.models.formats import EXTRA, get_format, missing_packages
from cnncli.models.model_file import ModelFile, read_model_file

RUNTIMES = ("auto", "keras", "onnx", "litert")
# Which fast runtime `auto` makes a copy for (bench/bench_predict_runtime.py measures both):
# LiteRT, as here it exported in half the time of tf2onnx, imported in 0.7 s against 1.3 s,
# answered 4x sooner at batch 1 and 3x faster at batch 64, and needs one package,
# ai-edge-litert (its converter is TensorFlow's own), where ONNX needs tf2onnx, onnx and
# onnxruntime. `--runtime onnx` makes and uses the ONNX copy instead.
PREFERRED = "litert"
CACHE_FOLDER = ".cnncli-cache"
RECORD_SUFFIX = ".record.json"
RECORD_VERSION = 1
RECORD_LIMIT = 2**16
_SUFFIX = {"onnx": ".onnx", "litert": ".tflite"}


@dataclass
class Chosen:
    """What predict/evaluate should open: `model` (for Keras a path, or the ModelFile read
    already; or the fast copy's ModelInfo named after the model file), the runtime, and
    the line that says why Keras was used or that the copy was made (None: nothing to say)."""

    model: object
    runtime: str
    note: str | None = None
    copy: Path | None = None


class FastModel:
    """A model for predict and evaluate whose runtime is chosen when they open it
    (cnncli.inference.model.open_model calls `open_model`), after their own checks of the
    arguments and outputs: so a bad option is refused before any export or TensorFlow.
    `path` is the model file (a run folder's best.keras); `chosen` is set once opened."""

    def __init__(self, model, runtime: str = "auto", unsafe: bool = False):
        self.runtime = check_runtime(runtime)
        self.path = model_file(model)
        self.unsafe = unsafe
        self.chosen: Chosen | None = None
        self.file: ModelFile | None = None  # the Keras file as the command's check read it

    def open_model(self):
        """The ModelInfo of the fast copy (named after the model file) or of the Keras model,
        with the line that says why Keras, or that the copy was made, among its notes."""
        from cnncli.inference.model import open_model

        self.chosen = choose_runtime(self.path, self.runtime, self.unsafe, self.file)
        model = self.chosen.model
        if not hasattr(model, "notes"):  # Keras: the file's path, or its ModelFile
            model = open_model(model, unsafe=self.unsafe)
        if self.chosen.note:
            model = replace(model, notes=[*model.notes, self.chosen.note])
        return model

    @property
    def runtime_text(self) -> str:
        return runtime_text(self.chosen) if self.chosen else "Keras"


def check_runtime(runtime: str) -> str:
    """--runtime's value (any case); UsageError listing the runtimes otherwise."""
    name = str(runtime).strip().lower()
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", f"use --runtime {'|'.join(RUNTIMES)}")
    return name


def model_file(path: str | os.PathLike) -> Path:
    """A model path as given, or a train run folder's best model (best.keras)."""
    from cnncli.training.rundir import BEST_MODEL, RUN_JSON

    path = Path(path)
    if path.is_dir() and (path / RUN_JSON).is_file():
        best = path / BEST_MODEL
        if not best.is_file():
            raise InputError(
                f"run folder {path} has no {BEST_MODEL} yet",
                "wait for its first epoch to end, or give a model file",
            )
        return best
    return path


def choose_runtime(
    model: str | os.PathLike,
    runtime: str = "auto",
    unsafe: bool = False,
    file: ModelFile | None = None,
) -> Chosen:
    """Which runtime answers for `model` (a path: a .keras/.h5 file, a run folder, or an
    exported .onnx/.tflite file) under --runtime `runtime`, with the fast copy opened (made
    first when there is none). Reads no TensorFlow unless the copy must be made. `file`:
    the Keras file as the caller read it (read here otherwise), its sha256 the copy's key."""
    from cnncli.inference.runtimes import exported_kind

    runtime = check_runtime(runtime)
    path = model_file(model)
    kind = exported_kind(path)
    if kind is not None:  # an exported file runs by its own runtime (--runtime is for .keras)
        if runtime in _SUFFIX and runtime != kind:
            raise UsageError(
                f"{path} is an exported {kind} model: --runtime {runtime} cannot run it",
                "leave out --runtime, or give the .keras file it was exported from",
            )
        return Chosen(path, kind)
    keras = file if file is not None and file.path == path else path  # what Keras opens
    if runtime == "keras":
        return Chosen(keras, "keras")
    fmt = PREFERRED if runtime == "auto" else runtime
    missing = missing_packages(get_format(fmt))
    if missing:
        if runtime == "auto":
            return Chosen(keras, "keras")  # the export extra is not installed: Keras, silently
        raise UsageError(
            f"--runtime {fmt} needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed",
            f"install them: {EXTRA}, or use --runtime keras",
        )
    return _fast_copy(read_model_file(keras), fmt, unsafe)


def cache_folders(model: Path) -> list[Path]:
    """Where a fast copy of `model` may live, first choice first: .cnncli-cache in its train
    run folder (a model from elsewhere gets nothing written beside it), then the user's
    cache folder ($XDG_CACHE_HOME/cnncli, else ~/.cache/cnncli)."""
    from cnncli.inference.split_io import run_folder_of

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    run = run_folder_of(model)
    return [*([run / CACHE_FOLDER] if run is not None else []), Path(base) / "cnncli"]


def copy_path(folder: Path, model: Path, sha: str, fmt: str) -> Path:
    """The fast copy of `model` (sha256 `sha`) as `fmt` in `folder`."""
    return folder / f"{model.stem}-{sha[:16]}{_SUFFIX[fmt]}"


def record_path(copy: Path) -> Path:
    return copy.with_name(copy.name + RECORD_SUFFIX)


def _fast_copy(file: ModelFile, fmt: str, unsafe: bool) -> Chosen:
    path, sha = file.path, file.sha256
    stale: str | None = None
    for place in cache_folders(path):
        found = _use_copy(path, copy_path(place, path, sha, fmt), sha, fmt)
        if isinstance(found, Chosen):
            return found
        stale = stale or found
    folders = cache_folders(path)
    folder = next((f for f in folders if _writable(f)), None)
    if folder is None:
        where = " and ".join(str(f) for f in folders)
        return Chosen(
            file,
            "keras",
            f"runtime: Keras, as no folder can hold the fast {fmt} copy ({where}: read-only)",
        )
    copy = copy_path(folder, path, sha, fmt)
    try:
        return _make_copy(file, copy, fmt, unsafe, stale)
    except BusyError:
        return Chosen(
            file,
            "keras",
            f"runtime: Keras this time, as another cnncli is making "
            f"the fast {fmt} copy ({copy}) now",
        )


def _use_copy(model: Path, copy: Path, sha: str, fmt: str) -> Chosen | str | None:
    """The Chosen for a copy whose record says it is good (or that it failed its check);
    a line saying why a copy that is there cannot be used; None when there is none."""
    from cnncli.safe_files import read_json_file

    record = record_path(copy)
    if not record.is_file():
        return None
    try:
        rec = read_json_file(record, RECORD_LIMIT)
    except (CnnError, OSError):
        return f"its record {record} could not be read"
    if not isinstance(rec, dict) or rec.get("source_sha256") != sha:
        return f"its record {record} is not this model's"
    if rec.get("status") == "failed":
        return Chosen(
            model,
            "keras",
            f"runtime: Keras, as its {fmt} copy failed the agreement "
            f"check: {rec.get('reason', '?')} (remembered in {record})",
        )
    if not copy.is_file() or file_sha256(copy) != rec.get("copy_sha256"):
        return f"the fast copy {copy} was changed since it was made"
    try:
        info = _open_copy(copy, sha)
    except CnnError as e:
        return f"the fast copy {copy} cannot be used ({e.message})"
    return Chosen(replace(info, path=model), fmt, None, copy)


def _open_copy(copy: Path, sha: str):
    """The ModelInfo of a fast copy, its sidecar read and checked (cnncli export's reader);
    a sidecar naming another source model is refused."""
    from cnncli.errors import ModelFileError
    from cnncli.export.sidecar import read_sidecar
    from cnncli.inference.runtimes import open_exported

    source = read_sidecar(copy).get("source") or {}
    if source.get("sha256") != sha:
        raise ModelFileError(f"{copy}'s sidecar names another source model", "make it again")
    return open_exported(copy)


def _writable(folder: Path) -> bool:
    """Whether a copy can be written in `folder` (made here if it is not there yet)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _make_copy(file: ModelFile, copy: Path, fmt: str, unsafe: bool, stale: str | None) -> Chosen:
    """Export the model `file` to `copy` under the record's claim, then write the record."""
    from cnncli import __version__
    from cnncli.atomic import write_json
    from cnncli.claims import claim
    from cnncli.errors import ModelError

    model, sha = file.path, file.sha256
    record = record_path(copy)
    copy.parent.mkdir(parents=True, exist_ok=True)
    with claim(record, "cnncli: making a fast copy"):
        found = _use_copy(model, copy, sha, fmt)  # made by another while we waited
        if isinstance(found, Chosen):
            return found
        rec = {
            "format_version": RECORD_VERSION,
            "source": model.name,
            "source_sha256": sha,
            "format": fmt,
            "copy": copy.name,
            "cnncli_version": __version__,
        }
        try:
            result = _export(file, fmt, copy, unsafe)
        except ModelError as e:  # a conversion or agreement check that failed: remember it
            write_json(record, {**rec, "status": "failed", "reason": e.message})
            return Chosen(
                file,
                "keras",
                f"runtime: Keras, as its {fmt} copy failed the "
                f"agreement check: {e.message} (remembered in {record})",
            )
        write_json(
            record,
            {
                **rec,
                "status": "ok",
                "copy_sha256": file_sha256(copy),
                "check": result.check.to_json(),
            },
        )
    made = f"made the fast {fmt} copy of {model.name} once (checked against Keras): {copy}"
    if stale:
        made += f"; made again, as {stale}"
    chosen = _use_copy(model, copy, sha, fmt)
    if not isinstance(chosen, Chosen):  # pragma: no cover - replaced between two lines
        return Chosen(file, "keras", f"runtime: Keras, as {chosen}")
    return replace(chosen, note=made)


def _export(model: ModelFile, fmt: str, copy: Path, unsafe: bool):
    """cnncli export's export_model to `copy` (its check on the bundled sample images)."""
    from cnncli.export.run import export_model

    return export_model(model, fmt, copy, overwrite=True, unsafe=unsafe)


def runtime_text(chosen: Chosen) -> str:
    """'onnxruntime', 'LiteRT' or 'Keras': how the output names the runtime used."""
    return {"onnx": "onnxruntime", "litert": "LiteRT", "keras": "Keras"}.get(
        chosen.runtime, chosen.runtime
    )


__all__ = [
    "RUNTIMES",
    "Chosen",
    "FastModel",
    "cache_folders",
    "check_runtime",
    "choose_runtime",
    "copy_path",
    "model_file",
    "record_path",
    "runtime_text",
]
