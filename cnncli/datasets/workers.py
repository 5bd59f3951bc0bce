"""The conversion workers of `build_dataset`: open, check and convert each image, encode its
record and hash its source, in a spawn-safe process pool that imports no TensorFlow.

Each image is decoded once (cnncli.images.open_image checks it fully as it decodes), so
checking costs no second pass. Results come back in the order the tasks went in, with at
most two chunks per worker in flight, so memory stays flat however many images there are.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from cnncli.datasets.tfrecord import encode_example, frame
from cnncli.errors import ImageError
from cnncli.images import Conversions, ImageSpec, convert_image, open_image, unreadable_reason
from cnncli.images.decoder_warnings import image_warnings, is_tiff

PNG_COMPRESS_LEVEL = 1  # measured: level 6 is 2.2x slower to write for 9% smaller files
# Below this many pixels in total, starting worker processes costs more than it saves
# (measured: spawning 2 workers takes about 0.3 s of wall time and 0.6 s of CPU; one
# 500x500 RGBA PNG takes about 20 ms to check and convert, so the pool wins from ~30 such).
POOL_MIN_PIXELS = 8_000_000


def convert_record(task: tuple) -> tuple:
    """(path, spec dict, encoding, index, label, name) -> ('ok', record, sha256, what the
    conversion changed, what the decoder said) or ('bad', reason, sha256, None, what the
    decoder said): the image opened and checked fully (one decode), converted to the spec
    and framed as one TFRecord. The decoder's warnings (cnncli.images.decoder_warnings) are caught
    so that they can be attached to the file instead of reaching stderr without its name."""
    path, spec_d, encoding, index, label, name = task
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            sha = hashlib.sha256(head + f.read()).hexdigest()
    except OSError as e:
        return ("bad", unreadable_reason(e), "", None, [])
    changed = Conversions()
    said: list[str] = []
    try:
        with image_warnings(capture_stderr=is_tiff(head)) as said:
            arr = convert_image(open_image(path), ImageSpec.from_dict(spec_d), changed)
    except ImageError as e:
        return ("bad", e.reason, sha, None, said)
    data = encode_pixels(arr, encoding)
    record = frame(encode_example({"image": data, "label": label, "index": index, "path": name}))
    return ("ok", record, sha, changed, said)


def encode_pixels(arr: np.ndarray, encoding: str) -> bytes:
    """An H x W x C uint8 array as a record stores it: 'raw' bytes or a 'png' file."""
    if encoding == "raw":
        return np.ascontiguousarray(arr).tobytes()
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buf.getvalue()


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def pool_size(workers: int | None, source_pixels: int) -> int:
    """Worker processes for a build: the given number (default: every core), or one when
    the sources are too small for a pool to pay for its start-up."""
    if source_pixels < POOL_MIN_PIXELS:  # decoding the sources is most of the work
        return 1
    return workers or default_workers()


def ordered_map(fn: Callable, items: Iterable, workers: int, chunksize: int = 4) -> Iterator:
    """fn (a module-level function) over items, results in order, in a spawn-safe process
    pool with at most 2 chunks per worker in flight. Close the iterator (contextlib.closing)
    to stop the pool at once on an error or Ctrl-C."""
    if workers <= 1:
        yield from map(fn, items)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker_start,
        initargs=(os.getpid(),),
    )
    pending: deque = deque()
    it = iter(items)
    try:
        while True:
            while len(pending) < 2 * workers:
                chunk = [t for _, t in zip(range(chunksize), it, strict=False)]
                if not chunk:
                    break
                pending.append(pool.submit(_run_chunk, fn, chunk))
            if not pending:
                return
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_chunk(fn: Callable, chunk: list) -> list:
    return [fn(t) for t in chunk]


PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_SECONDS = 0.5


def worker_start(parent_pid: int) -> None:
    """The pool's initializer: a worker ignores Ctrl-C (the parent's to handle) and dies
    with its parent, even when the parent is killed with -9 and cannot shut the pool down
    (its workers would otherwise wait on their task queue for ever, and keep the
    multiprocessing resource tracker alive too: it exits once the last worker is gone).
    On Linux the kernel kills the worker (PR_SET_PDEATHSIG); everywhere a watchdog thread
    ends it within WATCH_SECONDS of finding itself re-parented."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog does it
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="cnncli-parent-watchdog").start()  # fmt: skip


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    os._exit(1)
