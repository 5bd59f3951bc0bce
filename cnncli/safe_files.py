"""Reading and copying files from a folder someone handed us (a run folder, a report) without
letting the folder act on the machine: only regular files are read, never through a
symbolic link, never more than a limit, and names read from inside the folder are plain
relative names that stay in it.

- `read_regular_file(path, limit)`: the bytes of a regular file; a link, a FIFO, a device, a
  folder or a file over `limit` bytes is refused (RefusedFile) before a byte is read, so a
  FIFO cannot hang the reader and /dev/zero cannot fill its memory.
- `read_json_file(path, limit)`: the same, parsed; damaged JSON and JSON nested deeper than
  MAX_JSON_DEPTH levels (a recursion bomb) are refused.
- `plain_name(name)`: whether a name read from a file (parts.json, a link on a page) is a
  relative name inside its folder: no absolute path, no `..`, no `//host`, no `scheme:`.
- `inside(folder, name)`: folder/name, refused when the name is not plain or when a folder
  on the way is a link (a link's target is not inside the folder).
- `copy_regular_file` / `copy_regular_tree`: copies of regular files only, links and
  special files skipped and listed.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from cnncli.errors import InputError, bytes_text

MAX_JSON_DEPTH = 64  # levels of nested lists and objects: cnncli's own files use under 10
_CHUNK = 1 << 20


class RefusedFile(InputError):
    """A file that is not read: `path` names it, `reason` says why (a link, a FIFO, too
    big, not valid JSON)."""

    def __init__(self, path, reason: str, hint: str | None = None):
        super().__init__(f"{path} {reason}", hint)
        self.path = Path(path)
        self.reason = reason


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(path, mode: int) -> RefusedFile:
    return RefusedFile(
        path,
        f"is {_kind(mode)}, not a regular file: not read",
        "cnncli reads only regular files inside the folder",
    )


def _too_big(path, size: int | None, limit: int) -> RefusedFile:
    found = f"is {bytes_text(size)}" if size is not None else "grew while read"
    return RefusedFile(path, f"{found}, over the {bytes_text(limit)} cnncli reads from it")


def _open_regular(path, limit: int) -> tuple[int, int]:
    """(fd, size) of the regular file `path` opened for reading; FileNotFoundError when it is
    not there, RefusedFile for anything else that is not a regular file of at most `limit`
    bytes. The link check and the open do not follow a link (O_NOFOLLOW), and the open does
    not wait for a writer (O_NONBLOCK: a FIFO put there after the check)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:  # a name too long, no permission, a NUL byte
        if isinstance(e, OSError) and e.errno == errno.ENOTDIR:
            raise FileNotFoundError(errno.ENOENT, "not found", str(path)) from None
        raise RefusedFile(path, f"cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:  # replaced by a link after the check
            raise _not_regular(path, stat.S_IFLNK) from None
        raise RefusedFile(path, f"cannot be read ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        raise _too_big(path, st.st_size, limit)
    return fd, st.st_size


def read_regular_file(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (see `_open_regular`
    for what is refused; a file that grows past `limit` while read is refused too)."""
    fd, _ = _open_regular(path, limit)
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise RefusedFile(path, f"cannot be read ({e.strerror})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise _too_big(path, None, limit)
    return b"".join(chunks)


def read_text_file(path: str | os.PathLike, limit: int) -> str:
    """read_regular_file decoded as UTF-8 (a byte-order mark dropped); text that is not
    UTF-8 is refused."""
    try:
        return read_regular_file(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RefusedFile(path, f"is not UTF-8 text (byte {e.start})") from None


def json_depth(value: Any) -> int:
    """How deeply `value`'s lists and objects nest (a number or string: 0), without
    recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (v.values() if isinstance(v, dict) else v))
    return deepest


def read_json_file(path: str | os.PathLike, limit: int) -> Any:
    """The JSON of the regular file `path` (read_text_file), refused (RefusedFile) when it is
    not valid JSON or nests deeper than MAX_JSON_DEPTH levels."""
    text = read_text_file(path, limit)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RefusedFile(path, f"is not valid JSON ({e.msg}, line {e.lineno})") from None
    except RecursionError:
        value = None
        deep = True
    else:
        deep = json_depth(value) > MAX_JSON_DEPTH
    if deep:
        raise RefusedFile(path, f"is not valid JSON (nested deeper than {MAX_JSON_DEPTH} levels)")
    return value


def plain_name(name: Any) -> bool:
    """Whether `name` (read from a file) is a relative name that stays inside its folder, and
    reads as a file, not an address, when a page links to it: a non-empty string of
    `/`-separated parts, none empty, `.` or `..`, no backslash, NUL or control character, no
    `:` (an address's scheme, `javascript:`, a drive)."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        return False
    if any(c in name for c in "\\:") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def inside(folder: str | os.PathLike, name: str) -> Path:
    """folder/name when `name` is a plain name (plain_name) and no folder on its way below
    `folder` is a link or not a folder; RefusedFile otherwise. The last part itself is left
    to the reader (read_regular_file refuses a link)."""
    folder = Path(folder)
    if not plain_name(name):
        shown = repr(name)[:120]
        raise RefusedFile(folder, f"names {shown}, not a plain name inside it: skipped")
    here = folder
    for part in PurePosixPath(name).parts[:-1]:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            raise
        except OSError as e:
            raise RefusedFile(here, f"cannot be read ({e.strerror})") from None
        if not stat.S_ISDIR(mode):
            raise (
                _not_regular(here, mode)
                if stat.S_ISLNK(mode)
                else FileNotFoundError(errno.ENOTDIR, "not a folder", str(here))
            )
    return folder / name


def copy_regular_file(src: str | os.PathLike, dst: str | os.PathLike, limit: int) -> Path:
    """Copy the regular file `src` (refused as read_regular_file refuses) to `dst`, streamed
    in chunks; FileNotFoundError when `src` is not there."""
    fd, _ = _open_regular(src, limit)
    dst = Path(dst)
    copied = 0
    try:
        with os.fdopen(fd, "rb", closefd=False) as f, open(dst, "wb") as out:
            while chunk := f.read(_CHUNK):
                copied += len(chunk)
                if copied > limit:
                    raise _too_big(src, None, limit)
                out.write(chunk)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return dst


def copy_regular_tree(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    limit: int,
    most_files: int = 10_000,
    depth: int = 8,
) -> list[str]:
    """Copy the regular files under the folder `src` to `dst`, no link followed (a link, a
    FIFO, a device, a file over `limit` bytes is skipped), at most `most_files` files and
    `depth` levels. Returns what was skipped, one line each; a `src` that is itself a link
    or not a folder is refused (RefusedFile), FileNotFoundError when it is not there."""
    src, dst = Path(src), Path(dst)
    mode = os.lstat(src).st_mode
    if not stat.S_ISDIR(mode):
        raise (
            _not_regular(src, mode)
            if not stat.S_ISLNK(mode)
            else RefusedFile(
                src,
                "is a symbolic link, not a folder: not copied",
                "cnncli copies only regular files inside the folder",
            )
        )
    skipped: list[str] = []
    count = 0
    stack = [(src, dst, 0)]
    while stack:
        here, there, level = stack.pop()
        there.mkdir(parents=True, exist_ok=True)
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as e:
            skipped.append(f"{here} cannot be listed ({e.strerror}): not copied")
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if level + 1 >= depth:
                    skipped.append(f"{path} is deeper than {depth} levels: not copied")
                else:
                    stack.append((path, there / entry.name, level + 1))
                continue
            if count >= most_files:
                skipped.append(f"{here}: more than {most_files:,} files, the rest not copied")
                return skipped
            try:
                copy_regular_file(path, there / entry.name, limit)
                count += 1
            except RefusedFile as e:
                skipped.append(e.one_line())
            except FileNotFoundError:
                continue
    return skipped
