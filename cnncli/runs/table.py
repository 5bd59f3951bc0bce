"""The rows of `cnncli runs`: every run folder found, read, sorted by the monitored metric
(or `sort`), with the training options that differ between them (`only_changed`), as plain
values for a table, as JSON and as CSV. Folders that are not runs, and runs whose run.json
cannot be used (a newer format, damaged JSON), are skipped and each named with why."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cnncli.errors import InputError, UsageError
from cnncli.runs.find import Skipped, find_runs
from cnncli.runs.record import RunRecord, lower_is_better, read_run

FIELDS = (
    "name",
    "status",
    "model",
    "dataset",
    "task",
    "epochs",
    "params",
    "started",
    "seconds_per_epoch",
)
CSV_EXTRA = ("best_epoch", "best_value", "monitor")  # the CSV's columns after the table's


@dataclass
class RunsTable:
    runs: list[RunRecord]
    skipped: list[Skipped] = field(default_factory=list)
    sort: str | None = None  # the metric or field the rows are sorted by
    changed: list[str] = field(default_factory=list)  # options that differ (--only-changed)

    @property
    def metrics(self) -> list[str]:
        """Every metric name of the runs' last epochs, then the test ones, in first-seen
        order (the tasks' own names as history.csv has them)."""
        names: list[str] = []
        for part in ("final", "test"):
            for r in self.runs:
                names += [k for k in getattr(r, part) if k not in names]
        return names

    def columns(self) -> list[str]:
        base = [
            "name",
            "status",
            "model",
            "dataset",
            "task",
            "epochs",
            "best",
            *self.metrics,
            "s/epoch",
            "params",
            "started",
        ]
        return [*base, *self.option_columns(base)]

    def option_columns(self, taken: Sequence[str]) -> list[str]:
        """The changed options' column names: "options.NAME" where NAME is already a
        column (epochs, monitor, ...), so no header is repeated."""
        named = {*taken, *CSV_EXTRA}
        return [f"options.{k}" if k in named else k for k in self.changed]

    def rows(self) -> list[list]:
        """One list of plain values per run, in columns() order (None: not known)."""
        out = []
        for r in self.runs:
            values = {**r.final, **r.test}
            out.append(
                [
                    r.name,
                    status_text(r),
                    r.model,
                    r.dataset_label,
                    r.task,
                    epochs_text(r),
                    best_text(r),
                    *(values.get(m) for m in self.metrics),
                    r.seconds_per_epoch,
                    r.params,
                    r.started,
                    *(option_text(flat_options(r.options).get(k)) for k in self.changed),
                ]
            )
        return out

    def display(self, width: int | None = None) -> tuple[str, list[str], list[list]]:
        """(title, columns, rows) for a terminal: the task column only when the runs have
        several tasks, the best column named by the monitor when they share one, start
        times to the minute; with `width`, the columns that fit in it, the most telling
        first (name, status, best, validation and test metrics, changed options, ...)."""
        tasks = sorted({r.task for r in self.runs})
        monitors = {r.monitor for r in self.runs}
        columns, rows = self.columns(), self.rows()
        title = f"{len(self.runs)} run(s)"
        if len(tasks) == 1:
            title += f", task {tasks[0]}"
        if self.sort:
            title += f", sorted by {self.sort}"
        keep = [i for i, c in enumerate(columns) if not (c == "task" and len(tasks) == 1)]
        b, s = columns.index("best"), columns.index("started")
        if len(monitors) == 1 and None not in monitors:
            columns[b] = f"best {monitors.pop()}"
            for row, r in zip(rows, self.runs, strict=True):
                row[b] = "-" if r.best_value is None else f"{r.best_value:.4g} @{r.best_epoch}"
        for row in rows:
            row[s] = str(row[s]).replace("T", " ")[:16]
        if width is not None:
            fits = set(self._fitting([columns[i] for i in keep], rows, keep, width))
            if len(fits) < len(keep):
                title += f" ({len(keep) - len(fits)} more columns with --json or --csv)"
            keep = [i for i in keep if i in fits]
        return title, [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]

    def _fitting(self, names: list[str], rows: list[list], index: list[int], width: int):
        """The indices of the columns that fit in `width` characters, by priority."""

        def rank(name: str) -> int:
            order = [
                name == "name",
                name == "status",
                name.startswith("best"),
                name.startswith(("val_", "test_")) or name == "task",
                name == "epochs",
                name in self.changed or name.startswith("options."),
                name in self.metrics,
            ]
            return order.index(True) if True in order else len(order)

        used = 1
        fits: list[int] = []
        for name, i in sorted(zip(names, index, strict=True), key=lambda c: rank(c[0])):
            need = max([len(name), *(len(cell_text(row[i])) for row in rows)]) + 3
            if used + need <= width or not fits:
                used += need
                fits.append(i)
        return fits

    def to_json(self) -> dict:
        runs = []
        for r in self.runs:
            d = r.to_dict()
            if self.changed:
                flat = flat_options(r.options)
                d["changed"] = {k: flat.get(k) for k in self.changed}
            runs.append(d)
        return json_numbers(
            {
                "sort": self.sort,
                "changed_options": self.changed,
                "runs": runs,
                "skipped": [s.to_dict() for s in self.skipped],
            }
        )

    def to_csv(self, delimiter: str = ",") -> str:
        """One row per run: the table's columns, numbers in full (`delimiter` "\\t": the
        plain lines `cnncli runs` prints into a pipe)."""
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
        header = [c.replace("/", "_per_") for c in self.columns()]
        writer.writerow(["path", *header, *CSV_EXTRA])
        for r, row in zip(self.runs, self.rows(), strict=True):
            cells = ["" if v is None else v for v in row]
            writer.writerow(
                [str(r.path), *cells, r.best_epoch or "", _blank(r.best_value), r.monitor or ""]
            )
        return buf.getvalue()


def json_numbers(value: Any) -> Any:
    """`value` with every float that is not finite (inf, nan: a loss that diverged) as None,
    since JSON has no Infinity or NaN (`--json` stays valid JSON; the table and CSV show
    inf and nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_numbers(v) for v in value]
    return value


def cell_text(value: object) -> str:
    """A value as every table shows it (the terminal's, cnncli.cli.console, and the HTML
    pages'): floats to 4 significant digits, whole numbers with thousands separators,
    booleans as yes/no, None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _blank(v):
    return "" if v is None else v


def status_text(r: RunRecord) -> str:
    if r.status == "running" and r.pid:
        return f"running (pid {r.pid})"
    if r.early_stopped:
        return "finished (early stop)"
    return r.status


def epochs_text(r: RunRecord) -> str:
    return f"{r.epochs_done}/{r.epochs_planned}" if r.epochs_planned else str(r.epochs_done)


def best_text(r: RunRecord) -> str:
    if r.best_epoch is None or r.best_value is None:
        return "-"
    return f"{r.monitor} {r.best_value:.4g} @{r.best_epoch}"


def option_text(value: object) -> str | None:
    return None if value is None else str(value)


def flat_options(options: dict, prefix: str = "") -> dict:
    """{"augment": {"flip": "horizontal"}} -> {"augment.flip": "horizontal"}."""
    out = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            out.update(flat_options(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_options(runs: Sequence[RunRecord]) -> list[str]:
    """The option names whose values are not the same in every run (an option a run does
    not have counts as a different value), in first-seen order."""
    flats = [flat_options(r.options) for r in runs]
    names: list[str] = []
    for flat in flats:
        names += [k for k in flat if k not in names]
    missing = object()
    return [k for k in names if len({repr(f.get(k, missing)) for f in flats}) > 1]


def default_sort(runs: Sequence[RunRecord]) -> str | None:
    """The metric most runs monitor (val_loss by default in cnncli train)."""
    counts: dict[str, int] = {}
    for r in runs:
        if r.monitor:
            counts[r.monitor] = counts.get(r.monitor, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def sort_runs(runs: list[RunRecord], key: str | None) -> list[RunRecord]:
    """Runs best first by metric `key` (its value at the best epoch; test_* from the
    evaluation; lower first for losses and errors), runs without it last; or by a field
    (name, status, model, dataset, task, epochs, params, started, seconds_per_epoch)."""
    if key is None:
        return sorted(runs, key=lambda r: r.name)
    if key in FIELDS:

        def value(r):
            v = r.epochs_done if key == "epochs" else getattr(r, key)
            return (v is None, v if v is not None else 0)

        reverse = key in ("params", "epochs", "started")
        return sorted(runs, key=value, reverse=reverse)
    sign = 1.0 if lower_is_better(key) else -1.0
    out: list[RunRecord] = []
    for task in task_order(runs, key):  # a regression MSE never ranks against a cross-entropy
        group = [r for r in runs if r.task == task]
        have = [r for r in group if r.metric(key) is not None]
        rest = [r for r in group if r.metric(key) is None]
        out += sorted(have, key=lambda r: sign * cast(float, r.metric(key)))
        out += sorted(rest, key=lambda r: r.name)
    return out


def task_order(runs: Sequence[RunRecord], key: str) -> list[str]:
    """The runs' tasks, those with metric `key` first, then by name."""
    tasks = {r.task for r in runs}
    has = {r.task for r in runs if r.metric(key) is not None}
    return sorted(tasks, key=lambda t: (t not in has, t))


def list_runs(
    dirs: Sequence = (), sort: str | None = None, only_changed: bool = False
) -> RunsTable:
    """The runs table of the run folders in `dirs` (default runs/); see the module
    docstring. An unknown `sort` is a UsageError naming what can be sorted by."""
    found = find_runs(dirs)
    runs, skipped = [], list(found.skipped)
    for path in found.runs:
        try:
            runs.append(read_run(path))
        except InputError as e:
            skipped.append(Skipped(path, e.one_line()))
    if sort is not None:
        known = {m for r in runs for m in (*r.final, *r.test, *r.best_metrics)}
        if sort not in known and sort not in FIELDS:
            raise UsageError(
                f"cannot sort by {sort!r}: no run has it",
                f"use a metric ({', '.join(sorted(known)) or 'none'}) or one of "
                f"{', '.join(FIELDS)}",
            )
    key = sort or default_sort(runs)
    table = RunsTable(sort_runs(runs, key), skipped, key)
    if only_changed:
        table.changed = changed_options(runs)
    return table
