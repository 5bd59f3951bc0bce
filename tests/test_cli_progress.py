"""cnncli.cli.progress.ProgressBar: the one adapter from the library's cumulative
`progress(done, total)` (cnncli.progress) to a rich bar on stderr."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from cnncli.cli import console
from cnncli.cli.progress import ProgressBar
from cnncli.progress import Counter


@pytest.fixture
def stderr(monkeypatch):
    """What the bar draws on stderr (a plain, wide console, so the line is not cut)."""
    buf = io.StringIO()
    monkeypatch.setattr(console, "err_console", Console(file=buf, width=160))
    return buf


def test_counts_the_cumulative_protocol(stderr):
    with ProgressBar("converting") as bar:
        counter = Counter(bar, 5)
        counter.start()
        counter.add(2)
        counter.add(3)
    line = stderr.getvalue()
    assert line.startswith("converting ") and " 5/5 100% " in line, line


def test_repeated_or_lower_counts_do_not_advance(stderr):
    with ProgressBar("reading") as bar:
        for done in (0, 3, 3, 2, 4):  # cumulative: a repeat or a lower count adds nothing
            bar(done, 10)
    assert re.search(r" 4/10 +40% ", stderr.getvalue()), stderr.getvalue()


def test_unknown_total(stderr):
    with ProgressBar("reading") as bar:
        bar(0, None)
        bar(7, None)
    assert " 7/? " in stderr.getvalue(), stderr.getvalue()


def test_no_bar_until_work_starts_when_disabled_or_for_one_item(stderr):
    with ProgressBar("never called"):
        pass  # a command that fails before any work shows no bar
    with ProgressBar("quiet", enabled=False) as bar:
        bar(0, 3)
        bar(3, 3)
    with ProgressBar("single") as bar:
        bar(0, 1)
        bar(1, 1)
    assert stderr.getvalue() == ""


def test_the_bar_closes_when_the_work_fails(stderr):
    with pytest.raises(RuntimeError), ProgressBar("failing") as bar:
        bar(1, 4)
        raise RuntimeError("boom")
    assert " 1/4 " in stderr.getvalue()
