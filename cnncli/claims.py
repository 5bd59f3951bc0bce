"""Claims on outputs and inputs: two commands never write the same output, and a dataset is
never replaced under a training that reads it.

A claim is a lock file beside its target, `.NAME.lock` for the folder or file `NAME`.
- A writer (`claim`: a dataset build, a training's run folder) holds an exclusive lock on it
  from start to end and writes into it who it is (command, pid, host, start time), so a
  second writer is refused with one line that names the first.
- A reader (`reading`: a training reading its dataset) holds a shared lock on the same file
  and names itself in `.NAME.read-PID-TAG`, so a writer is refused while anyone reads, and a
  reader while anyone writes.
The locks are the operating system's (flock): a process that ends, even by kill -9, holds
nothing, and the next writer takes its claim over and says so. Without flock (Windows) the
pid in the file decides: a claim whose process is gone from this host is stale. Claims nest
within a process (a build claims its output, and its atomic_dir claims it again).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cnncli.errors import BusyError, UsageError, writing
from cnncli.notices import say

F = TypeVar("F", bound=Callable[..., object])  # a decorated function, its type kept

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the pid in the file decides
    fcntl = None  # type: ignore[assignment]  # the module is absent, not replaced

HOST = socket.gethostname()
_STARTED = time.strftime("%Y-%m-%d %H:%M:%S")


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not yet reaped by its
    parent, does not)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def identity(what: str | None = None) -> dict:
    """Who claims: the command (`what`, else this process's first words), this process,
    this host, since when."""
    if what is None:
        words = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"]
        words += [a for a in sys.argv[1:3] if not a.startswith("-")]
        what = " ".join(words)
    return {"command": what, "pid": os.getpid(), "host": HOST, "since": _STARTED}


def holder_alive(info: dict) -> bool:
    """Whether the process `info` names still runs (on another host: assumed so)."""
    if info.get("host") != HOST:
        return True
    try:
        return process_alive(int(info.get("pid", 0)))
    except (TypeError, ValueError):
        return False


def describe(info: dict) -> str:
    """'cnncli dataset build (pid 4242 on host, since 2026-12-01 13:41:18)'."""
    where = f" on {info['host']}" if info.get("host") else ""
    since = f", since {info['since']}" if info.get("since") else ""
    return f"{info.get('command', 'a cnncli command')} (pid {info.get('pid', '?')}{where}{since})"


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(os.path.abspath(target))
    return target.parent / f".{target.name}.lock"


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _readers(target: Path) -> list[tuple[Path, dict]]:
    return [(p, _read_info(p)) for p in sorted(target.parent.glob(f".{target.name}.read-*"))]


# ------------------------------------------------------------------------ the lock file
def _flock(fd: int, exclusive: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _open_locked(lock: Path, exclusive: bool) -> int | None:
    """A descriptor of `lock` (made if missing) locked without waiting, or None when another
    process holds a lock that conflicts."""
    for _ in range(50):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if not _flock(fd, exclusive):
            os.close(fd)
            return None
        try:  # released and removed by its holder between our open and lock: again
            same = os.path.samestat(os.stat(lock), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    return None  # pragma: no cover - a lock file replaced 50 times in a row


def _writer_holds(lock: Path) -> bool:
    """Whether a writer (not only readers) holds `lock`: a shared lock cannot be had."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _flock(fd, exclusive=False)
    finally:
        os.close(fd)


def _busy(target: Path, lock: Path, reader: bool = False) -> BusyError:
    """Who holds `target`: its writer, else its readers (`reader`: a reader was refused)."""
    info = _read_info(lock)
    if fcntl is None or _writer_holds(lock):
        who = describe(info) if info else "another cnncli command"
        return BusyError(
            f"{target} is being written by {who}",
            "wait for it to finish, then run the command again"
            if reader
            else "wait for it to finish, or choose another output",
        )
    live = [describe(i) for _, i in _readers(target) if i and holder_alive(i)]
    who = (
        (live[0] + (f" and {len(live) - 1} more" if len(live) > 1 else ""))
        if live
        else ("another cnncli command")
    )
    return BusyError(
        f"{target} is in use: {who} reads it, so it cannot be written now",
        "wait for it to finish, or choose another output",
    )


@dataclass
class _Held:
    fd: int
    exclusive: bool
    count: int = 1
    reader_file: Path | None = None
    made: list[Path] = field(default_factory=list)  # folders the claim made, deepest first


_held: dict[Path, _Held] = {}


def _prepare_folder(target: Path) -> list[Path]:
    """Make the folder `target` goes in; returns the folders made, deepest first (release
    removes them again while they are empty: a refused command leaves no folder behind)."""
    parent = Path(os.path.abspath(target)).parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(
            f"cannot write {target}: {parent} is a file, not a folder", "choose another output"
        )
    made = []
    folder = parent
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    with writing(target):
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UsageError(
                f"cannot write {target}: a part of its path is a file", "choose another output"
            ) from None
    return made


def acquire(target: str | os.PathLike, what: str | None) -> Path:
    """Claim `target` for writing (see the module's docstring); BusyError when another
    process writes or reads it. Returns the lock file; give it to `release`."""
    target = Path(target)  # as the user gave it, in messages
    lock = lock_path(target)
    held = _held.get(lock)
    if held is not None and held.exclusive:
        held.count += 1
        return lock
    made = _prepare_folder(target)
    with writing(target):
        fd = _open_locked(lock, exclusive=True)
    if fd is None:
        raise _busy(target, lock)
    previous = _read_info(lock)
    if fcntl is None and previous and holder_alive(previous) and previous.get("pid") != os.getpid():
        os.close(fd)
        raise _busy(target, lock)
    stale_readers = _readers(target)
    if fcntl is None and any(i and holder_alive(i) for _, i in stale_readers):
        os.close(fd)
        raise _busy(target, lock)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(identity(what)).encode("utf-8"))
    _held[lock] = _Held(fd, exclusive=True, made=made)
    if previous.get("pid") and previous.get("pid") != os.getpid():
        say(f"took over {target} from {describe(previous)}, which stopped without releasing it")
    for path, _ in stale_readers:  # we hold the lock alone: these readers are gone
        path.unlink(missing_ok=True)
    return lock


def acquire_read(target: str | os.PathLike, what: str) -> Path | None:
    """Claim `target` for reading; BusyError while a writer holds it. None (no claim, and
    nothing to release) where no lock file can be made (a read-only folder: then nothing
    can replace the target either)."""
    target = Path(target)  # as the user gave it, in messages
    lock = lock_path(target)
    held = _held.get(lock)
    if held is not None:
        held.count += 1
        return lock
    try:
        fd = _open_locked(lock, exclusive=False)
    except OSError:
        return None
    if fd is None:
        raise _busy(target, lock, reader=True)
    info = _read_info(lock)
    if fcntl is None and info and holder_alive(info) and info.get("pid") != os.getpid():
        os.close(fd)
        raise _busy(target, lock, reader=True)
    me = target.parent / f".{target.name}.read-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    written: Path | None = me
    try:
        me.write_text(json.dumps(identity(what)), encoding="utf-8")
    except OSError:
        written = None
    _held[lock] = _Held(fd, exclusive=False, reader_file=written)
    return lock


def release(lock: Path | None) -> None:
    """End a claim made by `acquire` or `acquire_read` (the outermost one of a nest)."""
    if lock is None:
        return
    held = _held.get(lock)
    if held is None:
        return
    held.count -= 1
    if held.count:
        return
    del _held[lock]
    try:
        if held.reader_file is not None:
            held.reader_file.unlink(missing_ok=True)
        if held.exclusive or _flock(held.fd, exclusive=True):  # the last one out removes it
            try:
                if os.path.samestat(os.stat(lock), os.fstat(held.fd)):
                    lock.unlink()
            except FileNotFoundError:
                pass
    finally:
        os.close(held.fd)
    for folder in held.made:  # still empty: the command wrote nothing there
        try:
            folder.rmdir()
        except OSError:
            break


def holds(target: str | os.PathLike) -> str | None:
    """'write' or 'read' when this process holds that claim on `target`, else None."""
    held = _held.get(lock_path(target))
    return None if held is None else "write" if held.exclusive else "read"


def check_free(target: str | os.PathLike) -> None:
    """Raise BusyError when another process writes or reads `target` (holds its claim), so
    a command that would replace it is refused before any work. Takes no claim: the writer
    takes its own when writing starts."""
    target = Path(target)
    lock = lock_path(target)
    if holds(target) is not None or not lock.exists():
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return
    try:
        free = _flock(fd, exclusive=True)  # released as the descriptor closes
    finally:
        os.close(fd)
    if fcntl is None:  # pragma: no cover - Windows: the pids in the files decide
        info = _read_info(lock)
        mine = info.get("pid") == os.getpid()
        free = not (info and holder_alive(info) and not mine) and not any(
            i and holder_alive(i) for _, i in _readers(target)
        )
    if not free:
        raise _busy(target, lock)


@contextmanager
def claim(target: str | os.PathLike, what: str | None) -> Iterator[Path]:
    """Hold the write claim on `target` for the block (BusyError if another holds it)."""
    lock = acquire(target, what)
    try:
        yield Path(os.path.abspath(target))
    finally:
        release(lock)


@contextmanager
def reading(target: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold a read claim on `target` for the block (BusyError while another writes it)."""
    lock = acquire_read(target, what)
    try:
        yield Path(os.path.abspath(target))
    finally:
        release(lock)


def claimed(
    arg: str, what: str, prepare: Callable[[Path], object] | None = None
) -> Callable[[F], F]:
    """Decorator: the call holds the write claim on its argument `arg` (a path) and first
    calls `prepare(path)` under it (to recover or clean up what an earlier one left)."""

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            target = Path(signature.bind(*args, **kwargs).arguments[arg])
            with claim(target, what):
                if prepare is not None:
                    prepare(target)
                return fn(*args, **kwargs)

        return call

    return wrap


def reading_arg(arg: str, what: str, which: Callable[[object], Path | None]) -> Callable[[F], F]:
    """Decorator: the call holds the read claim on the path `which(value of arg)` returns
    (None: nothing to claim), so a build cannot replace a dataset while, say, an
    evaluation reads it."""

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            target = which(bound.arguments[arg])
            if target is None:
                return fn(*args, **kwargs)
            with reading(target, what):
                return fn(*args, **kwargs)

        return call

    return wrap
