"""Acting on `cnncli dataset check` in a build: `--exclude FILE` leaves images out and
`--relabel FILE` gives images other labels, before the split is made.

--exclude takes the issues.csv a check wrote (the rows whose suggestion is "exclude": the
extra copies of each duplicate group and blank images; delete the rows you want to keep
in), a table with an `image` column (every image it names), or a plain list of image names,
one a line (blank and `#` lines ignored). --relabel takes an issues.csv and applies the
suggestion of each "label issue" row left in it (a class name; labels joined by ';' for a
multilabel dataset). Names are the label table's image names, as check reports them; a
name that is not in the table is refused, nothing is built."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from cnncli.datasets.labels import LabelSet
from cnncli.datasets.splits import file_sha256
from cnncli.datasets.tables import nfc, read_text
from cnncli.errors import UsageError

EXCLUDE = "exclude"  # cnncli.check.report writes this suggestion
LABEL_PROBLEM = "label issue"


def _rows(path: Path, flag: str) -> tuple[list[dict] | None, list[str], str]:
    """(csv rows as dicts when the file has an `image` column header, else None; the
    plain lines; the sha256 of the file)."""
    expected = "issues.csv from cnncli dataset check, or a list of image names"
    text, _ = read_text(path, None, f"{flag} file", f"{flag} FILE", expected)
    sha = file_sha256(Path(path))
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if lines and "image" in [h.strip() for h in next(csv.reader([lines[0]]))]:
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        return [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader], [], sha
    return None, lines, sha


def read_exclude(path: str | os.PathLike) -> tuple[list[str], str]:
    """(image names to leave out, the file's sha256) from an --exclude file."""
    rows, lines, sha = _rows(Path(path), "--exclude")
    if rows is None:
        return [nfc(n) for n in lines], sha
    if rows and "suggestion" in rows[0]:
        rows = [r for r in rows if r.get("suggestion", "").casefold() == EXCLUDE]
    return [nfc(r["image"]) for r in rows if r.get("image")], sha


def read_relabel(path: str | os.PathLike) -> tuple[dict[str, str], str]:
    """({image name: new label}, sha256) from the "label issue" rows of an issues.csv."""
    rows, _, sha = _rows(Path(path), "--relabel")
    if rows is None or (rows and not {"problem", "suggestion"} <= set(rows[0])):
        raise UsageError(
            f"--relabel {path} is not an issues.csv (no image, problem and suggestion columns)",
            "give the issues.csv cnncli dataset check wrote, with the rows you agree with",
        )
    return {
        nfc(r["image"]): r["suggestion"]
        for r in rows
        if r.get("problem") == LABEL_PROBLEM and r.get("suggestion")
    }, sha


def _unknown(names, known: set[str], flag: str, path) -> None:
    missing = [n for n in dict.fromkeys(names) if n not in known]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UsageError(
            f"{flag} {path} names {len(missing)} image{'s' * (len(missing) != 1)} that "
            f"{'are' if len(missing) != 1 else 'is'} not in the labels: {shown}",
            "give the file written by cnncli dataset check for these images and labels",
        )


def apply_corrections(
    ls: LabelSet, exclude: str | os.PathLike | None = None, relabel: str | os.PathLike | None = None
) -> tuple[dict, list[str]]:
    """Leave out (`exclude`) and relabel (`relabel`) rows of `ls` in place. Returns what
    the manifest records ({"exclude": {file, sha256, images}, "relabel": {...}}) and the
    notes said by the build. UsageError (nothing done) for a name not in the labels, or a
    suggested label that is not one of the classes."""
    recorded, notes = {}, []
    known = {r.name for r in ls.rows} | {p[0] for p in ls.problems}
    if relabel is not None:
        if ls.task == "regression":
            raise UsageError(
                "--relabel applies to classify and multilabel datasets",
                "correct regression targets in the table itself",
            )
        new, sha = read_relabel(relabel)
        _unknown(new, known, "--relabel", relabel)
        index = {n: i for i, n in enumerate(ls.class_names)}
        changed = 0
        for row in ls.rows:
            if row.name not in new:
                continue
            names = (
                [p.strip() for p in new[row.name].split(";")]
                if ls.task == "multilabel"
                else [new[row.name]]
            )
            bad = [n for n in names if n not in index]
            if bad:
                raise UsageError(
                    f"--relabel {relabel}: {row.name} is given label {bad[0]!r}, "
                    f"which is not a class ({', '.join(ls.class_names)})",
                    "fix that row's suggestion or delete the row",
                )
            if ls.task == "multilabel":
                row.label = [int(c in names) for c in ls.class_names]
                row.class_name = ";".join(c for c in ls.class_names if c in names)
            else:
                row.label, row.class_name = index[names[0]], names[0]
            changed += 1
        recorded["relabel"] = {"file": Path(relabel).name, "sha256": sha, "images": changed}
        notes.append(
            f"relabelled {changed} image{'s' * (changed != 1)} as "
            f"{Path(relabel).name} suggests (--relabel)"
        )
    if exclude is not None:
        names, sha = read_exclude(exclude)
        _unknown(names, known, "--exclude", exclude)
        drop = set(names)
        before = len(ls.rows)
        ls.rows = [r for r in ls.rows if r.name not in drop]
        ls.problems = [p for p in ls.problems if p[0] not in drop]
        n = before - len(ls.rows)
        recorded["exclude"] = {"file": Path(exclude).name, "sha256": sha, "images": n}
        notes.append(
            f"left out {n} image{'s' * (n != 1)} listed in {Path(exclude).name} (--exclude)"
        )
    return recorded, notes
