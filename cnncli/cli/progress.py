"""The one adapter from the library's `progress(done, total)` to a rich progress bar."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack


class ProgressBar:
    """A rich bar (count, rate, ETA) on stderr, opened at the first progress call, so a
    command that fails before any work shows no bar. Use as a context manager and pass it
    as the library function's `progress`."""

    def __init__(self, description: str, enabled: bool = True):
        self.description, self.enabled = description, enabled
        self.stack = ExitStack()
        self.advance: Callable[..., None] | None = None
        self.done = 0

    def __call__(self, done: int, total: int | None) -> None:
        from cnncli.cli.console import progress_bar

        if self.advance is None:
            shown = self.enabled and total != 1  # no bar for a single item
            bar = progress_bar(self.description, total or None, enabled=shown)
            self.advance = self.stack.enter_context(bar)
        if done > self.done:
            self.advance(done - self.done)
            self.done = done

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()
