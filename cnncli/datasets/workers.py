"""The conversion workers of `build_dataset`: open, check and convert each image, encode its
record and hash its source, in threads or in a spawn-safe process pool that imports no
TensorFlow.

Each image is decoded once (cnncli.images.open_image checks it fully as it decodes), so
checking costs no second pass. Results come back in the order the tasks went in, with a
bounded number in flight, so memory stays flat however many images there are.

Threads or processes (`pool_plan`): Pillow releases the GIL while it decodes, converts and
resizes, and hashlib while it hashes, which is most of a record's time (profiled with
cProfile on 500x500 RGBA PNGs: about 87%), so threads convert in parallel with no start-up
at all, where a process pool spends about 0.3 s of wall time and 0.6 s of CPU starting two
workers (Python, NumPy and Pillow imported again in each) before its first record: the
fixed cost that made a 120-image build slower than a plain loop. Processes are kept for
large builds on many cores, where the part of the work that holds the GIL would limit
threads.

A record is made in two stages, `decode_record` (read, hash, decode and check: about two
thirds of its time) and `finish_record` (convert, resize, encode, frame). With one worker
thread the worker decodes and the main thread finishes each record and writes it, so the
two overlap: `bench/bench_dataset.py` measured 1.11x a plain Pillow loop at 120 façade-size
images and 1.22x at 1,200, where one thread doing both stages was 0.86-1.0x. With more
workers each worker does both stages (`convert_record`): there the main thread would
become the bottleneck, and a process pool cannot hand decoded images back cheaply.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor
from contextlib import closing

import numpy as np

from cnncli.datasets.tfrecord import encode_example, frame, framed_size, label_features
from cnncli.errors import ImageError
from cnncli.images import Conversions, ImageSpec, convert_image, open_image, unreadable_reason
from cnncli.images.decoder_warnings import image_warnings, is_tiff

PNG_COMPRESS_LEVEL = 1  # measured: level 6 is 2.2x slower to write for 9% smaller files
# Processes only for builds this large and this many workers (see the module docstring);
# below, threads. 100 M source pixels: 400 images of 500x500, about 10 s of conversion on
# one core, where starting the pool costs under 5%.
POOL_MIN_PIXELS = 100_000_000
POOL_MIN_WORKERS = 4


def convert_record(task: tuple) -> tuple:
    """(path, spec dict, encoding, index, label, name) -> ('ok', record, sha256, what the
    conversion changed, what the decoder said) or ('bad', reason, sha256, None, what the
    decoder said): the image opened and checked fully (one decode), converted to the spec
    and framed as one TFRecord. The decoder's warnings (cnncli.images.decoder_warnings) are caught
    so that they can be attached to the file instead of reaching stderr without its name."""
    return finish_record(decode_record(task))


def decode_record(task: tuple) -> tuple:
    """The first stage of convert_record: the source hashed, opened and decoded in full
    (which checks it) -> ('decoded', the task, the opened image, sha256, what the decoder
    said), or the ('bad', ...) result of convert_record."""
    path = task[0]
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            sha = hashlib.sha256(head + f.read()).hexdigest()
    except OSError as e:
        return ("bad", unreadable_reason(e), "", None, [])
    said: list[str] = []
    try:
        with image_warnings(capture_stderr=is_tiff(head)) as said:
            img = open_image(path)
    except ImageError as e:
        return ("bad", e.reason, sha, None, said)
    return ("decoded", task, img, sha, said)


def finish_record(decoded: tuple) -> tuple:
    """The second stage of convert_record: a decode_record result converted to the spec,
    encoded and framed -> convert_record's result."""
    if decoded[0] != "decoded":
        return decoded
    _, (_, spec_d, encoding, index, label, name), img, sha, said = decoded
    changed = Conversions()
    try:
        with image_warnings() as more:  # Pillow warns in convert() too (palette transparency)
            arr = convert_image(img, ImageSpec.from_dict(spec_d), changed)
    except ImageError as e:
        return ("bad", e.reason, sha, None, [*said, *more])
    finally:
        img.close()
    data = encode_pixels(arr, encoding)
    record = frame(encode_example({"image": data, **record_fields(index, name, label)}))
    return ("ok", record, sha, changed, [*said, *more])


def record_fields(index: int, name: str, label: int | list) -> dict:
    """A record's features other than its pixels (docs/FORMAT.md)."""
    return {"index": index, "path": name, **label_features(label)}


def raw_record_size(spec: ImageSpec, index: int, name: str, label: int | list) -> int:
    """The bytes a 'raw' record of this row takes in its shard, known before decoding."""
    return framed_size(record_fields(index, name, label), "image", int(np.prod(spec.shape)))


def converted_records(tasks: Iterable, pool: tuple[str, int]) -> Generator:
    """convert_record over tasks, in order, in `pool` (pool_plan's ('threads' or
    'processes', how many)): with one worker thread, the worker decodes and this thread
    finishes each record (see the module docstring). Close the iterator
    (contextlib.closing) to stop the pool at once on an error or Ctrl-C."""
    kind, n = pool
    if kind == "threads" and n == 1:  # decoded images at full size: four in flight, no more
        with closing(ordered_thread_map(decode_record, tasks, 1, chunksize=2, ahead=4)) as done:
            yield from map(finish_record, done)
        return
    with closing(ordered_map(convert_record, tasks, n, kind=kind)) as results:
        yield from results


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


def pool_plan(workers: int | None, source_pixels: int) -> tuple[str, int]:
    """('threads' or 'processes', how many) for a build: the given number of workers
    (default: every core), as processes only for large builds on many cores."""
    n = workers or default_workers()
    if n >= POOL_MIN_WORKERS and source_pixels >= POOL_MIN_PIXELS:
        return "processes", n
    return "threads", n


def describe_pool(pool: tuple[str, int]) -> str:
    """('threads', 2) -> '2 worker threads'; ('processes', 1) -> '1 worker process'."""
    kind, n = pool
    noun = "thread" if kind == "threads" else "process"
    return f"{n} worker {noun}{('s' if kind == 'threads' else 'es') * (n != 1)}"


def ordered_map(
    fn: Callable, items: Iterable, workers: int, chunksize: int = 4, kind: str = "processes"
) -> Generator:
    """fn (a module-level function) over items, results in order: in `workers` threads
    (kind 'threads', ordered_thread_map) or in a spawn-safe process pool with at most 2
    chunks per worker in flight. Close the iterator (contextlib.closing) to stop the pool
    at once on an error or Ctrl-C."""
    if kind == "threads":
        yield from ordered_thread_map(fn, items, workers, chunksize, ahead=4 * workers * chunksize)
        return
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
    try:
        yield from in_order(pool, fn, items, chunksize, 2 * workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def in_order(
    pool: Executor, fn: Callable, items: Iterable, chunksize: int, chunks: int
) -> Iterator:
    """fn over items through an executor, in chunks, results in order, at most `chunks`
    chunks in flight; the chunks not started are cancelled when the iterator is closed."""
    pending: deque = deque()
    it = iter(items)
    try:
        while True:
            while len(pending) < chunks:
                chunk = [t for _, t in zip(range(chunksize), it, strict=False)]
                if not chunk:
                    break
                pending.append(pool.submit(_run_chunk, fn, chunk))
            if not pending:
                return
            yield from pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _run_chunk(fn: Callable, chunk: list) -> list:
    return [fn(t) for t in chunk]


def ordered_thread_map(
    fn: Callable, items: Iterable, threads: int, chunksize: int = 8, ahead: int = 64
) -> Generator:
    """fn over items in a pool of threads, results in order, at most about `ahead` items
    in flight (memory stays flat). For work that releases the GIL (Pillow decoding a file,
    NumPy on large arrays): no process start-up, nothing pickled. The consumer does its own
    work (a model's forward pass, writing records) while the threads go on, so one thread
    is worth having too. Close the iterator (contextlib.closing) to stop at once; the items
    not started are dropped."""
    from concurrent.futures import ThreadPoolExecutor

    chunks = max(-(-ahead // chunksize), 2 * threads)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cnncli-decode") as pool:
        yield from in_order(pool, fn, items, chunksize, chunks)


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
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), daemon=True, name="cnncli-parent-watchdog"
    ).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    os._exit(1)
