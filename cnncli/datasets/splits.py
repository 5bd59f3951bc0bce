"""The train/val/test split of a dataset: stratified by class and reproducible, so the same
inputs and seed give the same split (and a byte-identical manifest and index); or read
from split files, lists of image paths as course folders and Kaggle sets ship them."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from cnncli.datasets.image_paths import list_image_files, resolve_path
from cnncli.datasets.labels import SPLIT_VALUES, LabelRow, LabelSet
from cnncli.datasets.tables import read_text
from cnncli.errors import DatasetError, UsageError


def split_count(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, math.floor(fraction * n + 0.5))


def assign_splits(
    rows: list[LabelRow], class_names: list[str], val: float, test: float, seed: int
) -> list[str]:
    """Stratified, reproducible split: each class shuffled with its own seeded generator."""
    return stratified_split([cast(int, r.label) for r in rows], class_names, val, test, seed)


def stratified_split(
    groups: list[int],
    group_names: list[str],
    val: float,
    test: float,
    seed: int,
    what: str = "class",
) -> list[str]:
    """Each group (class, or a regression target's quantile bin) split val/test/train by
    the same fractions, shuffled with its own seeded generator."""
    splits = ["train"] * len(groups)
    by_class: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_class.setdefault(g, []).append(i)
    too_small = []
    for label, members in sorted(by_class.items()):
        n = len(members)
        n_val, n_test = split_count(val, n), split_count(test, n)
        if n - n_val - n_test < 1:
            too_small.append((group_names[label], n, n_val + n_test + 1))
            continue
        order = np.random.default_rng([seed, label]).permutation(n)
        for k, pos in enumerate(order):
            if k < n_test:
                splits[members[pos]] = "test"
            elif k < n_test + n_val:
                splits[members[pos]] = "val"
    if too_small:
        name, n, need = too_small[0]
        more = f" (and {len(too_small) - 1} more {what}es)" if len(too_small) > 1 else ""
        raise DatasetError(
            f"{what} {name!r} has {n} image{'s' * (n != 1)}, too few for --val {val} and "
            f"--test {test}: it needs at least {need}{more}",
            "add images, lower --val/--test, or give a split column with --split-col",
        )
    return splits


# ------------------------------------------------------------------------------- split files
def parse_split_files(value: str | Sequence[str] | dict) -> dict[str, Path]:
    """'train.txt,val.txt,test.txt' (or a list) -> {split: file}: one to three files, each
    split read from its file name (`train.txt`, `valid_list.txt`, `test-files.txt`), or
    given as `split=FILE` where the name does not say it (`train=trainval.txt`); a dict
    {split: file} (what this returns) is checked as `split=FILE` items."""
    if isinstance(value, dict):
        value = [f"{split}={path}" for split, path in value.items()]
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [str(v) for v in items if str(v).strip()]
    if not 1 <= len(items) <= 3:
        raise UsageError(
            f"--split-files takes one to three files, got {len(items)}",
            "give them comma-separated: train.txt,val.txt,test.txt",
        )
    found: dict[str, Path] = {}
    for item in items:
        head, eq, tail = item.partition("=")
        if eq and head.strip().casefold() in SPLIT_VALUES:
            split, path = SPLIT_VALUES[head.strip().casefold()], Path(tail.strip())
        else:
            path = Path(item)
            words = {
                SPLIT_VALUES[w]
                for w in re.split(r"[^a-z]+", path.stem.casefold())
                if w in SPLIT_VALUES
            }
            if len(words) != 1:
                raise UsageError(
                    f"cannot tell from its name which split {item} lists",
                    f"name it: train={item}, val={item} or test={item}",
                )
            split = words.pop()
        if split in found:
            raise UsageError(
                f"two files for the {split} split: {found[split]} and {path}",
                "give one file per split",
            )
        found[split] = path
    return {s: found[s] for s in ("train", "val", "test") if s in found}


def apply_split_files(ls: LabelSet, images_dir: Path, split_files: dict[str, Path]) -> dict:
    """Give each row of `ls` the split whose file lists it (one image path per line, relative
    to IMAGES_DIR and read as a label table's image column is, optionally followed by its
    label, which must agree with the labels; blank lines and `#` lines ignored). An image in
    two files is a problem naming both; images no file lists are left out and noted, or
    make up the train split when no train file is given. Changes `ls` in place; returns
    what the manifest records: {split: {"file", "sha256", "images"}}."""
    images_dir = Path(images_dir)
    files, root_real = list_image_files(images_dir), os.path.realpath(images_dir)
    listed: dict[str, tuple[str, str]] = {}  # name -> (split, "file line n")
    labels_given: dict[str, tuple[str, str]] = {}  # name -> (label, "file line n")
    bad: set[str] = set()
    sources: dict[str, dict[str, Any]] = {}
    for split, path in split_files.items():
        text, _ = read_text(path, None, "split file", "--split-files", "a list of image paths")
        sources[split] = {"file": path.name, "sha256": file_sha256(path), "images": 0}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path.name} line {n}"
            try:
                name, given = _listed_image(line, images_dir, files, root_real)
            except ValueError as e:
                ls.problems.append((line.strip(), f"{where}: {e}"))
                continue
            if given is not None:
                labels_given[name] = (given, where)
            if name in listed and listed[name][0] != split:
                ls.problems.append((name, f"listed in {listed[name][1]} and {where}"))
                bad.add(name)
            elif name not in listed:
                listed[name] = (split, where)
                sources[split]["images"] += 1
    rest = None if "train" in split_files else "train"
    kept: list[LabelRow] = []
    left_out: list[str] = []
    for row in ls.rows:
        if row.name in labels_given and not _same_label(labels_given[row.name][0], row):
            given, where = labels_given[row.name]
            ls.problems.append(
                (row.name, f"{where} gives label {given!r}, the labels say {row.class_name!r}")
            )
            bad.add(row.name)
        row_split = listed[row.name][0] if row.name in listed else rest
        if row.name in bad:
            continue
        if row_split is None:
            left_out.append(row.name)
            continue
        row.split = row_split
        kept.append(row)
    unlabelled = len(set(listed) - {r.name for r in ls.rows} - {p[0] for p in ls.problems})
    ls.rows = kept
    if rest:
        ls.notes.append("train: the images no split file lists")
    if left_out:
        more = ", ..." if len(left_out) > 5 else ""
        ls.notes.append(
            f"{len(left_out)} images are in no split file and were left out: "
            f"{', '.join(left_out[:5])}{more}"
        )
    if unlabelled:
        ls.notes.append(f"{unlabelled} files in the split files have no label, not used")
    return sources


def _listed_image(line: str, images_dir: Path, files, root_real) -> tuple[str, str | None]:
    """One split-file line -> (image name, the label written after it or None). A line is
    an image path, or `path label` / `path,label` as many published split lists are
    (`n01440764/n01440764_10026.JPEG 0`); a path with spaces in it is read whole first."""
    try:
        return resolve_path(line, images_dir, files, root_real)[1], None
    except ValueError as whole:
        head, sep, label = line.strip().replace("\t", " ").rpartition("," if "," in line else " ")
        if not sep or not head.strip() or not label.strip():
            raise whole from None
        try:
            return resolve_path(head.strip(), images_dir, files, root_real)[1], label.strip()
        except ValueError:
            raise whole from None


def _same_label(given: str, row) -> bool:
    """A label written in a split file agrees with the row's: its class name, or its
    class index for a table of numbers."""
    if given == row.class_name:
        return True
    return isinstance(row.label, int) and given.lstrip("+").isdigit() and int(given) == row.label


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def keep_copies_together(
    rows: list[LabelRow],
    splits: list[str],
    images_dir: Path,
    given: str | None,
    hashes: dict[str, str | None] | None = None,
) -> str:
    """Put every group of identical image files (same bytes) in one split, so a fresh split
    never puts the same picture in train and test: train when one of them is there (a class
    never loses its train images), else the first one's split; `splits` is changed in
    place. Splits `given` by a column or files are kept as they are: their leaks are only
    counted. `hashes` ({path: sha256}, an update's: cnncli.datasets.stable) spares
    reading the files again. Returns the line the build says."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        digest = (hashes or {}).get(row.name)
        if digest is None:
            try:
                digest = file_sha256(Path(images_dir) / row.path)
            except OSError:
                continue  # the conversion reports the file
        groups.setdefault(digest, []).append(i)
    spanning = [g for g in groups.values() if len({splits[i] for i in g}) > 1]
    if given:
        if not spanning:
            return f"identical image files: none in two splits of the {given}"
        return (
            f"{len(spanning)} groups of identical image files span two splits of the "
            f"{given} (leaks: cnncli dataset check lists them)"
        )
    moved = 0
    for g in spanning:
        target = "train" if any(splits[i] == "train" for i in g) else splits[g[0]]
        moved += sum(splits[i] != target for i in g)
        for i in g:
            splits[i] = target
    if not moved:
        return (
            "identical image files are kept in one split (none had to move; "
            "--allow-leaks splits them freely)"
        )
    return (
        f"identical image files are kept in one split: {moved} image{'s' * (moved != 1)} "
        f"of {len(spanning)} group{'s' * (len(spanning) != 1)} moved (to train where a "
        "copy is there; --allow-leaks splits them freely)"
    )


def split_options(
    val: float | None,
    test: float | None,
    split_col: str | None,
    split_files: str | Sequence[str] | dict | None,
) -> tuple[float, float, dict | None]:
    """(val, test, {split: file} or None) from the build's split options: --split-files and
    --split-col give the splits, so neither goes with the other or with --test; --val goes
    with split files that give no val list (the val split is carved out of the train
    list, stratified: the returned val)."""
    if not split_files:
        return (0.2 if val is None else val), (0.0 if test is None else test), None
    files = parse_split_files(split_files)
    if val is not None and "val" in files:
        raise UsageError(
            f"--split-files gives the val split ({files['val']}), so --val cannot be used with it",
            "leave out --val, or the val file",
        )
    for flag, v in (("--test", test), ("--split-col", split_col)):
        if v is not None:
            raise UsageError(
                f"--split-files gives the splits, so {flag} cannot be used with it",
                f"leave out {flag}, or --split-files",
            )
    return (val or 0.0), 0.0, files
