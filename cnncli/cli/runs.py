"""`cnncli runs` and `cnncli report`: thin commands over cnncli.runs (the table reads only
run.json and history.csv; a report imports TensorFlow only to compute what is missing)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli.options import JsonOpt, OverwriteOpt
from cnncli.errors import UsageError


def runs_command(
    dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="DIR",
            help="Folders holding run folders, or run folders (default: runs/).",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="METRIC",
            help="Sort by this metric at the best epoch "
            "(val_accuracy, test_loss, ...) or column (name, started, params); "
            "default: the monitored metric.",
            show_default=False,
        ),
    ] = None,
    only_changed: Annotated[
        bool,
        typer.Option(
            "--only-changed", help="Add the training options that differ between the runs."
        ),
    ] = False,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print the result as CSV on stdout.")] = (
        False
    ),
) -> None:
    """One row per run folder: status, model, dataset, epochs, best and last metrics.

    Reads only run.json and history.csv (no TensorFlow): instant for hundreds of runs.
    Folders that are not runs are skipped and counted."""
    from cnncli.cli import console
    from cnncli.runs.table import list_runs

    if json_out and csv_out:
        raise UsageError("--json and --csv are exclusive", "choose one output format")
    table = list_runs(dirs or (), sort=sort, only_changed=only_changed)
    if json_out:
        console.print_json(table.to_json())
    elif csv_out or (table.runs and not console.stdout_is_terminal()):
        sys.stdout.write(table.to_csv("," if csv_out else "\t"))  # piped: plain lines
        sys.stdout.flush()
    elif table.runs:
        title, columns, rows = table.display(width=console.console.width)
        shown = console.make_table(columns, rows, title=title, numeric=[*table.metrics, "params"])
        for column in shown.columns:  # cells wrap rather than lose their end
            column.overflow = "fold"
        console.console.print(shown)
    for r in table.runs:
        for note in r.notes:
            console.info(f"note: {r.name}: {note}")
    for s in table.skipped:
        console.info(f"skipped {s.path}: {s.reason}")
    if table.skipped:
        console.info(f"{len(table.skipped)} folder(s) skipped")
    if not table.runs:
        console.info("no run folders found (a run folder holds run.json: cnncli train writes one)")


def report_command(
    runs: Annotated[
        list[Path], typer.Argument(metavar="RUN", help="Run folders (cnncli train -o).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Where the report goes (default: RUN/report for one "
            "run, report/ here for several).",
            show_default=False,
        ),
    ] = None,
    no_compute: Annotated[
        bool,
        typer.Option(
            "--no-compute",
            help="Compute nothing (no TensorFlow): show what "
            "the run folders hold and list the commands for the rest.",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """An HTML page per run (options, dataset, model, curves, evaluation, activations), or a
    comparison page for several runs (curves overlaid, final metrics, changed options)."""
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.runs.report import write_report

    with ProgressBar("report") as bar:
        result = write_report(runs, out, compute=not no_compute, overwrite=overwrite, progress=bar)
    if json_out:
        console.print_json(result.to_json())
    for line in result.missing:
        console.info(f"missing: {line}")
    for note in result.notes:
        console.info(f"note: {note}")
    console.info(f"wrote {result.page}")


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_command)
    app.command("report", no_args_is_help=True)(report_command)
