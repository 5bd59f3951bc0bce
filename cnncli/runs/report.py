"""`cnncli report`: a self-contained folder (index.html, its PNGs beside it, run.json and
history.csv copied in) for one run, or for a comparison of several.

- One run: RUN/report/ (or `out`): facts, options, dataset, model summary, learning curves,
  the evaluation on val and test, activations and Grad-CAM of two validation images.
- Several runs: report/ here (or `out`): the runs table with the options that differ,
  the curves overlaid, the final metrics as bars, and each run's own page in runs/NAME/.

Missing parts are computed (cnncli.runs.compute, TensorFlow) unless `compute` is False;
then what an earlier report of the run computed is reused, and the rest is listed with the
command that makes it. An existing report is replaced only with `overwrite`, and only if it
is a report; everything is checked before TensorFlow loads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnncli.atomic import atomic_dir, check_replaceable
from cnncli.drawing.lr_plots import LR_COLUMN
from cnncli.errors import CnnError, InputError, UsageError
from cnncli.progress import Progress
from cnncli.runs import charts, pages
from cnncli.runs.compute import Parts, compute_parts, missing_parts
from cnncli.runs.find import is_run
from cnncli.runs.record import REPORT_DIR, RunRecord, read_run, test_metrics
from cnncli.runs.reuse import reuse_parts
from cnncli.runs.table import RunsTable, changed_options, default_sort, sort_runs
from cnncli.safe_files import RefusedFile, copy_regular_file, plain_name
from cnncli.training.options import KERAS_DEFAULT_LR
from cnncli.training.rundir import (
    HISTORY_CSV,
    HISTORY_LIMIT,
    RUN_JSON,
    RUN_JSON_LIMIT,
    store_evaluation,
)

DEFAULT_COMPARE_DIR = "report"
CURVES = "curves.png"
FINAL = "final.png"


@dataclass
class ReportResult:
    page: Path
    runs: list[str]
    computed: bool
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "page": str(self.page),
            "runs": self.runs,
            "computed": self.computed,
            "missing": self.missing,
            "notes": self.notes,
        }


def write_report(
    runs: Sequence,
    out: str | os.PathLike | None = None,
    compute: bool = True,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ReportResult:
    """Write the report of one run or the comparison of several (module docstring);
    `progress(done, total)` counts the computed parts."""
    paths = [Path(p) for p in runs]
    if not paths:
        raise UsageError("give at least one run folder", "cnncli report runs/train")
    for p in paths:
        if not p.is_dir():
            raise InputError(f"run folder {p} not found", "give the folder cnncli train wrote")
        if not is_run(p):
            raise InputError(
                f"{p} is not a cnncli run folder (no {RUN_JSON})",
                "give the folder cnncli train wrote",
            )
    records = [read_run(p) for p in paths]
    if len(records) == 1:
        target = Path(out) if out is not None else paths[0] / REPORT_DIR
    else:
        target = Path(out) if out is not None else Path(DEFAULT_COMPARE_DIR)
    check_output(target, overwrite)
    result = ReportResult(target / "index.html", [str(p) for p in paths], compute)
    with atomic_dir(target, overwrite=overwrite) as tmp:
        if len(records) == 1:
            parts = run_folder(records[0], tmp, compute, [target], progress)
            result.missing = list(parts.missing)
            result.notes = list(records[0].notes)
        else:
            _compare(records, tmp, compute, target, result, progress)
    return result


def check_output(target: Path, overwrite: bool) -> None:
    """Refuse an existing output without `overwrite`, and with it anything but a report."""
    check_replaceable(target, overwrite, "a cnncli report", "index.html")


def run_folder(
    r: RunRecord,
    folder: Path,
    compute: bool,
    earlier: Sequence[Path],
    progress: Progress | None = None,
) -> Parts:
    """Fill `folder` with run `r`'s page and what it shows; `earlier`: report folders
    whose computed parts may be reused when not computing. Returns the parts. Only regular
    files inside the run folder are copied (cnncli.safe_files); what is not is said in
    `r.notes`."""
    copied = []
    for name, limit in ((RUN_JSON, RUN_JSON_LIMIT), (HISTORY_CSV, HISTORY_LIMIT)):
        try:
            copy_regular_file(r.path / name, folder / name, limit)
            copied.append(name)
        except FileNotFoundError:
            continue
        except RefusedFile as e:
            r.notes.append(f"{e.one_line()}: not copied into the report")
    parts = None
    if compute:
        parts = compute_parts(r, folder, progress)
        keep_evaluations(r, parts)
    else:
        for old in [*earlier, r.path / REPORT_DIR]:
            if old.resolve() != folder.resolve():
                parts, notes = reuse_parts(old, folder)
                r.notes += notes
                if parts is not None:
                    break
        parts = parts or Parts(missing=missing_parts(r))
    if "test" in parts.evaluations:
        r.test = test_metrics(parts.evaluations["test"])
    curves = None
    if r.history:
        charts.plot_curves([(r.name, r.history)], folder / CURVES)
        curves = CURVES
    pages.run_page(folder, r, parts, curves, copied)
    return parts


def keep_evaluations(r: RunRecord, parts: Parts) -> None:
    """Store what `parts` evaluated with the run itself (rundir.store_evaluation), so
    `cnncli runs` shows it whichever report computed it; not while the run trains."""
    if r.status == "running" or not parts.model:
        return
    for split, evaluation in parts.evaluations.items():
        try:
            store_evaluation(r.path, split, evaluation, r.path / parts.model)
        except (OSError, CnnError) as e:  # a read-only run folder: the report still has it
            r.notes.append(f"the {split} evaluation is not stored with the run ({e})")


def unique_names(records: Sequence[RunRecord]) -> list[str]:
    """Run names made unique (runs/a/train and runs/b/train: train, train_2)."""
    seen: dict[str, int] = {}
    out = []
    for r in records:
        name = r.name if plain_name(r.name) and "/" not in r.name else "run"
        n = seen.get(name, 0) + 1
        seen[name] = n
        out.append(name if n == 1 else f"{name}_{n}")
    return out


def _compare(
    records: list[RunRecord],
    tmp: Path,
    compute: bool,
    target: Path,
    result: ReportResult,
    progress: Progress | None,
) -> None:
    names = unique_names(records)
    links = {}
    for i, (r, name) in enumerate(zip(records, names, strict=True)):
        r.name = name
        folder = tmp / "runs" / name
        folder.mkdir(parents=True)
        step = None
        if progress is not None:

            def step(done, total, i=i):
                progress(i * (total or 1) + done, len(records) * (total or 1))

        parts = run_folder(r, folder, compute, [target / "runs" / name], step)
        links[name] = f"runs/{name}/index.html"
        result.missing += [f"{name}: {m}" for m in parts.missing]
        result.notes += [f"{name}: {n}" for n in r.notes]
    mixed = len({r.task for r in records}) > 1
    if mixed:
        result.notes.append("the runs have different tasks: each shows its own metrics")
    t = RunsTable(
        sort_runs(records, default_sort(records)),
        sort=default_sort(records),
        changed=changed_options(records),
    )
    rates = any(LR_COLUMN in row for r in t.runs for row in r.history) or "lr" in t.changed
    charts.plot_curves([(r.name, curve_rows(r, mixed, rates)) for r in t.runs], tmp / CURVES)
    bars = None
    values = final_values(t, mixed)
    if values:
        charts.plot_final_bars([r.name for r in t.runs], values, tmp / FINAL)
        bars = FINAL
    pages.compare_page(tmp, t, links, CURVES, bars, result.notes)


def curve_rows(r: RunRecord, mixed: bool, rates: bool = False) -> list[dict]:
    """`r`'s history for the overlaid curves. When the runs' tasks differ, its loss is
    drawn in a panel of its task's own ("loss (regression)"), never beside another loss;
    with `rates` (the learning rate is compared), a run without a learning_rate column
    gets its constant rate (--lr, or the optimizer's Keras default)."""
    rename = {"loss": f"loss ({r.task})", "val_loss": f"val_loss ({r.task})"} if mixed else {}
    rate = constant_rate(r) if rates else None
    rows = []
    for row in r.history:
        row = {rename.get(k, k): v for k, v in row.items()}
        if rate is not None and LR_COLUMN not in row:
            row[LR_COLUMN] = rate
        rows.append(row)
    return rows


def constant_rate(r: RunRecord) -> float | None:
    """The learning rate a run without a schedule trained at: its --lr, else the Keras
    default of its optimizer."""
    lr = r.options.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return float(lr)
    return KERAS_DEFAULT_LR.get(str(r.options.get("optimizer", "adam")))


def final_values(t: RunsTable, mixed: bool = False) -> dict[str, list]:
    """{metric: value per run} for the bars: the metric the page is sorted by first, then
    every test and validation metric, then training metrics of the last epoch while the
    chart has fewer than charts.MAX_PANELS panels. When the runs' tasks differ, a metric
    several tasks have (loss) gets a panel per task ("val_loss (regression)")."""
    metrics = t.metrics
    lead = [t.sort] if t.sort in metrics else []
    shown = lead + [m for m in metrics if m.startswith("test_") and m not in lead]
    shown += [m for m in metrics if m.startswith("val_") and m not in lead]
    for m in metrics:
        if m not in shown and len(shown) < charts.MAX_PANELS:
            shown.append(m)
    values = {}
    for m in shown:
        per_run = [{**r.final, **r.test}.get(m) for r in t.runs]
        tasks = sorted({r.task for r, v in zip(t.runs, per_run, strict=True) if v is not None})
        if not mixed or len(tasks) < 2:
            values[m] = per_run
            continue
        for task in tasks:
            values[f"{m} ({task})"] = [
                v if r.task == task else None for r, v in zip(t.runs, per_run, strict=True)
            ]
    return values
