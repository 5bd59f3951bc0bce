"""Label tables: which file has which label, and the result every label source gives.

Two sources, one result (`LabelSet`):
- a label table (read by cnncli.datasets.tables: encodings, separators, which column is
  which) such as the course's façade table `,image,type,y`; a numeric label and a text name
  must agree one to one (this module);
- one subfolder per class, natural order (cnncli.datasets.class_folders).
File and class names are compared after Unicode NFC normalization, and a path that leaves
IMAGES_DIR (`../`, absolute, a symlink pointing out) is refused (cnncli.datasets.image_paths).
Row-level problems are collected, never raised one by one, so a build can list them all at once.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli.datasets.image_paths import list_image_files, resolve_path, shown_name
from cnncli.datasets.tables import (
    detect_columns,
    is_numeric_column,
    is_whole_number,
    read_table,
)
from cnncli.errors import CnnError, DatasetError, InputError, UsageError
from cnncli.images import natural_key

if TYPE_CHECKING:
    import pandas as pd

MAX_CLASS_INDEX_DIGITS = 6  # a class index of a million or more is a typo, not a class
SPLIT_VALUES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass
class LabelRow:
    path: str  # relative to IMAGES_DIR, as on disk (used to open the file)
    name: str  # the same path, NFC and with '/' (stored in the dataset)
    label: int | list  # class index; multilabel: 0/1 per label; regression: float per target
    class_name: str  # the class, or the caption of a row's labels ("대리석;벽돌") or values
    split: str | None = None
    line: int = 0  # the table line (header = 1) or 0 for folders


@dataclass
class LabelSet:
    rows: list[LabelRow]
    class_names: list[str]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    unused: list[str] = field(default_factory=list)  # image files nobody named
    notes: list[str] = field(default_factory=list)
    sha256: str = ""
    columns: dict = field(default_factory=dict)
    # problems that stop the whole build, --skip-bad or not (class indices with a gap):
    # (where, error), kept so the build can still check every image and list it all at once
    blockers: list[tuple[str, CnnError]] = field(default_factory=list)
    task: str = "classify"  # or "multilabel" (class_names are the labels) or "regression"
    target_names: list[str] = field(default_factory=list)  # regression: the target columns


def load_label_table(
    table: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    image_col: str | None = None,
    label_col: str | None = None,
    name_col: str | None = None,
    encoding: str | None = None,
    classes: Any = None,
    split_col: str | None = None,
) -> LabelSet:
    """Read a label table against IMAGES_DIR -> LabelSet with every row-level problem listed."""
    table, images_dir = Path(table), Path(images_dir)
    df, described = open_label_table(table, encoding)
    files = list_image_files(images_dir)
    cols = detect_columns(
        df,
        files,
        image_col=image_col,
        label_col=label_col,
        name_col=name_col,
        split_col=split_col,
        path=table,
    )
    numeric = is_numeric_column(df[cols["label"]])
    problems: list[tuple[str, str]] = []
    notes = [
        f"{described}; image column {cols['image']!r}, label column {cols['label']!r}"
        + (f", class-name column {cols['name']!r}" if cols["name"] else "")
    ]

    raw_rows = table_rows(
        df,
        cols,
        images_dir,
        files,
        problems,
        lambda rec: rec[cols["label"]],
        lambda label: label == "",
    )
    blockers: list[tuple[str, CnnError]] = []
    if numeric:
        class_names, rows = _numeric_classes(raw_rows, cols, classes, problems, table, blockers)
    else:
        class_names, rows = _text_classes(raw_rows, classes, notes)
    return table_label_set(
        table, files, rows, class_names, problems, notes, cols, blockers=blockers
    )


def table_label_set(
    table: Path,
    files: dict[str, str],
    rows: list[LabelRow],
    class_names: list[str],
    problems: list[tuple[str, str]],
    notes: list[str],
    cols: dict,
    **more,
) -> LabelSet:
    """The LabelSet of a label table: the files nobody named and the table's sha256 added."""
    return LabelSet(
        rows=rows,
        class_names=class_names,
        problems=problems,
        unused=unused_files(files, rows, problems),
        notes=notes,
        sha256=hashlib.sha256(table.read_bytes()).hexdigest(),
        columns=cols,
        **more,
    )


def open_label_table(table: Path, encoding: str | None) -> tuple[Any, str]:
    """(DataFrame, "label table NAME: N rows, ENCODING, ','-separated"); a table without
    rows is an InputError."""
    df, used_encoding, sep = read_table(table, encoding)
    if len(df) == 0:
        raise InputError(f"label table {table} has a header but no rows", "add one row per image")
    seps = "tab" if sep == chr(9) else repr(sep)
    return df, f"label table {table.name}: {len(df)} rows, {used_encoding}, {seps}-separated"


def unused_files(files: dict[str, str], rows: list[LabelRow], problems: list) -> list[str]:
    """The image files under IMAGES_DIR that no row named (natural order, as shown)."""
    used = {r.name for r in rows} | {p[0] for p in problems}
    return sorted((shown_name(k) for k in files if k not in used), key=natural_key)


def table_rows(
    df: pd.DataFrame,
    cols: dict,
    images_dir: Path,
    files: dict[str, str],
    problems: list,
    label_of: Callable[[Any], Any],
    unlabelled: Callable[[Any], bool] | None = None,
) -> list[tuple]:
    """The rows of a label table whose file resolves, as (line, rel, name, label, class
    text, split) with `label_of(record)` as the label; missing files, duplicates, bad
    splits and (when `unlabelled(label)` says so) rows without a label are added to
    `problems` as (file, "line N: reason")."""
    root_real = os.path.realpath(images_dir)
    raw_rows = []
    seen: dict[str, tuple[int, tuple[object, str]]] = {}
    for i, rec in enumerate(df.to_dict("records")):
        line = i + 2
        value = rec[cols["image"]]
        shown = shown_name(value) or f"(line {line})"
        try:
            rel, name = resolve_path(value, images_dir, files, root_real)
        except ValueError as e:
            problems.append((shown, f"line {line}: {e}"))
            continue
        label = label_of(rec)
        cname = rec[cols["name"]] if cols.get("name") else ""
        if name in seen:
            first_line, first_label = seen[name]
            clash = "" if first_label == (label, cname) else " with another label"
            problems.append(
                (name, f"line {line}: duplicate row{clash} (first on line {first_line})")
            )
            continue
        seen[name] = (line, (label, cname))
        if unlabelled is not None and unlabelled(label):
            problems.append((name, f"line {line}: no label"))
            continue
        split = None
        if cols.get("split"):
            split = SPLIT_VALUES.get(rec[cols["split"]].casefold())
            if split is None:
                problems.append(
                    (name, f"line {line}: split {rec[cols['split']]!r} is not train, val or test")
                )
                continue
        raw_rows.append((line, rel, name, label, cname, split))
    return raw_rows


def _class_indices(raw_rows, column: str, problems) -> list[tuple]:
    """The rows whose label is a class index, as (row, index); a value that is not (a typo
    in a column of numbers: 'O' for '0', a NUL byte, '1.5', a 40-digit number) is a bad
    row naming its line."""
    whole = sum(1 for r in raw_rows if is_whole_number(r[3]))
    out = []
    for r in raw_rows:
        line, name, label = r[0], r[2], r[3]
        if not is_whole_number(label):
            problems.append(
                (
                    name,
                    f"line {line}: label {_clip(label)!r} is not a whole number (column "
                    f"{column!r} holds class indices: {whole} of {len(raw_rows)} labels "
                    "are whole numbers, and all but one in ten make a column of numbers)",
                )
            )
            continue
        digits = label.lstrip("+-").split(".")[0].lstrip("0")
        if len(digits) > MAX_CLASS_INDEX_DIGITS:
            problems.append(
                (name, f"line {line}: label {_clip(label)} is too large for a class index")
            )
            continue
        out.append((r, int(label.split(".")[0])))
    return out


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _numeric_classes(
    raw_rows, cols, classes, problems, table, blockers
) -> tuple[list[str], list[LabelRow]]:
    """Class indices 0..K-1 (and their names): rows, with each row's label its index. Indices
    that do not run 0..K-1 are a blocker; the rows then get their position among the
    indices, so that the build can still check every image before it stops."""
    column = cols["label"]
    good = _class_indices(raw_rows, column, problems)
    by_index: dict[int, Counter] = {}
    by_name: dict[str, Counter] = {}
    for r, idx in good:
        by_index.setdefault(idx, Counter())[r[4]] += 1
        by_name.setdefault(r[4], Counter())[idx] += 1
    index_name = {i: c.most_common(1)[0][0] for i, c in by_index.items()}
    name_index = {n: c.most_common(1)[0][0] for n, c in by_name.items()}
    indices = sorted(by_index)
    position = {idx: k for k, idx in enumerate(indices)}
    runs = not indices or (indices[0] == 0 and indices[-1] == len(indices) - 1)
    if not runs:
        shown = ", ".join(map(str, indices[:10])) + (", ..." if len(indices) > 10 else "")
        blockers.append(
            (
                table.name,
                DatasetError(
                    f"class indices in column {column!r} of {table} must run 0..K-1; found {shown}",
                    "renumber them from 0, or label by name with --label-col",
                ),
            )
        )
    names = [index_name[i] for i in indices]
    if cols["name"]:
        dup = [n for n, c in Counter(names).items() if c > 1]
        if dup:
            blockers.append(
                (
                    table.name,
                    DatasetError(
                        f"class name {dup[0]!r} stands for several indices in {table}",
                        "give each class index its own name",
                    ),
                )
            )
    else:
        names = [str(i) for i in indices]
    if classes and runs:
        if len(classes) != len(names) or (cols["name"] and list(classes) != names):
            raise UsageError(
                f"--classes lists {len(classes)} names but the table's indices 0..{len(names) - 1} "
                f"are {', '.join(names)}",
                "list one name per index, in index order",
            )
        names = list(classes)
    rows = []
    for (line, rel, name, _label, n, split), idx in good:
        if cols["name"] and (index_name[idx] != n or name_index[n] != idx):
            problems.append(
                (
                    name,
                    f"line {line}: label {idx} contradicts its name {n!r} "
                    f"(elsewhere {n!r} is {name_index[n]} and {idx} is {index_name[idx]!r})",
                )
            )
            continue
        rows.append(LabelRow(rel, name, position[idx], names[position[idx]], split, line))
    return names, rows


def _text_classes(raw_rows, classes, notes):
    present = sorted({r[3] for r in raw_rows}, key=natural_key)
    names = list(classes) if classes else present
    lookup = {n: i for i, n in enumerate(names)}
    rows, left_out = [], Counter()
    for line, rel, name, label, _cname, split in raw_rows:
        if label not in lookup:
            left_out[label] += 1
            continue
        rows.append(LabelRow(rel, name, lookup[label], label, split, line))
    if left_out:
        notes.append(
            f"{sum(left_out.values())} rows of classes not in --classes left out "
            f"({', '.join(sorted(left_out, key=natural_key))})"
        )
    return names, rows
