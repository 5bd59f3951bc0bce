"""Terminal output in one place: the consoles, tables, progress bars and error lines.

Library modules never import this; they accept a `progress` callback instead. The CLI
layer renders results with these helpers so every command looks the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)  # results (stdout)
err_console = Console(stderr=True, highlight=False)  # messages, progress, errors (stderr)


def error_line(message: str) -> None:
    """Print one error line to stderr (no markup interpretation of the message)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    """A status line for the user (stderr, so stdout stays clean for --json)."""
    err_console.print(escape(message), soft_wrap=True)


def notes(items: Iterable[str], conversion: str | None = None) -> None:
    """The image conversion a command used (when given) and its notes, one line each."""
    if conversion:
        info(conversion)
    for note in items:
        info(f"note: {note}")


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(str(text))


def print_json(data: Any, one_line: bool = False, file: TextIO | None = None) -> None:
    """Machine-readable output, the one way every command prints it: plain JSON on stdout
    (or into `file`), UTF-8 characters kept, no colour, indented by 2 (`one_line`: a JSON
    Lines record), values JSON lacks (paths) as strings, a newline at the end."""
    out = sys.stdout if file is None else file
    indent = None if one_line else 2
    out.write(json.dumps(data, ensure_ascii=False, indent=indent, default=str) + "\n")
    out.flush()


def make_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    numeric: Sequence[str] = (),
    footer_rows: Iterable[Sequence[Any]] = (),
) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in numeric else "left")
    for row in rows:
        table.add_row(*(escape(_fmt(v)) for v in row))
    footer_rows = list(footer_rows)
    if footer_rows:
        table.add_section()
        for row in footer_rows:
            table.add_row(*(escape(_fmt(v)) for v in row), style="bold")
    return table


def print_table(*args, **kwargs) -> None:
    console.print(make_table(*args, **kwargs))


def _fmt(value: Any) -> str:
    from cnncli.runs.table import cell_text  # one formatter for terminal and HTML tables

    return cell_text(value)


@contextmanager
def progress_bar(
    description: str, total: int | None, enabled: bool = True
) -> Iterator[Callable[..., None]]:
    """A rich progress bar (count, rate, ETA) on stderr.

    Yields `advance(n=1)`; pass it to library functions as their progress callback.
    """
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            t = progress.tasks[task]
            speed = t.finished_speed or t.speed
            progress.update(task, rate=f"{speed:,.1f}/s" if speed else "")

        yield advance


def stdout_is_terminal() -> bool:
    """Whether results go to a person (a rich table) or into a pipe or file (plain lines,
    which print faster and which grep and cut read)."""
    return sys.stdout.isatty()
