"""Which folders are run folders: a folder holding run.json is a run; the folders given are
searched two levels deep (runs/train, runs/experiment/train); a folder that holds no run
is skipped and counted. Hidden names (claims, temporary folders) are passed over silently.
Nothing here opens more than a folder listing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnncli.errors import InputError
from cnncli.training.rundir import RUN_JSON

DEFAULT_ROOT = "runs"
DEPTH = 2  # levels below a given folder that are searched for run folders


@dataclass
class Skipped:
    path: Path
    reason: str

    def to_dict(self) -> dict:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class Found:
    runs: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def is_run(folder: Path) -> bool:
    return (folder / RUN_JSON).is_file()


def find_runs(dirs: Sequence[str | Path] = ()) -> Found:
    """The run folders in or at `dirs` (default: runs/ here), in name order, each once;
    folders below them that hold no run are listed as skipped. A folder given that does
    not exist is an InputError."""
    given = [Path(d) for d in dirs] or [Path(DEFAULT_ROOT)]
    found = Found()
    seen: set[Path] = set()
    for root in given:
        hint = "give the folders that hold run folders (cnncli train writes runs/train)"
        if not root.exists():
            raise InputError("no runs/ folder here" if not dirs else f"{root} not found", hint)
        if not root.is_dir():
            raise InputError(f"{root} is not a folder", hint)
        _walk(root, DEPTH, found, seen, top=True)
    return found


def _walk(folder: Path, depth: int, found: Found, seen: set, top: bool = False) -> bool:
    """Add the runs at or below `folder`; True when there was at least one."""
    key = folder.resolve()
    if key in seen:
        return True
    if is_run(folder):
        seen.add(key)
        found.runs.append(folder)
        return True
    if depth == 0:
        return False
    try:
        children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as e:
        found.skipped.append(Skipped(folder, f"cannot be listed ({e.strerror})"))
        return False
    any_run = False
    for child in children:
        if not child.is_dir():
            continue
        if _walk(child, depth - 1, found, seen):
            any_run = True
        elif top:
            found.skipped.append(Skipped(child, f"not a run folder (no {RUN_JSON})"))
    return any_run
