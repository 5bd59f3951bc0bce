"""The conversion worker pool of `dataset build` (cnncli.datasets.workers): its processes die
with their parent, even when the parent is killed with -9 in the middle of a build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")

# a real build with 2 workers (the pool's size threshold lowered for tiny images)
_BUILD = """
import sys
import cnncli.datasets.workers as workers
workers.POOL_MIN_PIXELS = 0
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


@pytest.mark.parametrize("written", [1, 400_000])
def test_workers_and_the_resource_tracker_die_with_a_killed_build(images, tmp_path, written):
    """kill -9 of a build once its shards hold `written` bytes (the workers busy): both
    workers and the multiprocessing resource tracker are gone within seconds (they used
    to stay, with parent 1, for over 70 s)."""
    out = tmp_path / "ds"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", _BUILD, str(images), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
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
