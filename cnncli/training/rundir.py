"""The run folder: its default name (runs/train, runs/train2, ...), the claims a run holds
(its folder, and its dataset for reading: `run_claims`), its layout, run.json, and the
resumable state written atomically at the end of every epoch.

Layout of a run folder:
  best.keras           the model at its best monitored epoch (with cnncli metadata)
  last.keras           the model after the last finished epoch
  checkpoints/         the --checkpoint pattern's files
  history.csv          one row per finished epoch, numbered from 1
  history.png          loss and accuracy curves (two panels)
  run.json             options, versions, dataset hash, per-epoch times, best epoch, metadata
  evaluation-test.json the model's evaluation on a split (a report wrote it), stamped with
                       the model file it evaluated (name, size, mtime_ns)
  state/               resume state: state.json, model.keras (the training model with its
                       augmentation and precision, written once) + epoch-NNNN.npz (its
                       weights and optimizer variables at the last finished epoch)
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli import __version__, claims
from cnncli.atomic import check_replaceable, clean_debris, write_json, write_text
from cnncli.errors import (
    BusyError,
    CnnError,
    InputError,
    writing,
)
from cnncli.safe_files import read_json_file, read_text_file

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo

RUN_FORMAT = "cnncli-run"  # run.json's format name
RUN_FORMAT_VERSION = 1  # the run.json this cnncli writes, and the newest it reads
RUN_JSON = "run.json"
HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
STATE_DIR = "state"
STATE_JSON = "state.json"
TRAIN_MODEL = "model.keras"  # in state/: the training model, written when the run starts
# What a reader of a run folder reads at most (docs/FORMAT.md): run.json holds options,
# class names and a few numbers per epoch (about 40 KB for 1,000 classes and 1,000 epochs);
# history.csv 30 to 200 bytes an epoch (20,000 epochs of ten metrics fit, 140,000 of four).
RUN_JSON_LIMIT = 4 * 2**20
HISTORY_LIMIT = 4 * 2**20
EVALUATION_JSON = "evaluation-{split}.json"  # the model's evaluation, whoever computed it


def default_run_dir(root: str | Path = "runs", name: str = "train") -> Path:
    """The first free folder of runs/train, runs/train2, runs/train3, ... (a name another
    run has claimed, `.train2.lock`, is not free either)."""
    root = Path(root)
    taken = set()
    if root.is_dir():
        pattern = re.compile(rf"^\.?{re.escape(name)}(\d*)(\.lock)?$")
        for p in root.iterdir():
            m = pattern.match(p.name)
            if m and (p.name[0] == ".") == bool(m.group(2)):
                taken.add(int(m.group(1) or 1))
    n = 1
    while n in taken:
        n += 1
    return root / (name if n == 1 else f"{name}{n}")


@contextmanager
def run_claims(
    run_dir: str | Path, dataset_dir: str | os.PathLike | None, chief: bool, what: str
) -> Iterator[Path]:
    """The claims a training holds from its checks to its end (cnncli.claims): the run
    folder's on the chief (a second train into it is refused; `run_dir` None: the first of
    runs/train, runs/train2, ... that is free and can be claimed), then a read claim on
    `dataset_dir` (a build cannot replace it meanwhile; None: no dataset to claim). What
    stopped runs left in the folder (temporary files of processes that are gone) is removed
    and said. Yields the run folder."""
    with ExitStack() as held:
        if chief:
            run_dir = held.enter_context(_claimed_run_dir(run_dir, what))
        elif run_dir is None:
            run_dir = default_run_dir()
        if dataset_dir is not None:
            held.enter_context(claims.reading(dataset_dir, what))
        yield Path(run_dir)


@contextmanager
def _claimed_run_dir(run_dir, what: str) -> Iterator[Path]:
    if run_dir is None:
        for _ in range(100):  # another run may claim the free name first: then the next one
            run_dir = default_run_dir()
            try:
                lock = claims.acquire(run_dir, what)
                break
            except BusyError:
                continue
        else:  # pragma: no cover - 100 runs starting at once
            raise BusyError("no free run folder in runs/", "give one with -o")
    else:
        lock = claims.acquire(run_dir, what)
    run_dir = Path(run_dir)
    try:
        for folder in (run_dir, run_dir / STATE_DIR, run_dir / "checkpoints"):
            clean_debris(folder)
        yield run_dir
    finally:
        claims.release(lock)


def dataset_of(run_dir: str | Path) -> Path | None:
    """The dataset folder run.json names, or None when it cannot be read."""
    try:
        return Path(read_run_json(run_dir)["dataset"]["path"])
    except (CnnError, OSError, ValueError, KeyError, TypeError):
        return None


def check_run_dir(path: str | Path, overwrite: bool = False) -> None:
    """Refuse an existing non-empty run folder without overwrite, and with overwrite
    anything but an earlier run folder (one holding run.json), so --overwrite never deletes
    an unrelated folder; and one another process writes (atomic.check_replaceable's rule).
    Nothing is changed."""
    check_replaceable(path, overwrite, "a cnncli run folder", RUN_JSON, empty_is_free=True)


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """An empty run folder at `path`, made or emptied (see check_run_dir for what is
    refused)."""
    path = Path(path)
    check_run_dir(path, overwrite)
    if path.is_dir() and not any(path.iterdir()):
        return path
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# ------------------------------------------------------------------ run.json
def new_run_record(
    dataset_dir: str | os.PathLike, info: DatasetInfo, model: dict, options: dict
) -> dict:
    """run.json of a run that starts now (status "running"); `info` is the DatasetInfo,
    `model` says what is trained (source, name, params, head, from_logits, loss)."""
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "command": "train",
        "status": "running",
        "started": now(),
        "dataset": {
            "path": str(Path(dataset_dir).resolve()),
            "sha256": info.sha256,
            "class_names": info.class_names,
            "image": info.image.to_dict(),
            "counts": {s: info.count(s) for s in info.splits},
        },
        "model": model,
        "options": options,
        "versions": versions(),
        "metadata": model_metadata(info),
    }


def record_epoch(run_dir: Path, run: dict, state: Any, monitor: str | None) -> None:
    """run.json after an epoch is saved: its time, the epochs finished and the best epoch so
    far (`state`: the training's RunState) with its metrics, written atomically."""
    run["epoch_seconds"] = state.epoch_seconds
    run["epochs_finished"] = state.epoch
    run["best"] = {
        "epoch": state.best_epoch,
        "monitor": monitor,
        "value": state.best_value,
        "metrics": next((r for r in state.history if r["epoch"] == state.best_epoch), {}),
    }
    with writing(Path(run_dir) / RUN_JSON):
        write_json(Path(run_dir) / RUN_JSON, run)


def model_metadata(info: DatasetInfo) -> dict:
    """What every model a run saves carries (cnncli.models.io; docs/FORMAT.md)."""
    # here, not at the top: `cnncli runs` reads this module's names without NumPy/Pillow
    from cnncli.models.metadata import format_version_for, task_metadata

    meta = {
        "class_names": info.class_names,
        "image": info.image.to_dict(),
        "pixel_scale": 1.0,
        "dataset_sha256": info.sha256,
        "cnncli_version": __version__,
        **task_metadata(info),  # multilabel: thresholds; regression: targets
    }
    version = format_version_for(meta)  # the one rule, as where the model is saved
    return meta | {"format_version": version} if version > 1 else meta  # a classifier's: none


def versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf

    return {
        "cnncli": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------ evaluations
def model_stamp(model: Path) -> dict:
    """What says that a stored evaluation is of this model file: name, size, mtime_ns."""
    st = Path(model).stat()
    return {"file": Path(model).name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def store_evaluation(run_dir: str | Path, split: str, evaluation: dict, model: Path) -> Path:
    """Keep `evaluation` (evaluate's JSON of `model`, a file of the run, on `split`) in the
    run folder, stamped with the model file, so `cnncli runs` shows it whichever report
    computed it; under the claim of that file (BusyError while another writes it)."""
    path = Path(run_dir) / EVALUATION_JSON.format(split=split)
    with claims.claim(path, "report"):
        write_json(path, {**evaluation, "model": model_stamp(model)})
    return path


# ------------------------------------------------------------------ history.csv
def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv rewritten whole and atomically: never a duplicate or half row."""
    keys: list[str] = ["epoch"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(k, row.get(k, "")) for k in keys})
    write_text(path, buf.getvalue())


WHOLE_COLUMNS = ("epoch", "phase")  # counted, not measured: written 2, never 2.0


def _csv_value(key: str, v):
    if key in WHOLE_COLUMNS and isinstance(v, float) and v.is_integer():
        return int(v)
    return repr(float(v)) if isinstance(v, float) else v


def read_history(path: str | Path) -> list[dict]:
    """history.csv's complete rows (read_complete_history), for drawing and resuming."""
    return read_complete_history(Path(path))[0]


def read_complete_history(path: Path) -> tuple[list[dict], int]:
    """(complete rows, rows left out) of history.csv. A row is complete when it has every
    column, each a number, and the line ends (a kill can cut the last line mid-number);
    reading stops at the first incomplete row. A missing file has no rows; a file that is
    not a regular file of at most HISTORY_LIMIT bytes, or not UTF-8, is refused
    (RefusedFile); a byte-order mark is dropped."""
    try:
        text = read_text_file(path, HISTORY_LIMIT)
    except FileNotFoundError:
        return [], 0
    end = text.rfind("\n") + 1  # what follows the last newline was cut short, or is empty
    cut = 1 if text[end:].strip() else 0
    reader = csv.reader(io.StringIO(text[:end], newline=""))
    header = next(reader, None)
    if header is None:
        return [], cut
    rows: list[dict] = []
    for cells in reader:
        row = _parse_row(header, cells)
        if row is None:
            return rows, 1 + sum(1 for _ in reader) + cut
        rows.append(row)
    return rows, cut


def history_sample(rows: list[dict], most: int, keep: Sequence[int] = ()) -> list[dict]:
    """At most about `most` of `rows` (history rows) for a chart or a page, evenly spaced,
    always with the first and the last and the rows whose epoch is in `keep` (the best);
    every row when there are no more than `most`."""
    if len(rows) <= most:
        return rows
    n, best = len(rows), set(keep)
    picked = {round(i * (n - 1) / (most - 1)) for i in range(most)}
    picked |= {i for i, row in enumerate(rows) if row.get("epoch") in best}
    return [rows[i] for i in sorted(picked)]


def _parse_row(header: list[str], cells: list[str]) -> dict | None:
    if len(cells) != len(header):
        return None
    row = {}
    for key, cell in zip(header, cells, strict=True):
        if cell == "":
            continue
        try:
            row[key] = int(cell) if key == "epoch" else float(cell)
        except ValueError:
            return None
    return row if "epoch" in row else None


# ------------------------------------------------------------------ resume state
def state_dir(run_dir: Path) -> Path:
    return Path(run_dir) / STATE_DIR


def write_state(run_dir: Path, state: dict) -> None:
    write_json(state_dir(run_dir) / STATE_JSON, state)


def read_state(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run folder {run_dir} not found", "give the folder a train run wrote")
    path = state_dir(run_dir) / STATE_JSON
    if not path.is_file():
        if (run_dir / RUN_JSON).is_file():
            raise InputError(
                f"{run_dir} has no resumable state (no epoch finished yet)",
                "start the training again with cnncli train",
            )
        raise InputError(f"{run_dir} is not a cnncli run folder (no run.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON ({e})") from None


def read_run_json(run_dir: str | Path) -> dict:
    """run.json of the run folder `run_dir`, checked: a regular file of at most
    RUN_JSON_LIMIT bytes (cnncli.safe_files), valid JSON of format cnncli-run and a
    format_version this cnncli reads (InputError naming the file otherwise). THE reader of
    run.json: `cnncli runs`, `report` and `--resume` all read it here."""
    file = Path(run_dir) / RUN_JSON
    try:
        run = read_json_file(file, RUN_JSON_LIMIT)  # a regular file, bounded, not too deep
    except FileNotFoundError:
        raise InputError(f"{run_dir} is not a cnncli run folder (no run.json)") from None
    if not isinstance(run, dict) or run.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise InputError(f"{file} is not a cnncli run record")
    version = run.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{file} has format_version {version!r}, not a whole number (damaged?)")
    if version > RUN_FORMAT_VERSION:
        raise InputError(
            f"{file} has format_version {version}, newer than this cnncli reads "
            f"({RUN_FORMAT_VERSION})",
            "upgrade cnncli to list this run",
        )
    return run
