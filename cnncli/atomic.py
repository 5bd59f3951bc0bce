"""Atomic outputs: write into a hidden temporary file or folder beside the target, then
rename. An interrupted command never leaves a half file that looks whole."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnncli.errors import OutputExistsError


def _temp_beside(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`.

    The temporary name keeps the extension (`.x.png.tmp-...png` is not needed by Pillow:
    pass `format=` when saving) and is removed if the block raises.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path, "tmp")
    tmp = tmp.with_name(tmp.name + path.suffix)  # keep the suffix so libraries infer formats
    try:
        yield tmp
        os.replace(tmp, path)
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


@contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path`.

    An existing `path` is refused unless `overwrite`; then it is moved aside, the new
    folder renamed into place, and the old one deleted, so `path` is always whole.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path, "partial")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _temp_beside(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
