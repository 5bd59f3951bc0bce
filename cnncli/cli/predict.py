"""`cnncli predict`: a thin command over cnncli.inference.predict, and where its rows go
(a stream of CSV or tab-separated lines, an -o file, --json, a table or a summary)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from cnncli.cli.checks import check_first
from cnncli.cli.options import (
    BatchOpt,
    ClassesOpt,
    JsonOpt,
    ModelArg,
    OverwriteOpt,
    RuntimeOpt,
    ScaleOpt,
    TtaOpt,
    UnsafeOpt,
)
from cnncli.errors import InputError, OutputExistsError, UsageError


def predict_command(
    model: ModelArg,
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="IMAGE|DIR",
            help="Image files, folders of images, or quoted patterns ('test/*.png').",
        ),
    ] = None,
    files_list: Annotated[
        Path | None,
        typer.Option(
            "--files",
            help="A text file listing images, one path a line (relative to the list's folder).",
            dir_okay=False,
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Show the K most likely classes.")] = 1,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print the result as CSV on stdout.")] = (
        False
    ),
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write every row to this file: CSV, or JSON if it "
            "ends in .json (stdout then shows nothing).",
            dir_okay=False,
        ),
    ] = None,
    batch_size: BatchOpt = 32,
    classes: ClassesOpt = None,
    scale: ScaleOpt = None,
    overwrite: OverwriteOpt = False,
    unsafe: UnsafeOpt = False,
    engine: Annotated[
        str,
        typer.Option(
            help="local, or ray: predicted by the nodes of a Ray cluster (docs/multi-machine.md)."
        ),
    ] = "local",
    address: Annotated[
        str | None, typer.Option(metavar="HOST:PORT", help="--engine ray: the cluster (or auto).")
    ] = None,
    runtime: RuntimeOpt = "auto",
    tta: TtaOpt = False,
) -> None:
    """Class name and probability for each image, with the class names stored with the model.

    Rows are printed as the model answers. Piped or redirected, stdout gets plain
    tab-separated lines (a header, then one line per image); on a terminal a table, or past
    300 images a summary per class (the whole list: --csv, --json or -o FILE). A file
    that is not a readable image is reported (one line naming it) and skipped; the others
    are predicted and the exit code is 2 (an unreadable input, cnncli.errors' rule).
    """
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.export.cache import FastModel
    from cnncli.inference.inputs import expand_inputs
    from cnncli.inference.ray_predict import predict_batches_on

    if json_out and csv_out:
        raise UsageError("--json and --csv are exclusive", "choose one output format")
    inputs = expand_inputs(inputs, files_list)
    fast = FastModel(model, "keras" if tta else runtime, unsafe)  # --tta: as evaluate's
    fast.file = check_first(fast.path, inputs)  # read once, passed on to the model's opening
    if output is not None and output.exists() and not overwrite:
        raise OutputExistsError(output)
    sink = PredictionSink(json_out, csv_out, output, overwrite, console.stdout_is_terminal())
    with ProgressBar("predict", enabled=not sink.streams_to_terminal) as bar:
        stream = predict_batches_on(engine, address)(
            fast if engine == "local" else fast.path,
            inputs,
            top_k=top_k,
            batch_size=batch_size,
            progress=bar,
            unsafe=unsafe,
            class_names=classes,
            pixel_scale=scale,
            tta=tta,
        )
        with sink:
            for rows in stream:
                sink.add(stream, rows)
            sink.finish(stream)
    console.notes(stream.notes, stream.conversion)
    console.info(f"runtime: {fast.runtime_text}")
    for file, reason in stream.skipped:
        console.warn(f"skipped {file}: {reason}")
    if stream.skipped:
        total = sink.count + len(stream.skipped)
        console.info(f"{len(stream.skipped)} of {total} file(s) could not be read")
        raise typer.Exit(InputError.exit_code)


TABLE_ROWS = 300  # on a terminal, more rows than this are summed up per class


class PredictionSink:
    """Where predict's rows go, batch by batch: streamed as CSV or plain tab-separated lines
    (stdout not a terminal), streamed into the -o file, or kept for --json and the terminal's
    table or summary, printed by `finish`."""

    def __init__(
        self, json_out: bool, csv_out: bool, output: Path | None, overwrite: bool, terminal: bool
    ):
        import contextlib

        self.output, self.count = output, 0
        self.kept: list = []
        self.stack = contextlib.ExitStack()
        self.file: TextIO | None = None
        self.as_json = json_out or (output is not None and output.suffix.lower() == ".json")
        self.delimiter = "," if csv_out or output is not None else "\t"
        self.table = terminal and not (csv_out or json_out or output is not None)
        self.streams_to_terminal = terminal and csv_out and output is None
        self.overwrite = overwrite
        self.writer: Any = None  # a csv writer

    def __enter__(self) -> PredictionSink:
        import csv

        from cnncli.atomic import atomic_file

        target = sys.stdout
        if self.output is not None:
            tmp = self.stack.enter_context(atomic_file(self.output, overwrite=self.overwrite))
            target = self.file = self.stack.enter_context(open(tmp, "w", newline=""))  # noqa: SIM115
        if not (self.as_json or self.table):
            self.writer = csv.writer(target, delimiter=self.delimiter, lineterminator="\n")
        return self

    def __exit__(self, *exc) -> None:
        self.stack.__exit__(*exc)

    def add(self, stream, rows: list) -> None:
        from cnncli.inference.predict import csv_header

        if self.writer is None:
            self.kept += rows
        else:
            if self.count == 0:
                self.writer.writerow(csv_header(stream.top_k, stream.model))
            self.writer.writerows(r.cells() for r in rows)
            if self.file is None:
                sys.stdout.flush()
        self.count += len(rows)

    def finish(self, stream) -> None:
        from cnncli.cli import console
        from cnncli.inference.predict import csv_header

        if self.writer is not None and self.count == 0:
            self.writer.writerow(csv_header(stream.top_k, stream.model))
        if self.as_json:
            data = stream.result(self.kept).to_json()
            console.print_json(data, file=self.file)
        elif self.table and self.count <= TABLE_ROWS:
            _render_predictions(stream.result(self.kept))
        elif self.table:
            _render_summary(stream.result(self.kept))
        if self.output is not None:
            console.info(f"wrote {self.count} prediction{'s' * (self.count != 1)} to {self.output}")


def _render_predictions(result) -> None:
    from cnncli.cli import console

    columns = ["file", "class", "probability"]
    columns += [f"top {i}" for i in range(2, result.top_k + 1)]
    base, names = _short_names([r.file for r in result.rows])
    from cnncli.cli import task_views

    if task_views.is_task(result):  # multilabel, regression
        return task_views.render_task_predictions(result, names, base, summary=False)
    rows = [
        (name, r.class_name, r.probability, *(f"{c} ({p:.3f})" for c, p in r.top_k[1:]))
        for name, r in zip(names, result.rows, strict=True)
    ]
    title = f"Predictions (files in {base})" if base else "Predictions"
    console.print_table(columns, rows, title=title, numeric=["probability"])


def _render_summary(result) -> None:
    """Past TABLE_ROWS rows: images per predicted class and their mean probability."""
    from collections import defaultdict

    from cnncli.cli import console, task_views

    if task_views.is_task(result):  # multilabel, regression
        task_views.render_task_predictions(result, [], None, summary=True)
    else:
        per: dict[str, list[float]] = defaultdict(list)
        for r in result.rows:
            per[r.class_name].append(r.probability)
        n = len(result.rows)
        console.print_table(
            ["class", "images", "share", "mean probability"],
            [(c, len(p), f"{len(p) / n:.1%}", sum(p) / len(p)) for c, p in sorted(per.items())],
            title=f"Predictions: {n:,} images, by predicted class",
            numeric=["images", "share", "mean probability"],
        )
    console.info("every row: --csv or --json on stdout, or -o FILE (.csv or .json)")


def _short_names(files: list[str]) -> tuple[str | None, list[str]]:
    """Files relative to their common folder, so the table's file column stays readable."""
    import os

    if not files:
        return None, []
    try:
        base = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    except ValueError:  # different drives
        return None, files
    return base, [os.path.relpath(os.path.abspath(f), base) for f in files]


def register(app: typer.Typer) -> None:
    app.command("predict", no_args_is_help=True)(predict_command)
