"""Atomic outputs: write into a hidden temporary file or folder beside the target, then
rename. An interrupted command never leaves a half file that looks whole, and what it does
leave is found again: temporary names carry the writer's pid (and a tag of its host),
`.NAME.KIND-PID-TAG`, so a later command removes those of processes that are gone
(`clean_debris`) and says so, and finishes or undoes a replacement stopped between its two
renames (`recover_swap`). Temporary files never go to the system temp folder: `scratch`
routes what libraries put there (Keras' model save) beside the target.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli.claims import HOST, check_free, claim, process_alive
from cnncli.errors import OutputExistsError, UsageError, bytes_text
from cnncli.notices import say

KINDS = ("tmp", "partial", "old", "scratch")
HOST_TAG = f"{zlib.crc32(HOST.encode('utf-8')) & 0xFFFF:04x}"
_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<kind>tmp|partial|old|scratch)-(?P<pid>\d+)-(?P<tag>[0-9a-f]{8})"
)


def rename(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rename `src` to `dst` in one step, replacing `dst` (both on one file system): a reader
    sees the old `dst` or the new one, never a half. Every rename in cnncli goes through
    here. Returns `dst`."""
    os.replace(src, dst)
    return Path(dst)


def set_aside(path: str | os.PathLike) -> Path:
    """Move `path` to `.NAME.old-PID-TAG` beside it (one rename) and return where it went:
    what a command that rebuilds `path` in place keeps until it is done, then deletes, or
    puts back with `rename(old, path)` when it fails (clean_debris removes one left by a
    process that is gone)."""
    old = temp_path(Path(path), "old")
    return rename(path, old)


def temp_path(path: Path, kind: str) -> Path:
    """`.NAME.KIND-PID-TAG` beside `path`: TAG is this host's tag and 4 random hex digits."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{HOST_TAG}{uuid.uuid4().hex[:4]}")


@dataclass(frozen=True)
class TempName:
    target: str  # the name of what it was written for
    kind: str  # tmp (a file), partial (a folder), old (a replaced folder), scratch
    pid: int
    tag: str

    @property
    def gone(self) -> bool:
        """Its writer ran on this host and no longer runs."""
        return self.tag[:4] == HOST_TAG and not process_alive(self.pid)


def parse_temp_name(name: str) -> TempName | None:
    """What a temporary name says, or None for any other name."""
    m = _TEMP_NAME.match(name)
    if m is None:
        return None
    return TempName(m["target"], m["kind"], int(m["pid"]), m["tag"])


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_debris(
    folder: str | os.PathLike, target: str | None = None, claimed: bool = False
) -> list[str]:
    """Remove the temporary files and folders in `folder` (of `target` only, if given) that
    interrupted commands left: those of processes gone from this host, or with `claimed`
    (the caller holds the claim on `target`, so no other writer of it runs) every one not
    of this process. Says what was removed in one line; returns the names."""
    folder = Path(folder)
    pattern = f".{glob.escape(target)}.*-*" if target else ".*-*"
    try:
        entries = list(folder.glob(pattern)) if folder.is_dir() else []
    except OSError:
        return []
    removed = []
    for path in sorted(entries):
        t = parse_temp_name(path.name)
        if t is None or (target is not None and t.target != target) or t.pid == os.getpid():
            continue
        if not (t.gone or (claimed and target is not None)):
            continue
        try:
            size = _size(path)
        except OSError:
            size = 0
        _remove(path)
        if not path.exists():
            removed.append(f"{path.name} ({bytes_text(size)})")
    if removed:
        more = f" and {len(removed) - 3} more" if len(removed) > 3 else ""
        shown = ", ".join(removed[:3]) + more
        say(f"removed what interrupted commands left in {folder}: {shown}")
    return removed


def scratch_folder() -> Path:
    """A folder of this process's own in the system temp folder (`.cnncli.scratch-PID-TAG`):
    what a multi-worker training's non-chief workers write and throw away. The caller
    removes it; if the process is killed first, the next `clean_scratch` does."""
    clean_scratch()
    folder = temp_path(Path(tempfile.gettempdir()) / "cnncli", "scratch")
    folder.mkdir(parents=True)
    return folder


@contextmanager
def scratch(near: str | os.PathLike | None = None) -> Iterator[Path]:
    """A scratch folder for what libraries write to the system temp folder (Keras' .keras
    save and load unpack assets there): Python's `tempfile` uses it within the block. Beside
    `near` (`.NAME.scratch-PID-TAG`), or with `near` None in the system temp folder
    (`.cnncli.scratch-PID-TAG`, whose leftovers `clean_scratch` removes); removed at the end."""
    base = Path(near) if near is not None else Path(tempfile.gettempdir()) / "cnncli"
    folder = temp_path(base, "scratch")
    folder.mkdir(parents=True)
    previous, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)


def clean_scratch() -> list[str]:
    """Remove the scratch folders that stopped commands left in the system temp folder."""
    return clean_debris(tempfile.gettempdir(), "cnncli")


@contextmanager
def atomic_file(
    path: str | os.PathLike, overwrite: bool = True, scratch_beside: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`.

    The temporary name keeps the extension (`.x.png.tmp-...png`), so libraries infer the
    format, and is removed if the block raises. `scratch_beside`: the temporary path is
    inside a scratch folder beside `path` (`.NAME.scratch-PID-TAG/NAME`), which is also the
    system temp folder within the block (for Keras' model save); all of it removed at the end.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, "tmp")
    tmp = tmp.with_name(tmp.name + path.suffix)  # keep the suffix so libraries infer formats
    if scratch_beside:
        # The file itself is written inside the scratch folder too: Keras puts the weights
        # of a model too large for memory in an anonymous temporary file beside the file
        # it writes, which a kill would leave with no pid to tell it is debris.
        with scratch(path) as folder:
            inside = folder / path.name
            yield inside
            rename(inside, path)
        return
    try:
        yield tmp
        rename(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    with atomic_file(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), overwrite)


def write_json(path: str | os.PathLike, data: Any, overwrite: bool = True) -> Path:
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False, default=str) + "\n"
    return write_text(path, text, overwrite)


def recover_swap(
    path: str | os.PathLike, complete: Callable[[Path], bool] | None = None
) -> str | None:
    """Recover a replacement (atomic_dir with overwrite) stopped between its two renames:
    `path` is missing, the old version is at `.NAME.old-PID-*` and the new one at
    `.NAME.partial-PID-*`. Finish it when the new one is complete (`complete(folder)`; never
    without it), else put the old one back. Call it under the claim of `path`. Says what
    was done in one line and returns it; None when there was nothing to recover."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return None
    olds = []
    for p in path.parent.glob(f".{glob.escape(path.name)}.old-*"):
        t = parse_temp_name(p.name)
        if t and t.target == path.name and t.kind == "old" and p.is_dir():
            if t.tag[:4] != HOST_TAG or not process_alive(t.pid) or t.pid == os.getpid():
                olds.append((p.stat().st_mtime, p, t))
    if not olds:
        return None
    _, old, t = max(olds, key=lambda o: o[0])
    news = [
        p
        for p in path.parent.glob(f".{glob.escape(path.name)}.partial-{t.pid}-*")
        if complete is not None and p.is_dir() and complete(p)
    ]
    what = f"a replacement by process {t.pid} (--overwrite) was stopped between its two renames"
    if news:
        rename(news[0], path)
        shutil.rmtree(old, ignore_errors=True)
        line = f"recovered {path}: {what}; finished it: its new version, complete, is in place"
    else:
        rename(old, path)
        line = (
            f"recovered {path}: {what}; its new version was incomplete, so the previous "
            "one is back in place"
        )
    say(line)
    return line


@contextmanager
def atomic_dir(
    path: str | os.PathLike, overwrite: bool = False, complete: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path`.

    The whole block holds the claim on `path` (cnncli.claims: another writer is refused),
    and first recovers a replacement stopped between its renames (`complete`: see
    recover_swap) and removes what interrupted writers of `path` left. An existing `path`
    is refused unless `overwrite`; then it is moved aside, the new folder renamed into
    place, and the old one deleted, so `path` is always whole.
    """
    path = Path(path)
    with claim(path, None):
        recover_swap(path, complete)
        clean_debris(path.parent, path.name, claimed=True)
        if path.exists() and not overwrite:
            raise OutputExistsError(path)
        tmp = temp_path(path, "partial")
        tmp.mkdir()
        try:
            yield tmp
            if path.exists():
                if not overwrite:  # made meanwhile by a writer that does not claim
                    raise OutputExistsError(path)
                old = temp_path(path, "old")
                rename(path, old)
                rename(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                rename(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(
    path: str | os.PathLike,
    overwrite: bool,
    what: str,
    marker: str | Sequence[str],
    *,
    wrote: Callable[[Path], bool] | None = None,
    inputs: Sequence[str | os.PathLike | None] = (),
    empty_is_free: bool = False,
    replacer: str = "--overwrite",
    hint: str = "choose another output folder",
) -> None:
    """May a command replace the output folder `path`? Raises when not; changes nothing.
    The one rule of every command that writes a folder:
    - another process writes or reads `path` (holds its claim): BusyError, always;
    - nothing at `path`: yes; an empty folder, where `empty_is_free`, is used as it is;
    - it exists and not `overwrite`: OutputExistsError;
    - with `overwrite`, only a folder this command wrote: one holding `marker` (a name or
      glob patterns; `wrote(path)` decides instead where given), or an empty one; never a
      file, nor a folder holding one of `inputs`.
    `what` names such a folder ("a cnncli run folder") and `replacer` what would replace
    it, in the one-line message."""
    path = Path(path)
    check_free(path)
    if not path.exists() and not path.is_symlink():
        return
    empty = path.is_dir() and not any(path.iterdir())
    if empty and empty_is_free:
        return
    if not overwrite:
        raise OutputExistsError(path)
    if not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder", hint)
    real = os.path.realpath(path)
    for source in inputs:
        if source is None:
            continue
        held = os.path.realpath(source)
        if held == real or held.startswith(real.rstrip(os.sep) + os.sep):
            raise UsageError(
                f"{path} holds the inputs ({source}); {replacer} would delete them", hint
            )
    markers = [marker] if isinstance(marker, str) else list(marker)
    mine = wrote(path) if wrote is not None else any(any(path.glob(m)) for m in markers)
    if not (empty or mine):
        raise UsageError(
            f"{path} is not {what} (no {markers[0]}), so {replacer} will not replace it", hint
        )
