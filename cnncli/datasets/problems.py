"""The problems a build found in its inputs, as a user reads them: counted by kind, the first
few shown, and the whole list written to a file (a table of 100,000 missing files helps
nobody on a terminal, and takes longer to draw than the build took to find them).

A problem is a (file, reason) pair, as DatasetError.problems and skipped.csv hold them; its
kind is the reason without what is particular to the row: the table line, the quoted
values, the numbers and the details in brackets but a few plain words ("line 13: file not
found" and "line 80: file not found" are one kind; "cannot read (permission denied)" is
another than "cannot read (input/output error)")."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from cnncli.atomic import write_text
from cnncli.datasets.image_paths import shown_name
from cnncli.datasets.shards import csv_text

SHOWN = 20  # problems listed on the terminal; the rest are in the problem file
PROBLEM_FILE_SUFFIX = ".problems.csv"

_LINE = re.compile(r"^(?:[\w.-]+ )?line \d+: ")  # "line 13: " or "val.txt line 4: "
_BRACKETS = re.compile(r"\s*\((?![a-z ]{1,30}\))[^()]*\)")  # "(permission denied)" stays
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SIZE = re.compile(r"\b\d+x\d+\b")
_NUMBER = re.compile(r"(?<![\w'-])\d+(?:[,.]\d+)*(?![\w'])")
_PATH = re.compile(r" (?:of|in) \S*/\S*")  # "of /data/labels.csv": the table is the file


def problem_kind(reason: str) -> str:
    """What kind of problem a reason names: 'line 13: file not found' -> 'file not found',
    "line 6: label 'O' is not a whole number ..." -> "label '…' is not a whole number ..."."""
    text = _LINE.sub("", str(reason))
    for _ in range(2):  # nested brackets: inner first
        text = _BRACKETS.sub("", text)
    text = _QUOTED.sub("'…'", text)
    text = _PATH.sub("", text)
    text = _SIZE.sub("HxW", text)
    text = _NUMBER.sub("N", text)
    return " ".join(text.split()) or "problem"


def count_kinds(problems: Iterable[Sequence]) -> list[tuple[str, int]]:
    """[(kind, how many)], the commonest first, ties in the order first met."""
    counts = Counter(problem_kind(reason) for _file, reason in problems)
    return counts.most_common()


def problem_file_for(out_dir: str | os.PathLike) -> Path:
    """Where a build that writes OUT_DIR puts its whole problem list: beside OUT_DIR
    (`ds.problems.csv` for `-o data/ds`) when that folder exists, else in the current folder."""
    out_dir = Path(out_dir)
    parent = out_dir.parent
    name = (out_dir.name or "dataset") + PROBLEM_FILE_SUFFIX
    if parent.is_dir() and os.access(parent, os.W_OK):
        return parent / name
    return Path.cwd() / name


def write_problem_list(problems: Sequence[Sequence], out_dir: str | os.PathLike) -> Path:
    """Write every (file, reason) as CSV (path, kind, reason) beside OUT_DIR (see
    problem_file_for), replacing an earlier build's list atomically; return its path."""
    path = problem_file_for(out_dir)
    rows = [("path", "kind", "reason")]
    rows += [(shown_name(str(f)), problem_kind(r), shown_name(str(r))) for f, r in problems]
    write_text(path, csv_text(rows))
    return path
