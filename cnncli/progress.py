"""The library's one progress protocol: `progress(done, total)`, cumulative.

Library functions that take a while accept an optional `progress` callable and call it with
how many items are done so far and how many there are (`total` None when unknown). They
never draw anything: the CLI passes `cnncli.cli.progress.ProgressBar`, tests pass a list's
append or nothing. `Counter` turns "n more done" into that call.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, "int | None"], None]


class Counter:
    """Counts work done and reports it: `Counter(progress, total).add(n)`."""

    def __init__(self, progress: Progress | None, total: int | None):
        self.progress, self.total, self.done = progress, total, 0

    def add(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def start(self) -> None:
        """Report 0 of total (so a bar shows before the first item finishes)."""
        if self.progress is not None:
            self.progress(self.done, self.total)
