"""The conversion workers of `dataset build` (cnncli.datasets.workers): small builds start no
process (threads, no start-up cost), threads, processes and one worker write the same bytes,
results come in order with a bounded number in flight, and pool processes die with their
parent, even when the parent is killed with -9 in the middle of a build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# a real build with 2 worker processes (the pool's thresholds lowered for tiny images)
_BUILD = """
import sys
import cnncli.datasets.workers as workers
workers.POOL_MIN_PIXELS = 0
workers.POOL_MIN_WORKERS = 2
from cnncli.datasets.build import build_dataset
build_dataset(sys.argv[1], sys.argv[2], workers=2)
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory, write_image):
    root = tmp_path_factory.mktemp("pool") / "images"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(200):
            write_image(root / c / f"{i}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return root


def _stat(pid: int) -> list[str] | None:
    """(state, ppid, ...) of a process from /proc, None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> set[int]:
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (st := _stat(int(p.name))) is not None and int(st[1]) == pid:
            out.add(int(p.name))
    return out


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"  # a zombie has ended, waiting to be reaped


def _wait(condition, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_small_build_starts_no_process_and_says_threads(tmp_path, write_image, monkeypatch):
    import multiprocessing
    import threading

    from cnncli.datasets.build import build_dataset

    def no_processes(*args, **kwargs):
        raise AssertionError("a small build started a process pool")

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", no_processes)
    rng = np.random.default_rng(1)
    for i in range(12):
        write_image(
            tmp_path / "in" / "ab"[i % 2] / f"{i}.png",
            rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        )
    seen = []

    def progress(done, total):
        seen.append((len(multiprocessing.active_children()), threading.active_count()))

    result = build_dataset(tmp_path / "in", tmp_path / "ds", workers=2, val=0.0, progress=progress)
    assert "records: raw pixels, 1 shard (2 worker threads)" in result.notes
    assert all(children == 0 for children, _ in seen)
    assert max(threads for _, threads in seen) >= 3  # the main thread and two converting
    one = build_dataset(tmp_path / "in", tmp_path / "one", workers=1, val=0.0)
    assert "records: raw pixels, 1 shard (1 worker thread)" in one.notes


def test_threads_processes_and_one_worker_write_the_same_bytes(images, tmp_path, monkeypatch):
    from cnncli.datasets import workers
    from cnncli.datasets.build import build_dataset

    small = images.parent / "small"
    if not small.exists():
        for c in ("a", "b"):
            (small / c).mkdir(parents=True)
            for p in sorted((images / c).glob("*.png"))[:10]:
                (small / c / p.name).write_bytes(p.read_bytes())
    one = build_dataset(small, tmp_path / "one", workers=1, shard_size="40KB", val=0.25)
    two = build_dataset(small, tmp_path / "threads", workers=2, shard_size="40KB", val=0.25)
    monkeypatch.setattr(workers, "POOL_MIN_PIXELS", 0)
    monkeypatch.setattr(workers, "POOL_MIN_WORKERS", 2)
    procs = build_dataset(small, tmp_path / "procs", workers=2, shard_size="40KB", val=0.25)
    assert "2 worker threads" in two.notes[-1] and "2 worker processes" in procs.notes[-1]
    assert "1 worker thread" in one.notes[-1]
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len([n for n in names if n.startswith("train-")]) > 1
    for other in ("threads", "procs"):
        assert sorted(p.name for p in (tmp_path / other).iterdir()) == names
        for n in names:
            assert (tmp_path / other / n).read_bytes() == (tmp_path / "one" / n).read_bytes()


def test_one_worker_decodes_while_the_main_thread_finishes(tmp_path, write_image, monkeypatch):
    """--workers 1: the worker thread decodes, the main thread converts, frames and writes
    (the two overlap); a bad file is still a problem named with its reason."""
    import threading

    from cnncli.datasets import workers
    from cnncli.datasets.build import build_dataset

    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        for i in range(6):
            write_image(
                tmp_path / "in" / c / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            )
    good = (tmp_path / "in" / "a" / "0.png").read_bytes()
    (tmp_path / "in" / "a" / "cut.png").write_bytes(good[: len(good) // 2])
    seen: dict[str, set] = {"decode": set(), "finish": set()}
    decode, finish = workers.decode_record, workers.finish_record

    def spy(stage, fn):
        def run(x):
            seen[stage].add(threading.current_thread().name)
            return fn(x)

        return run

    monkeypatch.setattr(workers, "decode_record", spy("decode", decode))
    monkeypatch.setattr(workers, "finish_record", spy("finish", finish))
    result = build_dataset(tmp_path / "in", tmp_path / "ds", workers=1, val=0.0, skip_bad=True)
    assert seen["finish"] == {threading.current_thread().name}
    assert seen["decode"] and all(n.startswith("cnncli-decode") for n in seen["decode"])
    assert [name for name, _ in result.skipped] == ["a/cut.png"]
    assert "truncated" in result.skipped[0][1], result.skipped
    assert sum(result.counts["train"].values()) == 12


def test_pool_plan_threads_unless_large_and_many_cores():
    from cnncli.datasets.workers import pool_plan

    assert pool_plan(1, 10**12) == ("threads", 1)
    assert pool_plan(2, 10**12) == ("threads", 2)  # two cores: threads at any size
    assert pool_plan(8, 120 * 500 * 500) == ("threads", 8)  # small: no start-up cost
    assert pool_plan(8, 10**9) == ("processes", 8)
    assert pool_plan(None, 10)[0] == "threads"


def test_thread_map_keeps_order_and_a_bounded_number_in_flight():
    import time

    from cnncli.datasets.workers import ordered_thread_map

    pulled = []

    def items():
        for i in range(200):
            pulled.append(i)
            yield i

    def slow_square(i):
        time.sleep(0.0005 * (i % 3))  # out of order finishes
        return i * i

    out = []
    for value in ordered_thread_map(slow_square, items(), threads=3, chunksize=4, ahead=16):
        out.append(value)
        assert len(pulled) - len(out) <= 32  # never the whole input read ahead
    assert out == [i * i for i in range(200)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("written", [1, 400_000])
def test_workers_and_the_resource_tracker_die_with_a_killed_build(images, tmp_path, written):
    """kill -9 of a build once its shards hold `written` bytes (the workers busy): both
    workers and the multiprocessing resource tracker are gone within seconds (they used
    to stay, with parent 1, for over 70 s)."""
    out = tmp_path / "ds"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(images), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kids: set[int] = set()

    def busy() -> bool:
        kids.update(_children(proc.pid))
        parts = list(tmp_path.glob(".ds.partial-*/*.part"))
        return len(kids) >= 3 and sum(p.stat().st_size for p in parts) >= written

    try:
        assert _wait(busy, 60), "the build never got going"
        assert proc.poll() is None and not out.exists(), "the build ended before the kill"
        proc.kill()
        proc.wait(timeout=10)
        left = lambda: [k for k in kids if _alive(k)]  # noqa: E731
        assert _wait(lambda: not left(), 10), f"still alive 10 s after kill -9: {left()}"
    finally:
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
