"""The library's exceptions and the exit codes they map to: the one place that says which
failure exits with which code (the CLI's handler, cnncli.cli.main, reads `exit_code`).

The rule, for every command:
  2 (usage)  the command cannot start with what it was given: a bad option or argument, an
             existing output, or an input the user named (a file or folder: an image, a
             model, a dataset, a label table, a run folder) that is missing, unreadable or
             not what it should be: InputError and its kinds (ImageError, DatasetError,
             ModelFileError); an output another command is writing (BusyError).
  1 (failure) the command started and something failed on the way: a model that cannot be
             built or used for this data (ModelError), an unexpected error.
  Writing an output: a full disk or quota (OutputWriteError, exit 1), a read-only or
             forbidden output (exit 2), each named with its path by `writing()` /
             `output_error()`, the one place that turns such an OSError into a message.
  130        Ctrl-C (KeyboardInterrupt); 143: training stopped by SIGTERM (kill, timeout,
             docker stop, a cluster's pre-emption), which saves a resumable state as Ctrl-C.
Library code raises these with a message that says what is wrong and a hint that says what
to do; the CLI turns them into one line on stderr and the exit code.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the command ran and something failed on the way
    USAGE = 2  # the command was called wrongly, or an input it names is missing/unreadable
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM during training (128 + SIGTERM), after saving its state


class CnnError(Exception):
    """A failure the user can act on: `message` says what is wrong, `hint` what to do."""

    exit_code: int = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text = f"{text}: {self.hint}"
        return " ".join(text.split())  # one line, whatever the message held

    def __str__(self) -> str:
        return self.one_line()


class UsageError(CnnError):
    """The command was called wrongly: an option value, a combination of options."""

    exit_code = ExitCode.USAGE


class InputError(CnnError):
    """An input the user named (a file or folder) is missing, unreadable, or not what it
    should be: a usage error (exit 2), whichever command reads it."""

    exit_code = ExitCode.USAGE


class ImageError(InputError):
    """One image cannot be used; `path` names it and `reason` says why."""

    def __init__(self, path, reason: str, hint: str | None = None):
        super().__init__(f"{path}: {reason}", hint)
        self.path = path
        self.reason = reason


class DatasetError(InputError):
    """A dataset cannot be built from its inputs, or read. `problems` lists (file, reason)
    pairs."""

    def __init__(self, message: str, hint: str | None = None, problems=None):
        super().__init__(message, hint)
        self.problems = list(problems or [])


class ModelError(CnnError):
    """A model cannot be built, loaded or used."""


class ModelFileError(InputError, ModelError):
    """A model file that cannot be read: empty, not a model, damaged, weights only (exit 2,
    as any unreadable input; still a ModelError for code that catches those)."""


class OutputExistsError(UsageError):
    """An output would overwrite something that exists."""

    def __init__(self, path, flag: str = "--overwrite"):
        super().__init__(f"{path} already exists", f"choose another output or pass {flag}")
        self.path = path


class BusyError(UsageError):
    """An output another cnncli command is writing, or a dataset it reads (cnncli.claims):
    refused at once, naming that command (exit 2, as an existing output)."""


class DatasetChangedError(CnnError):
    """The dataset a training reads was replaced or changed while it ran (exit 1): the run
    stops; the state of its last finished epoch stays resumable."""


# ------------------------------------------------------------------ writing outputs
_NO_SPACE = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}
_NOT_WRITABLE = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class OutputWriteError(CnnError):
    """An output cannot be written: no space (ENOSPC, EDQUOT; exit 1) or not writable (EROFS,
    EACCES, EPERM; exit 2). `path` names the output (None: not known), `free` the bytes free
    there (None if unknown), `needed` what the write needed when known, `errno` the
    OSError's."""

    def __init__(self, path, errno_: int, free: int | None, needed: int | None, hint: str):
        self.path = Path(path) if path is not None else None
        self.errno, self.free, self.needed = errno_, free, needed
        self.no_space = errno_ in _NO_SPACE
        what = _NO_SPACE.get(errno_) or _NOT_WRITABLE.get(errno_, os.strerror(errno_))
        room = []  # space matters only when it ran out
        if free is not None and self.no_space:
            room.append(f"{bytes_text(free)} free there")
        if needed and self.no_space:
            room.append(f"the write needed about {bytes_text(needed)}")
        detail = f" ({'; '.join(room)})" if room else ""
        target = f" {path}" if path is not None else " an output"
        super().__init__(f"cannot write{target}: {what}{detail}", hint)
        self.exit_code = ExitCode.FAILURE if self.no_space else ExitCode.USAGE


def bytes_text(n: int) -> str:
    """1536 -> '1.5 KB' (binary units, as `--shard-size` reads them)."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover


def nearest_folder(path: str | os.PathLike) -> Path:
    """`path` or its nearest existing folder above it (a name too long to look up counts as
    missing, as a symlink loop does)."""
    where = Path(path)
    while not os.path.isdir(where) and where != where.parent:
        where = where.parent
    return where


def free_bytes(path: str | os.PathLike) -> int | None:
    """The bytes free to this user on the disk that holds `path` (or its nearest existing
    folder); None if that cannot be told."""
    where = nearest_folder(path)
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def output_error(
    e: OSError,
    path: str | os.PathLike | None = None,
    needed: int | None = None,
    hint: str | None = None,
) -> OutputWriteError | None:
    """The one-line error for `e`, met while writing the output `path` (a file or folder),
    or None when `e` is not a write problem of that output (then re-raise it). A permission
    error counts only when it names `path`, a file in it, or a temporary beside it (".name.*"),
    so an unreadable input is never reported as an output. Without `path` (the CLI's last
    resort) only a full disk or a read-only file system is told, with the file the OSError
    names if it names one."""
    code = e.errno
    if code not in _NO_SPACE and code not in _NOT_WRITABLE:
        return None
    named = Path(os.fsdecode(e.filename)) if e.filename is not None else None
    if code in (errno.EACCES, errno.EPERM):
        if path is None:
            return None
        path = Path(path)
        beside = (
            named is not None
            and named.parent == path.parent
            and named.name.startswith(f".{path.name}.")
        )
        if named is not None and not (named == path or path in named.parents or beside):
            return None
    path = path if path is not None else named
    if hint is None:
        hint = (
            "free some space or choose another output, then run the command again"
            if code in _NO_SPACE
            else "choose an output folder you can write to"
        )
    free = free_bytes(path) if path is not None else None
    return OutputWriteError(path, code, free, needed, hint)


_STRERROR = {os.strerror(code): code for code in (*_NO_SPACE, errno.EROFS)}


def output_error_in_text(text: str, path: str | os.PathLike) -> OutputWriteError | None:
    """The one-line error for a write failure that a library reports as text, not as an
    OSError (TensorFlow's own writers: the tf.data disk cache, TensorBoard's event files,
    checkpoint shards say "...: No space left on device"), met while writing into `path`;
    None when `text` tells no full disk, quota or read-only file system."""
    for strerror, code in _STRERROR.items():
        if strerror in text:
            return output_error(OSError(code, strerror), path)
    return None


# ------------------------------------------------------------------ paths
def shortened(text: str, limit: int = 60) -> str:
    """`text` whole if it has at most `limit` characters, else its start and end around '…'."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = (limit - 1) // 2
    return f"{text[:keep]}…{text[-keep:]}"


# The most bytes a name cnncli writes beside an output adds to the output's name (atomic.py,
# claims.py): '.NAME.partial-PID-TAG' is 1 + 9 + up to 7 pid digits + 1 + 8; a file's
# temporary name ('.NAME.tmp-PID-TAG.png') adds its suffix again, a lock ('.NAME.lock') 6.
DERIVED_NAME_ROOM = 26


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def path_error(e: OSError, args: list[str] | tuple = ()) -> UsageError | None:
    """The one-line usage error (exit 2) for a path the system cannot look up, whichever
    command met it and whether it was an input or an output: a name longer than the file
    system allows (ENAMETOOLONG: NAME_MAX bytes a name, PATH_MAX a path) or a symlink loop
    (ELOOP); None for any other OSError. `args` (the command line) lets a name that cnncli
    makes from an argument (a temporary or lock file beside an output) be told by the
    argument's name and how much shorter it must be."""
    if e.errno not in (errno.ENAMETOOLONG, errno.ELOOP):
        return None
    given = [a for a in args if not a.startswith("-")]
    if e.filename is not None:
        path = os.fsdecode(e.filename)
    else:  # not said: the longest argument is the likeliest
        path = max(given, key=lambda a: len(os.fsencode(a)), default="")
    if e.errno == errno.ELOOP:
        return UsageError(
            f"cannot open {shortened(path)!r}: too many levels of symbolic links",
            "a link points back to itself, or a chain of more than 40: point it at a real file",
        )
    folder = nearest_folder(os.path.dirname(os.path.abspath(path)))
    name_max = _limit(folder, "PC_NAME_MAX", 255)
    path_max = _limit(folder, "PC_PATH_MAX", 4096)
    parts = Path(path).parts or (path,)
    longest = max(parts, key=lambda p: len(os.fsencode(p)))
    size = len(os.fsencode(longest))
    if size <= name_max:
        size = len(os.fsencode(os.path.abspath(path)))
        return UsageError(
            f"path too long: {shortened(path)!r} has {size} bytes (as an absolute path), more "
            f"than the {path_max} a path may have here",
            "use a shorter path, or run the command from a folder nearer it",
        )
    stems = {p for a in given for p in Path(a).parts}
    source = None
    if longest not in stems:  # a name cnncli makes from an argument's: '.NAME.tmp-...'
        source = max((p for p in stems if len(p) > 8 and p in longest), key=len, default=None)
    if source is not None:  # room for the longest name made beside an output, not this one
        extra = max(size - len(os.fsencode(source)), DERIVED_NAME_ROOM + len(Path(source).suffix))
        room = name_max - extra
        return UsageError(
            f"file name too long: cnncli writes {shortened(longest)!r} ({size} bytes) beside "
            f"{shortened(source)!r} while making it, and a name may have at most {name_max} "
            "bytes here",
            f"shorten {shortened(source, 30)!r} to at most {max(room, 1)} bytes",
        )
    return UsageError(
        f"file name too long: {shortened(longest)!r} has {size} bytes, more than the "
        f"{name_max} a name may have here",
        "use a shorter name",
    )


def not_found(path: str | os.PathLike) -> bool:
    """Whether nothing is at `path` (as Path.exists() answers False), except that a path
    the system cannot look up raises path_error's one-line UsageError: Path.exists() says
    False for a symlink loop, and a command would say "not found"."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL byte
        return True
    except OSError as e:
        told = path_error(e)
        if told is not None:
            raise told from None
        raise
    return False


@contextmanager
def writing(
    path: str | os.PathLike, needed: int | None = None, hint: str | None = None
) -> Iterator[None]:
    """Inside the block, an OSError of a full disk, quota, read-only file system or denied
    permission on `path` becomes OutputWriteError naming `path` (see output_error)."""
    try:
        yield
    except OSError as e:
        err = output_error(e, path, needed, hint)
        if err is None:
            raise
        raise err from e
