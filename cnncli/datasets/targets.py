"""Label tables for the multilabel and regression tasks (`dataset build --task ...`).

- multilabel: one column of labels split on a delimiter (`--label-col tags --label-delim ";"`,
  a cell like `대리석;벽돌`), or one 0/1 column per label (`--label-cols a,b,c`). A row with
  no label is kept (all zeros) and counted. Labels are sorted as classes are (natural order).
- regression: one or more numeric columns (`--target-col COL`, repeatable); a value that is
  not a finite number is a bad row naming its line.
What makes the whole table unusable (a column that does not exist, a delimiter that splits
no cell, a label in only one row, a column of text as a target, options of another task) is
one UsageError, raised before any image is opened. Rows come back as a LabelSet whose rows'
`label` is a 0/1 list (multilabel) or a list of floats (regression).
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli.datasets.image_paths import list_image_files
from cnncli.datasets.labels import (
    LabelRow,
    LabelSet,
    open_label_table,
    table_label_set,
    table_rows,
)
from cnncli.datasets.store import TASKS
from cnncli.datasets.tables import detect_columns, need_column, nfc
from cnncli.errors import UsageError
from cnncli.images import natural_key

if TYPE_CHECKING:
    import numpy as np

FLOAT32_MAX = 3.4028234663852886e38  # the dataset stores targets as float32
FLOAT32_TINY = 1.1754943508222875e-38  # float32's smallest normal number
_FLOAT32 = struct.Struct("<f")
DEFAULT_DELIMITER = ";"
OTHER_DELIMITERS = (";", ",", "|", "/", "+", " ")  # suggested when --label-delim splits nothing
_ONE_OF = {
    "--label-col": "multilabel",
    "--label-delim": "multilabel",
    "--label-cols": "multilabel",
    "--target-col": "regression",
}


def check_task_options(
    task: str,
    *,
    labels: str | os.PathLike | None = None,
    label_col: str | None = None,
    label_delim: str | None = None,
    label_cols: Any = None,
    target_cols: Any = None,
    name_col: str | None = None,
    classes: Any = None,
) -> None:
    """Raise UsageError (one line) when the options do not fit the task; called before
    anything is read."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}", f"use one of {', '.join(TASKS)}")
    flags = {
        "--label-col": label_col,
        "--label-delim": label_delim,
        "--label-cols": label_cols,
        "--target-col": target_cols,
        "--name-col": name_col,
        "--classes": classes,
    }
    given = [flag for flag, v in flags.items() if v]
    for flag, value in (("--label-cols", label_cols), ("--target-col", target_cols)):
        if value:
            check_column_list(flag, value)
    if task == "classify":
        for flag in given:
            if flag in _ONE_OF and flag != "--label-col":
                raise UsageError(
                    f"{flag} goes with --task {_ONE_OF[flag]}",
                    f"add --task {_ONE_OF[flag]}, or leave out {flag}",
                )
        return
    if labels is None:
        raise UsageError(f"--task {task} reads its labels from a table", "pass --labels TABLE.csv")
    if task == "regression":
        wrong = [f for f in given if f != "--target-col"]
        if wrong:
            raise UsageError(
                f"--task regression reads numbers from --target-col, not {wrong[0]}",
                "name the numeric column with --target-col COL (repeat it for several targets)",
            )
        if not target_cols:
            raise UsageError(
                "--task regression needs --target-col COL",
                "name the numeric column (repeat --target-col for several)",
            )
        return
    wrong = [f for f in given if f in ("--target-col", "--name-col", "--classes")]
    if wrong:
        raise UsageError(f"{wrong[0]} does not go with --task multilabel", f"leave out {wrong[0]}")
    if label_col and label_cols:
        raise UsageError(
            "give either --label-col (with --label-delim) or --label-cols, not both",
            "--label-col tags --label-delim ';', or --label-cols a,b,c",
        )
    if not (label_col or label_cols):
        raise UsageError(
            "--task multilabel needs --label-col COL or --label-cols a,b,c",
            "a column of labels split by --label-delim, or one 0/1 column per label",
        )
    if label_delim is not None and not label_col:
        raise UsageError("--label-delim goes with --label-col", "leave it out with --label-cols")


def parse_columns(value: str | Iterable[str] | None) -> list[str]:
    """'a,b,c' or ['a', 'b'] (or repeated options) -> a list of column names."""
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [c.strip() for item in items for c in str(item).split(",") if c.strip()]


def check_column_list(flag: str, value: str | Iterable[str] | None) -> list[str]:
    """The column names of `flag` ('a,b,c', or a repeated option's list) -> list, or a
    UsageError when it names none (`--label-cols ","`) or one twice (`a,a,b`, compared as
    the table's names are: NFC, stripped)."""
    columns = parse_columns(value)
    if not columns:
        raise UsageError(
            f"{flag} {_shown(value)!r} names no column", "give column names of the table: a,b,c"
        )
    seen = Counter(nfc(c) for c in columns)
    twice = [c for c, n in seen.items() if n > 1]
    if twice:
        raise UsageError(
            f"{flag} names column {twice[0]!r} {seen[twice[0]]} times", "name each column once"
        )
    return columns


def _shown(value) -> str:
    return value if isinstance(value, str) else " ".join(map(str, value))


def load_task_table(
    table: str | os.PathLike,
    images_dir: str | os.PathLike,
    task: str,
    *,
    image_col: str | None = None,
    label_col: str | None = None,
    label_delim: str | None = None,
    label_cols: Any = None,
    target_cols: Any = None,
    encoding: str | None = None,
    split_col: str | None = None,
) -> LabelSet:
    """Read a multilabel or regression label table against IMAGES_DIR -> LabelSet (rows'
    `label`: a 0/1 list per label, or a float per target) with every bad row listed."""
    table, images_dir = Path(table), Path(images_dir)
    df, described = open_label_table(table, encoding)
    label_cols = check_column_list("--label-cols", label_cols) if label_cols else []
    target_cols = check_column_list("--target-col", target_cols) if target_cols else []
    flag = "--target-col" if task == "regression" else "--label-cols"
    value_cols = [need_column(df, c, flag, table) for c in (target_cols or label_cols)]
    if label_col is not None:
        value_cols = [need_column(df, label_col, "--label-col", table)]
    files = list_image_files(images_dir)
    cols = detect_columns(
        df, files, image_col=image_col, label_col=value_cols[0], split_col=split_col, path=table
    )
    cols = {"image": cols["image"], "split": cols["split"], "ignored": cols["ignored"]}
    problems: list[tuple[str, str]] = []
    delim = None
    if task == "regression":
        for c in value_cols:
            _check_numeric(df, c, table)
        cols["targets"] = value_cols
        what = f"target column{'s' * (len(value_cols) > 1)} {', '.join(map(repr, value_cols))}"
    elif label_col is not None:
        delim = DEFAULT_DELIMITER if label_delim is None else label_delim
        _check_delimiter(df[value_cols[0]], value_cols[0], delim, table)
        cols.update(label=value_cols[0], delimiter=delim)
        what = f"labels from column {value_cols[0]!r} split on {delim!r}"
    else:
        cols["labels"] = value_cols
        what = f"0/1 label columns {', '.join(map(repr, value_cols))}"
    notes = [f"{described}; image column {cols['image']!r}, {what}"]
    raw = table_rows(
        df, cols, images_dir, files, problems, lambda rec: tuple(rec[c] for c in value_cols)
    )
    if task == "regression":
        rows = _target_rows(raw, value_cols, problems)
        names: list[str] = []
    else:
        names, rows = _label_rows(raw, value_cols, delim, problems, table)
        unlabelled = sum(1 for r in rows if not any(r.label))
        if unlabelled:
            notes.append(f"{unlabelled} rows have no label (kept, counted as unlabeled)")
    targets = value_cols if task == "regression" else []
    return table_label_set(
        table, files, rows, names, problems, notes, cols, task=task, target_names=targets
    )


# ------------------------------------------------------------------------------ regression
def parse_number(text: str) -> float | None:
    """A table value as a number, or None (text, empty)."""
    try:
        return float(text)
    except ValueError:
        return None


def is_float32(value: float) -> bool:
    """A finite number that float32 holds without becoming infinite (it may round)."""
    try:
        return math.isfinite(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
    except OverflowError:
        return False


def below_float32_normal(value: float) -> bool:
    """Not 0 but nearer 0 than float32's smallest normal number (1.2e-38): stored as a
    subnormal with fewer digits, or as 0, and read as 0 where denormals are flushed."""
    return value != 0 and abs(value) < FLOAT32_TINY


def _check_numeric(df, column: str, table) -> None:
    """A target column holds numbers: text in more values than one in ten (or than
    numbers) is a column of text, not a few bad rows."""
    values = [(i + 2, v) for i, v in enumerate(df[column]) if v != ""]
    text = [(line, v) for line, v in values if parse_number(v) is None]
    if values and (len(text) <= max(1, len(values) // 10) and len(text) < len(values) - len(text)):
        return
    shown = f" ({text[0][1]!r} on line {text[0][0]})" if text else ""
    raise UsageError(
        f"--target-col {column!r} of {table} holds text, not numbers{shown}",
        "name a numeric column with --target-col, or use --task classify for class names",
    )


def format_values(
    names: list[str], values: Sequence[float | None] | np.ndarray, sep: str = " "
) -> str:
    """A row's targets as a caption: '3.21' for one target, 'a=3.21 b=0.5' for several
    (joined by `sep`)."""
    if len(names) == 1:
        return f"{values[0]:.4g}"
    return sep.join(f"{n}={v:.4g}" for n, v in zip(names, values, strict=True))


def _target_rows(raw, columns: list[str], problems) -> list[LabelRow]:
    rows = []
    for line, rel, name, cells, _cname, split in raw:
        values, why = [], None
        for column, text in zip(columns, cells, strict=True):
            v = parse_number(text)
            if text == "":
                why = f"no value for target {column!r}"
            elif v is None:
                why = f"target {column!r} value {text!r} is not a number"
            elif not math.isfinite(v):
                why = f"target {column!r} value {text!r} is not a finite number"
            elif not is_float32(v):
                why = (
                    f"target {column!r} value {text!r} is beyond float32's range "
                    "(±3.4e38), in which the dataset stores targets"
                )
            if why:
                break
            values.append(v)
        if why:
            problems.append((name, f"line {line}: {why}"))
            continue
        rows.append(LabelRow(rel, name, values, format_values(columns, values), split, line))
    return rows


# ------------------------------------------------------------------------------ multilabel
def split_labels(cell: str, delim: str) -> list[str]:
    """'대리석; 벽돌' -> ['대리석', '벽돌'] (pieces stripped, empty ones and repeats dropped)."""
    return list(dict.fromkeys(p.strip() for p in cell.split(delim) if p.strip()))


def _check_delimiter(series, column: str, delim: str, table) -> None:
    cells = [v for v in series if v != ""]
    if not delim:
        raise UsageError("--label-delim is empty", "give the character between labels: ';'")
    if not cells or any(delim in v for v in cells):
        return
    others = [d for d in OTHER_DELIMITERS if d != delim and any(d in v for v in cells)]
    hint = (
        f"the cells look separated by {others[0]!r}: pass --label-delim {others[0]!r}"
        if others
        else "check --label-delim, or use --task classify for one label per row"
    )
    raise UsageError(
        f"--label-delim {delim!r} splits no cell of column {column!r} in {table}", hint
    )


def _flag(text: str) -> int | None:
    v = parse_number(text)
    return int(v) if v in (0.0, 1.0) else None


def _label_rows(raw, columns, delim, problems, table):
    """(label names, rows with a 0/1 list each); a label in only one row is a UsageError."""
    parsed = []
    for line, rel, name, cells, _cname, split in raw:
        if delim is not None:
            parsed.append((line, rel, name, split_labels(cells[0], delim), split))
            continue
        flags = [_flag(v) for v in cells]
        bad = [(c, v) for c, v, f in zip(columns, cells, flags, strict=True) if f is None]
        if bad:
            problems.append(
                (name, f"line {line}: column {bad[0][0]!r} holds {bad[0][1]!r}, not 0 or 1")
            )
            continue
        parsed.append(
            (line, rel, name, [c for c, f in zip(columns, flags, strict=True) if f], split)
        )
    counts = Counter(label for p in parsed for label in p[3])
    if delim is None:
        names = sorted(columns, key=natural_key)
    else:
        names = sorted(counts, key=natural_key)
    if not counts:
        raise UsageError(
            f"no row of {table} has a label", "check the label column(s), or --label-delim"
        )
    lonely = [n for n in names if counts[n] == 1]
    if lonely:
        line = next(p[0] for p in parsed if lonely[0] in p[3])
        more = f" (and {len(lonely) - 1} more labels)" if len(lonely) > 1 else ""
        raise UsageError(
            f"label {lonely[0]!r} appears in only one row (line {line} of {table}){more}: "
            "it cannot be both trained on and checked",
            "add images with it, or take it out of that row",
        )
    absent = [n for n in names if counts[n] == 0]
    if absent:
        raise UsageError(
            f"label column {absent[0]!r} of {table} has no 1 in any row",
            "leave it out of --label-cols",
        )
    position = {n: i for i, n in enumerate(names)}
    rows = []
    for line, rel, name, labels, split in parsed:
        hot = [0] * len(names)
        for label in labels:
            hot[position[label]] = 1
        caption = ";".join(n for n in names if hot[position[n]])
        rows.append(LabelRow(rel, name, hot, caption, split, line))
    return names, rows
