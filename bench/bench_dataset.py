"""Benchmark `cnncli dataset build` (issue 2 §5).

(a) images per second of build_dataset (process pool) against a plain single-process Pillow
    loop doing the same work (open, convert, resize, encode, write) on the same folder of
    500x500 RGBA PNGs, in one run, and the ratio (goal: >= 1.6x on 2 cores);
(b) peak RSS of builds of 1,000 and 4,000 500x500 RGBA images (each build in a child
    process; main process and worker processes reported apart): it must not grow with
    the count.

    python bench/bench_dataset.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 500
TARGET = (256, 256)  # the resize both sides do in (a)


def texture(rng, side=SIDE) -> np.ndarray:
    """A 500x500 RGBA wall-like texture (compresses about as well as a photo)."""
    base = rng.integers(0, 255, (side // 10, side // 10, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(base).resize((side, side), Image.Resampling.BICUBIC))
    noise = rng.integers(-20, 20, (side, side, 3))
    rgb = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    alpha = np.full((side, side, 1), 255, np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def make_folder(root: Path, n: int, distinct: int = 40, seed: int = 0) -> Path:
    """n PNGs in two class folders; `distinct` unique images, the rest hard links."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    originals = []
    for i in range(min(n, distinct)):
        cls = root / f"class{i % 2}"
        cls.mkdir(exist_ok=True)
        p = cls / f"img{i:05d}.png"
        Image.fromarray(texture(rng), "RGBA").save(p, compress_level=1)
        originals.append(p)
    for i in range(len(originals), n):
        p = root / f"class{i % 2}" / f"img{i:05d}.png"
        try:
            os.link(originals[i % len(originals)], p)
        except OSError:
            shutil.copyfile(originals[i % len(originals)], p)
    return root


def pillow_loop(folder: Path, out: Path) -> int:
    """The plain way: one process, open -> convert -> resize -> bytes -> file."""
    n = 0
    with open(out, "wb") as f:
        for cls in sorted(folder.iterdir()):
            for p in sorted(cls.iterdir()):
                with Image.open(p) as img:
                    img = img.convert("RGBA").resize(TARGET[::-1], Image.Resampling.BILINEAR)
                    f.write(np.asarray(img).tobytes())
                n += 1
    return n


def bench_speed(tmp: Path, n: int) -> dict:
    from cnncli.datasets.build import build_dataset

    folder = make_folder(tmp / "speed", n, distinct=min(n, 60))
    # warm the page cache for both sides
    for p in folder.rglob("*.png"):
        p.read_bytes()
    t = time.perf_counter()
    pillow_loop(folder, tmp / "loop.bin")
    loop_s = time.perf_counter() - t
    t = time.perf_counter()
    build_dataset(folder, tmp / "ds", size=f"{TARGET[0]}x{TARGET[1]}", val=0.2)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    build_dataset(folder, tmp / "ds1", size=f"{TARGET[0]}x{TARGET[1]}", val=0.2, workers=1)
    build1_s = time.perf_counter() - t
    shutil.rmtree(tmp / "ds"), shutil.rmtree(tmp / "ds1")
    return {
        "images": n,
        "pillow_loop_ips": n / loop_s,
        "build_ips": n / build_s,
        "build_1_worker_ips": n / build1_s,
        "ratio": loop_s / build_s,
    }


CHILD = """
import json, resource, sys, time
from cnncli.datasets.build import build_dataset
t = time.perf_counter()
build_dataset(sys.argv[1], sys.argv[2], val=0.2)
took = time.perf_counter() - t
print(json.dumps({
    "seconds": took,
    "main_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def bench_memory(tmp: Path, counts: list[int]) -> list[dict]:
    out = []
    for n in counts:
        folder = make_folder(tmp / f"mem{n}", n)
        target = tmp / f"memds{n}"
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder), str(target)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["images"] = n
        row["dataset_mb"] = sum(p.stat().st_size for p in target.iterdir()) / 2**20
        out.append(row)
        shutil.rmtree(target)
        shutil.rmtree(folder)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images")
    args = ap.parse_args()
    n_speed = 120 if args.quick else 400
    counts = [200, 800] if args.quick else [1000, 4000]
    print(f"cores: {len(os.sched_getaffinity(0))} (shared machine: figures are noisy)")
    with tempfile.TemporaryDirectory(prefix="cnncli-bench-") as d:
        tmp = Path(d)
        s = bench_speed(tmp, n_speed)
        print(
            f"(a) {s['images']} PNGs 500x500 RGBA -> {TARGET[0]}x{TARGET[1]} RGBA records\n"
            f"    plain Pillow loop (1 process): {s['pillow_loop_ips']:8.1f} images/s\n"
            f"    cnncli build_dataset (pool):   {s['build_ips']:8.1f} images/s\n"
            f"    cnncli build_dataset workers=1:{s['build_1_worker_ips']:8.1f} images/s\n"
            f"    ratio build / loop: {s['ratio']:.2f}x (goal >= 1.6x on 2 cores)"
        )
        rows = bench_memory(tmp, counts)
        print("(b) peak RSS of a build (500x500 RGBA PNGs kept at size, raw records)")
        for r in rows:
            print(
                f"    {r['images']:5d} images: {r['seconds']:6.1f} s, "
                f"main {r['main_rss_mb']:6.1f} MB,"
                f" largest worker {r['worker_rss_mb']:6.1f} MB, dataset {r['dataset_mb']:7.1f} MB"
            )
        growth = rows[-1]["main_rss_mb"] / rows[0]["main_rss_mb"]
        print(
            f"    main RSS ratio {rows[-1]['images']}/{rows[0]['images']} images: {growth:.2f}x "
            "(flat means ~1.0x)"
        )


if __name__ == "__main__":
    main()
