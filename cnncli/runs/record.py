"""One run folder read into a RunRecord, from its small files only (run.json, history.csv,
the claim beside it, and report/evaluation-test.json when a report evaluated it).

Status: run.json's `status`, checked against what is on disk: "running" only while the
process that claims the folder lives (cnncli.claims' pid check); a run.json that still says
"running" without one, and a history.csv cut short by a kill, read as "interrupted".
"early-stopped" is "finished" with `early_stopped` set. Metrics are whatever columns
history.csv has (loss, accuracy, or a task's own: mae, f1, ...), so every task reads alike.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli import claims
from cnncli.errors import InputError
from cnncli.safe_files import RefusedFile, inside, read_json_file

# The run folder's names and its readers, from the one module that writes it (no NumPy).
from cnncli.training.rundir import (
    EVALUATION_JSON,
    HISTORY_CSV,
    read_complete_history,
)
from cnncli.training.rundir import read_run_json as read_run_file

DEFAULT_TASK = "classify"
REPORT_DIR = "report"  # RUN/report/: the run's page and what it computed
EVALUATION_LIMIT = 4 * 2**20  # report/evaluation-SPLIT.json (per class: ~100 bytes)
CLAIM_LIMIT = 64 * 2**10  # the claim beside a run folder: a few lines of JSON
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "rmse", "hamming")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is better (loss, mae, hamming_loss, ...)."""
    name = metric.lower()
    return any(word in name for word in LOWER_IS_BETTER)


@dataclass
class RunRecord:
    path: Path
    name: str
    status: str
    task: str = DEFAULT_TASK
    early_stopped: bool = False
    pid: int | None = None
    model: str = "?"
    params: int | None = None
    dataset: str = "?"
    dataset_sha256: str = ""
    dataset_path: str = ""
    class_names: list = field(default_factory=list)
    epochs_done: int = 0
    epochs_planned: int | None = None
    monitor: str | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    best_metrics: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)  # the last complete epoch's metrics
    test: dict = field(default_factory=dict)  # test_<metric> from a report's evaluation
    seconds_per_epoch: float | None = None
    started: str = ""
    finished: str = ""
    options: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    run: dict = field(default_factory=dict, repr=False)  # run.json as read

    @property
    def dataset_label(self) -> str:
        return f"{self.dataset} {self.dataset_sha256[:8]}".strip()

    def metric(self, name: str) -> float | None:
        """`name` at the best epoch, else at the last one; test_<m> from the evaluation."""
        for source in (self.test, self.best_metrics, self.final):
            value = source.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "status": self.status,
            "early_stopped": self.early_stopped,
            "pid": self.pid,
            "task": self.task,
            "model": self.model,
            "params": self.params,
            "dataset": {
                "name": self.dataset,
                "sha256": self.dataset_sha256,
                "path": self.dataset_path,
            },
            "epochs_done": self.epochs_done,
            "epochs_planned": self.epochs_planned,
            "best": {
                "epoch": self.best_epoch,
                "monitor": self.monitor,
                "value": self.best_value,
                "metrics": self.best_metrics,
            },
            "final": self.final,
            "test": self.test,
            "seconds_per_epoch": self.seconds_per_epoch,
            "started": self.started,
            "finished": self.finished,
            "options": self.options,
            "notes": self.notes,
        }


def read_run(path: str | Path) -> RunRecord:
    """The RunRecord of one run folder (InputError when its run.json cannot be used)."""
    path = Path(path)
    run = read_run_file(path)
    refused = None
    try:
        history, cut = read_complete_history(path / HISTORY_CSV)
    except RefusedFile as e:
        history, cut, refused = [], 0, e
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    r = RunRecord(path=path, name=name or "run", status=str(run.get("status", "?")), run=run)
    if refused is not None:
        r.notes.append(f"{refused.one_line()}: its epochs are not shown")
    r.task = run_task(run)
    r.started, r.finished = str(run.get("started", "")), str(run.get("finished", ""))
    _model(r, run)
    _dataset(r, run)
    opts = run.get("options")
    r.options = opts if isinstance(opts, dict) else {}
    planned = r.options.get("epochs")
    r.epochs_planned = planned if isinstance(planned, int) else None
    r.history = history
    r.epochs_done = len(history)
    r.final = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
    _status(r, run, cut)
    _best(r, run)
    r.seconds_per_epoch = _seconds(run.get("epoch_seconds"))
    r.test = _test_metrics(r)
    return r


def run_task(run: dict) -> str:
    """The run's task: training stores it with the model's metadata (absent: classify);
    a top-level or dataset "task" is read too."""
    task = run.get("task") or _get(run, "metadata", "task") or _get(run, "dataset", "task")
    return str(task or DEFAULT_TASK)


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _model(r: RunRecord, run: dict) -> None:
    source = _get(run, "model", "source") or {}
    value = str(source.get("value", "")) if isinstance(source, dict) else ""
    kind = source.get("kind") if isinstance(source, dict) else None
    if kind in ("spec", "from") and value:
        value = f"{kind} {Path(value).name}"
    r.model = value or str(_get(run, "model", "name") or "?")
    params = _get(run, "model", "params")
    r.params = params if isinstance(params, int) else None


def _dataset(r: RunRecord, run: dict) -> None:
    r.dataset_path = str(_get(run, "dataset", "path") or "")
    r.dataset = Path(r.dataset_path).name if r.dataset_path else "?"
    r.dataset_sha256 = str(_get(run, "dataset", "sha256") or "")
    names = _get(run, "dataset", "class_names")
    r.class_names = names if isinstance(names, list) else []


def _status(r: RunRecord, run: dict, cut: int) -> None:
    if r.status == "early-stopped":
        r.status, r.early_stopped = "finished", True
    if r.status == "running":
        holder = _holder(r.path)
        if holder is not None:
            r.pid = holder
        else:
            r.status = "interrupted"
            r.notes.append(
                "run.json says running, but no process holds the run folder (killed?): "
                f"continue with cnncli train --resume {r.path}"
            )
    if cut:
        r.notes.append(
            f"{HISTORY_CSV} is cut short: {r.epochs_done} complete epoch(s) used, "
            f"{cut} incomplete row(s) left out"
        )
        if r.status != "running":
            r.status = "interrupted"
    if r.status == "failed" and run.get("error"):
        r.notes.append(f"failed: {run.get('failed_by') or run['error']}")


def _holder(path: Path) -> int | None:
    """The pid of the live process that claims run folder `path`, else None."""
    try:  # the claim is beside the folder: a regular file, a few lines (never a FIFO)
        info = read_json_file(claims.lock_path(path), CLAIM_LIMIT)
    except (OSError, InputError):
        return None
    if isinstance(info, dict) and info.get("pid") and claims.holder_alive(info):
        return int(info["pid"]) if str(info["pid"]).isdigit() else None
    return None


def _best(r: RunRecord, run: dict) -> None:
    best = v if isinstance(v := run.get("best"), dict) else {}
    named = [m for m in (best.get("monitor"), r.options.get("monitor")) if isinstance(m, str)]
    r.monitor = named[0] if named else _default_monitor(r.final)
    epoch = best.get("epoch")
    if isinstance(epoch, int) and any(row["epoch"] == epoch for row in r.history):
        r.best_epoch = epoch
    elif r.monitor and r.history:  # run.json behind or ahead of history.csv: recompute
        rows = [
            row
            for row in r.history
            if isinstance(row.get(r.monitor), float) and math.isfinite(row[r.monitor])
        ]
        if rows:
            pick = min if lower_is_better(r.monitor) else max
            r.best_epoch = pick(rows, key=lambda row: row[r.monitor])["epoch"]
    if r.best_epoch is not None:
        row = next(row for row in r.history if row["epoch"] == r.best_epoch)
        r.best_metrics = {k: v for k, v in row.items() if k != "epoch"}
        r.best_value = r.best_metrics.get(r.monitor)


def _default_monitor(final: dict) -> str | None:
    for name in ("val_loss", "loss"):
        if name in final:
            return name
    return None


def _seconds(values) -> float | None:
    """Seconds per epoch: the median of the epochs after the first (which also builds the
    model and traces the graph), or the first alone."""
    if not isinstance(values, list):
        return None
    nums = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not nums:
        return None
    return float(statistics.median(nums[1:] if len(nums) > 1 else nums))


def evaluation_file(run_dir: Path, split: str) -> Path:
    """Where a report keeps the evaluation of the run's best model on `split`."""
    return Path(run_dir) / REPORT_DIR / f"evaluation-{split}.json"


def _test_metrics(r: RunRecord) -> dict:
    """test_<metric> for each number of the run's test evaluation (count left out): the one
    stored with the run (whichever report computed it) while its model file is unchanged,
    else the one of the run's own report. One that is not a regular file inside the run
    folder is left out with a note."""
    stored = _read_evaluation(r, EVALUATION_JSON.format(split="test"))
    if stored and _stamp_matches(r.path, stored.get("model")):
        return test_metrics(stored)
    return test_metrics(_read_evaluation(r, f"{REPORT_DIR}/{evaluation_file(r.path, 'test').name}"))


def _read_evaluation(r: RunRecord, name: str) -> dict:
    try:
        data = read_json_file(inside(r.path, name), EVALUATION_LIMIT)
    except FileNotFoundError:
        return {}
    except InputError as e:
        r.notes.append(f"{e.one_line()}: no test metrics")
        return {}
    return data if isinstance(data, dict) else {}


def _stamp_matches(path: Path, stamp) -> bool:
    """Whether `stamp` (rundir.model_stamp) still describes a model file of run `path`."""
    name = stamp.get("file") if isinstance(stamp, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name:
        return False
    try:
        st = (path / name).stat()
    except (OSError, ValueError):
        return False
    return (st.st_size, st.st_mtime_ns) == (stamp.get("size"), stamp.get("mtime_ns"))


def test_metrics(evaluation: dict) -> dict:
    """test_<metric> for each number of an evaluation's JSON (its image count left out)."""
    return {
        f"test_{k}": float(v)
        for k, v in evaluation.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "count"
    }
