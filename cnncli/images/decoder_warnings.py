"""What the image decoders say while one image is read, caught so it can be attached to that
file: Pillow's Python warnings ("Corrupt EXIF data. Expecting to read 2 bytes but only got
0.") and the lines libtiff prints straight to the process's stderr ("tempfile.tif: Using
code not yet in table."). Left alone, both reach the terminal without saying which of ten
thousand files they are about.

Pillow decodes TIFF with libtiff, a C library that writes to file descriptor 2 itself;
`capture_stderr=True` points that descriptor at an anonymous in-memory file for the
duration (a microsecond's work, so callers do it only for TIFF files), and hands back what
was written. Anything that looks like a terminal's control output (a progress bar drawn by
another thread in that instant) is passed on to the real stderr, not kept."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PILLOW_TIFF_NAME = "tempfile.tif: "  # the name Pillow gives libtiff for every file

# Python's warnings machinery is one per process, and `warnings.catch_warnings` is not safe
# when threads decode images at once (predict decodes in a thread pool): each thread's
# block would swap the global filters and collector under the others, and a warning could
# be attached to another thread's file. Instead one hook, put in place once, hands each
# warning to the list of the thread that caused it; threads that are not collecting pass
# it on unchanged. Descriptor 2 is one per process too: the TIFF capture takes a lock.
_local = threading.local()
_hook_lock = threading.Lock()
_fd2_lock = threading.Lock()
_FROM = r"PIL|cnncli\.images"  # Pillow's warnings, and those Pillow says at our call
_ALWAYS_PIL = ("always", None, Warning, _FROM)  # every one, for every file
_BOMB_ERROR = ("error", None, Image.DecompressionBombWarning, None)  # refused, not warned


def is_tiff(head: bytes) -> bool:
    """Whether a file's first bytes are a TIFF's (whatever its extension says)."""
    return head[:4] in TIFF_MAGIC


def _show(message, category, filename, lineno, file=None, line=None):
    said = getattr(_local, "said", None)
    if said is not None and not issubclass(category, ResourceWarning):  # not the garbage
        # collector's word on some other file, which it may say in any thread at any time
        said.append(_one_line(str(message)))
        return
    _previous_show(message, category, filename, lineno, file, line)


_previous_show = warnings.showwarning


def _ensure_hook() -> None:
    """The collecting hook and the two filters in place (again, after a caller's
    `catch_warnings` block, a test runner's among them, restored what it saved)."""
    global _previous_show
    with _hook_lock:
        if warnings.showwarning is not _show:
            _previous_show = warnings.showwarning
            warnings.showwarning = _show
        first = [
            (a, m and m.pattern, c, mod and mod.pattern) for a, m, c, mod, _ in warnings.filters[:2]
        ]
        if first != [_BOMB_ERROR, _ALWAYS_PIL]:
            warnings.filterwarnings("always", module=_FROM)
            warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def refuse_bombs() -> None:
    """Pillow's DecompressionBombWarning raised as an error in every thread (the filter
    is global: set it once, instead of a `catch_warnings` block per image)."""
    _ensure_hook()


@contextmanager
def image_warnings(capture_stderr: bool = False) -> Iterator[list[str]]:
    """Collect, into the yielded list, each warning Pillow gives in this thread while the
    block runs (and, with `capture_stderr`, each line written to file descriptor 2), as
    one-line messages. Errors the block raises pass through untouched. Safe to use from
    several threads at once."""
    _ensure_hook()
    said: list[str] = []
    outer = getattr(_local, "said", None)
    _local.said = said
    try:
        if capture_stderr:
            with _fd2_lock, _stderr_lines(said):
                yield said
        else:
            yield said
    finally:
        _local.said = outer


def _one_line(text: str) -> str:
    return " ".join(text.split()).rstrip(".")


@contextmanager
def _stderr_lines(said: list[str]) -> Iterator[None]:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
        sink = _anonymous_file()
        os.dup2(sink, 2)
    except OSError:  # no descriptor 2 to borrow (a closed stderr): nothing to catch
        yield
        return
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.lseek(sink, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(sink, 1 << 16):
            chunks.append(chunk)
        os.close(sink)
        for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
            if "\x1b" in line or "\r" in line:  # someone else's terminal output
                os.write(2, (line + "\n").encode("utf-8"))
            elif line.strip():
                text = line.strip()
                text = text.removeprefix(PILLOW_TIFF_NAME).replace(PILLOW_TIFF_NAME, "")
                said.append("libtiff: " + _one_line(text))


def _anonymous_file() -> int:
    """A file descriptor of a file with no name: nothing is left behind if the process
    is killed while it is open."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("cnncli-stderr")
    import tempfile  # pragma: no cover - macOS, Windows

    return os.dup(tempfile.TemporaryFile().fileno())  # pragma: no cover
