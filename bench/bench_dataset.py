"""Benchmark `cnncli dataset build` (issue 2 §5).

(a) images per second of build_dataset (default: threads, or processes for large builds on
    many cores; also with --workers 1, and with a process pool forced) against a plain
    single-process Pillow loop doing the same work (open, convert, resize, encode, write)
    on the same folder of 500x500 RGBA PNGs, interleaved in one run, at 120 and 1,200
    images (quick: 120 and 400), and the ratios (issue 18: >= 1.6x on 2 cores at 1,200,
    >= 1.0x at 120, --workers 1 >= 1.0x);
(b) peak RSS of builds of 1,000 and 4,000 500x500 RGBA images (each build in a child
    process; main process and worker processes reported apart): it must not grow with
    the count;
(c) raw against PNG-encoded records (the --record-format choice): build time, dataset size
    and tf.data read + decode rate, on 500x500x4 and on 28x28x1 images.

    python bench/bench_dataset.py [--quick] [--no-memory] [--no-formats] [--repeats N]
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
from functools import partial
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


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of fn()."""
    c0, t0 = os.times(), time.perf_counter()
    fn()
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    cpu += (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return wall, cpu


def bench_speed(tmp: Path, n: int, repeats: int = 2) -> dict:
    """Loop and build interleaved `repeats` times (the machine is shared); best of each."""
    from cnncli.datasets.build import build_dataset

    folder = make_folder(tmp / "speed", n, distinct=min(n, 60))
    for p in folder.rglob("*.png"):  # warm the page cache for both sides
        p.read_bytes()
    size = f"{TARGET[0]}x{TARGET[1]}"
    runs: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("loop", "build", "build1", "procs")
    }

    def build(workers, processes=False):
        from cnncli.datasets import workers as pool

        shutil.rmtree(tmp / "ds", ignore_errors=True)
        saved = pool.POOL_MIN_PIXELS, pool.POOL_MIN_WORKERS
        if processes:  # the process pool, forced (what builds used before issue 18)
            pool.POOL_MIN_PIXELS, pool.POOL_MIN_WORKERS = 0, 1
        try:
            build_dataset(folder, tmp / "ds", size=size, val=0.2, workers=workers)
        finally:
            pool.POOL_MIN_PIXELS, pool.POOL_MIN_WORKERS = saved

    for _ in range(repeats):
        runs["loop"].append(_timed(lambda: pillow_loop(folder, tmp / "loop.bin")))
        runs["build"].append(_timed(lambda: build(None)))
        runs["build1"].append(_timed(lambda: build(1)))
        runs["procs"].append(_timed(lambda: build(None, processes=True)))
    best = {k: min(v) for k, v in runs.items()}
    shutil.rmtree(folder)
    return {
        "images": n,
        "ips": {k: n / v[0] for k, v in best.items()},
        "ratio": {k: best["loop"][0] / v[0] for k, v in best.items()},
        "cpu_ms_per_image": {k: 1000 * v[1] / n for k, v in best.items()},
        "cores_used_by_build": best["build"][1] / best["build"][0],
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


def make_digits(root: Path, n: int, seed: int = 0) -> Path:
    """n 28x28 grayscale PNGs in two class folders (strokes on black, like MNIST)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = np.zeros((28, 28), np.uint8)
        r, c = rng.integers(4, 20, 2)
        arr[r : r + 8, c : c + 3] = rng.integers(128, 256)
        arr[r : r + 3, c : c + 8] = rng.integers(128, 256)
        cls = root / f"d{i % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, "L").save(cls / f"{i:05d}.png")
    return root


def tf_read_rate(info) -> float:
    """Images per second of a tf.data pipeline reading and decoding a split (2nd pass)."""
    import tensorflow as tf

    spec, shape = info.image, info.image.shape
    feats = {"image": tf.io.FixedLenFeature([], tf.string)}

    def parse(x):
        ex = tf.io.parse_single_example(x, feats)
        if info.encoding == "raw":
            return tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), shape)
        return tf.io.decode_png(ex["image"], channels=spec.channels)

    files = [str(p) for p in info.shard_paths("train")]
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=len(files))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(2)
    for _ in ds:  # first pass warms the page cache
        pass
    rates = []
    for _ in range(3):  # best of 3 passes: the machine is shared
        t, n = time.perf_counter(), 0
        for batch in ds:
            n += int(batch.shape[0])
        rates.append(n / (time.perf_counter() - t))
    return max(rates)


def bench_formats(tmp: Path, n_big: int, n_small: int) -> list[dict]:
    from cnncli.cli.tf_load import prepare
    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset

    prepare(False)  # before TensorFlow loads
    rows = []
    sets = [
        ("500x500x4", make_folder(tmp / "fbig", n_big)),
        ("28x28x1", make_digits(tmp / "fsmall", n_small)),
    ]
    for label, folder in sets:
        n = sum(1 for _ in folder.rglob("*.png"))
        for fmt in ("raw", "png"):
            out = tmp / f"f-{label}-{fmt}"
            run = partial(build_dataset, folder, out, val=0.0, record_format=fmt)
            wall, _ = _timed(run)
            info = open_dataset(out)
            size = sum(p.stat().st_size for p in info.shard_paths("train"))
            rows.append(
                {
                    "images": label,
                    "n": n,
                    "format": fmt,
                    "build_ips": n / wall,
                    "kb_per_image": size / n / 1024,
                    "read_ips": tf_read_rate(info),
                }
            )
            shutil.rmtree(out)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images")
    ap.add_argument("--no-formats", action="store_true", help="skip (c), the record formats")
    ap.add_argument("--no-memory", action="store_true", help="skip (b), the peak memory")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats in (a), best kept")
    args = ap.parse_args()
    sizes = [120, 400] if args.quick else [120, 1200]
    counts = [200, 800] if args.quick else [1000, 4000]
    print(
        f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f} "
        "(shared machine: figures are noisy)"
    )
    with tempfile.TemporaryDirectory(prefix="cnncli-bench-") as d:
        tmp = Path(d)
        names = {
            "loop": "plain Pillow loop (1 process)",
            "build": "cnncli build (default)",
            "build1": "cnncli build --workers 1",
            "procs": "cnncli build, process pool",
        }
        for n in sizes:
            s = bench_speed(tmp, n, args.repeats)
            cpu = s["cpu_ms_per_image"]
            print(
                f"(a) {n} PNGs 500x500 RGBA -> {TARGET[0]}x{TARGET[1]} RGBA records "
                f"(best of {args.repeats}, interleaved)"
            )
            for k, label in names.items():
                print(
                    f"    {label:32} {s['ips'][k]:7.1f} images/s  {cpu[k]:6.1f} ms CPU/image"
                    f"  ratio to the loop {s['ratio'][k]:.2f}x"
                )
            print(f"    the default build kept {s['cores_used_by_build']:.2f} cores busy")
        if args.no_memory:
            return
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
        if args.no_formats:
            return
        fmts = bench_formats(tmp, 40 if args.quick else 200, 2000 if args.quick else 10000)
        print("(c) record format: build_dataset (whole build), size, tf.data read + decode")
        for r in fmts:
            print(
                f"    {r['images']:>10} x{r['n']:<6d} {r['format']:4s}: build {r['build_ips']:8.1f}"
                f" images/s, {r['kb_per_image']:8.1f} kB/image, read {r['read_ips']:9.1f} images/s"
            )


if __name__ == "__main__":
    main()
