"""Image files under IMAGES_DIR, named as a dataset stores them: the listing (NFC names with
'/'), a name as it can be printed, and a path from a label table or a split file resolved
without leaving IMAGES_DIR (`../`, absolute paths and symlinks pointing out are refused)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cnncli.datasets.tables import nfc
from cnncli.images import find_images, unreadable_reason


def list_image_files(images_dir: Path) -> dict[str, str]:
    """{NFC posix relative path: relative path as on disk} of the visible image files."""
    out: dict[str, str] = {}
    for f in find_images(images_dir):
        rel = os.path.relpath(f, images_dir)
        out[nfc(rel.replace(os.sep, "/"))] = rel
    return out


def shown_name(text: str) -> str:
    """A file name as it can be printed and stored: bytes that are not UTF-8 (kept by
    Python as surrogates) written as \\xNN."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def inside(path: Path, root_real: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def resolve_path(
    value: str, images_dir: Path, files: dict[str, str], root_real: str
) -> tuple[str, str]:
    """(on-disk relative path, NFC name) for a table value, or raise ValueError(reason)."""
    v = nfc(value.strip()).replace("\\", "/")
    if not v:
        raise ValueError("no file name")
    if v.startswith("/") or re.match(r"^[A-Za-z]:/", v) or os.path.isabs(v):
        raise ValueError("absolute path refused: paths must be relative to IMAGES_DIR")
    norm = os.path.normpath(v).replace(os.sep, "/")
    if norm == ".." or norm.startswith("../"):
        raise ValueError("path leaves IMAGES_DIR (../) and is refused")
    rel = files.get(norm)
    if rel is None:
        check_file(os.path.join(images_dir, norm))
        rel = norm
    if not inside(images_dir / rel, root_real):
        raise ValueError("symlink points outside IMAGES_DIR and is refused")
    return rel, norm


def check_file(path: str) -> None:
    """Raise ValueError(reason) unless `path` is a file (one that find_images did not list:
    a name without an image extension, or hidden)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except ValueError:  # os.stat's "embedded null byte"
        raise ValueError("file name holds a NUL byte") from None
    except OSError as e:  # a name too long for the system, no permission to look
        raise ValueError(unreadable_reason(e)) from None
    if stat.S_ISDIR(mode):
        raise ValueError("is a folder, not an image")
    if not stat.S_ISREG(mode):
        raise ValueError("is not a regular file")
