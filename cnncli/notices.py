"""What the library tells the user along the way that is neither a result nor an error, one
line each: a dataset recovered after an interrupted build, a claim of a stopped command taken
over, leftovers of interrupted commands removed.

Library code calls `say(line)`. The line goes to the listener set with `listen` (a test's
list.append, a program's logger), else to the current sys.stderr, so the CLI (and its test
runner, which swaps sys.stderr) shows it without further set-up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_listener: Callable[[str], None] | None = None


def say(line: str) -> None:
    """Tell the user `line` (one line)."""
    line = " ".join(str(line).split())
    if _listener is not None:
        _listener(line)
        return
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextmanager
def listen(listener: Callable[[str], None]) -> Iterator[None]:
    """Within the block, `say` calls `listener(line)` instead of writing to stderr."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous
