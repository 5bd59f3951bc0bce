"""Benchmark cnncli's training input and cluster (issue 4 §4, issue 7 §2), in one run.

(1) Reading the dataset alone: images per second over 3 epochs of cnncli's tf.data pipeline
    against keras.utils.image_dataset_from_directory on the same images in class folders
    (as used, and with .cache()), for 28x28x1 and 500x500x4 images. Goal: at least as fast.
(2) Multi-worker (issue 7 §2): `cnncli train --arch mnist` as two worker processes on
    127.0.0.1 (MultiWorkerMirroredStrategy, each reading its own shard files, batch B/2 per
    worker) against one process (batch B), the same global batch: samples per second from
    epoch 2 on, from the chief's --json-log. On one machine the two workers share its cores,
    so this measures what the cluster machinery costs, not a speed-up.

Training speed against the hand-written notebook is bench_train.py.

    python bench/bench_train_io.py [--quick] [--only read|multi-worker]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cnncli

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

EPOCHS = 3


def make_images(root: Path, n: int, side: int, mode: str, classes: int, seed=0) -> Path:
    """n synthetic images in class folders (a class-dependent pattern plus noise)."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGBA": 4}[mode]
    distinct = min(n, 64 if side > 100 else n)
    made = []
    for i in range(n):
        c = i % classes
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{i:05d}.png"
        if i < distinct:
            arr = rng.integers(0, 100, (side, side, channels), dtype=np.uint8)
            arr[(c * side) // classes : ((c + 1) * side) // classes] += 120
            if channels == 4:
                arr[..., 3] = 255
            img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)
            img.save(path, compress_level=1)
            made.append(path)
        else:
            shutil.copyfile(made[i % distinct], path)
    return root


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("nan")


def images_per_second(ds) -> float:
    """Images per second of EPOCHS passes over a batched dataset."""
    t0 = time.perf_counter()
    n = 0
    for _ in range(EPOCHS):
        for x, _y in ds:
            n += int(x.shape[0])
    return rate(n, time.perf_counter() - t0)


def read_cnncli(dataset: Path, batch: int) -> float:
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    info = open_dataset(dataset)
    ds = make_tf_dataset(info, "train", batch_size=batch, shuffle=True, seed=0)
    return images_per_second(ds)


def read_keras(images: Path, case, batch: int, cache: bool) -> float:
    import keras

    ds = keras.utils.image_dataset_from_directory(
        images,
        image_size=(case["side"], case["side"]),
        batch_size=batch,
        color_mode={1: "grayscale", 4: "rgba"}[case["channels"]],
        shuffle=True,
        seed=0,
        verbose=False,
    )
    if cache:
        ds = ds.cache()
    return images_per_second(ds)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cli_train(dataset: Path, run_dir: Path, batch: int, workers: int) -> dict:
    """`cnncli train --arch mnist` in `workers` processes; the chief's per-epoch seconds and
    the wall time of the whole command."""
    cluster = ",".join(f"127.0.0.1:{p}" for p in _free_ports(workers))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    cmds = []
    for i in range(workers):
        cmd = [
            sys.executable,
            "-m",
            "cnncli",
            "train",
            str(dataset),
            "--arch",
            "mnist",
            "-o",
            str(run_dir),
            "--overwrite",
            "--epochs",
            str(EPOCHS),
            "--batch-size",
            str(batch),
            "--json-log",
            "--quiet",
        ]
        if workers > 1:
            cmd += ["--workers", cluster, "--worker-index", str(i)]
        cmds.append(cmd)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for c in cmds
    ]
    outs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"cnncli train failed ({p.returncode}):\n{err[-2000:]}")
    lines = [json.loads(line) for line in outs[0][0].splitlines() if line.startswith("{")]
    return {
        "epochs": [d["seconds"] for d in lines],
        "wall": wall,
        "val_accuracy": lines[-1].get("val_accuracy"),
    }


def multi_worker(tmp: Path, quick: bool, rounds: int) -> None:
    from cnncli.datasets.build import build_dataset

    n, batch = (2000, 64) if quick else (12000, 64)
    images = make_images(tmp / "mw" / "images", n, 28, "L", 10)
    ds = tmp / "mw" / "ds"
    build_dataset(images, ds, val=0.1, shard_size=max(1, n // 8))  # 8 train shards
    results = []
    for r in range(rounds):
        one = cli_train(ds, tmp / "mw" / f"one{r}", batch, 1)
        two = cli_train(ds, tmp / "mw" / f"two{r}", batch // 2, 2)
        results.append((one, two))
    train_n = int(n * 0.9)
    print(
        f"\n(2) multi-worker: mnist on {n} 28x28x1 images ({train_n} train), global batch "
        f"{batch}, {EPOCHS} epochs, rounds {rounds}"
    )
    print(f"{'':30} {'samples/s ep2+':>15} {'command wall s':>15} {'val_accuracy':>13}")
    med = statistics.median
    for label, k in (("one process (batch 64)", 0), ("two workers (32 each)", 1)):
        rates = [rate(train_n * (EPOCHS - 1), sum(x[k]["epochs"][1:])) for x in results]
        walls = [x[k]["wall"] for x in results]
        acc = results[-1][k]["val_accuracy"]
        print(f"{label:30} {med(rates):>15.0f} {med(walls):>15.1f} {acc:>13.3f}")
    ratios = [rate(1, sum(t["epochs"][1:])) / rate(1, sum(o["epochs"][1:])) for o, t in results]
    print(
        f"ratio two workers / one process (samples/s from epoch 2): {med(ratios):.2f} "
        f"(rounds: {' '.join(f'{x:.2f}' for x in ratios)})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images")
    ap.add_argument("--only", choices=["read", "multi-worker"], help="one part only")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_io-"))
    print(f"cores: {os.cpu_count()} (shared with other work: figures are noisy)")
    try:
        if args.only != "multi-worker":
            read_speed(tmp, args.quick)
        if args.only != "read":
            multi_worker(tmp, args.quick, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_speed(tmp: Path, quick: bool) -> None:
    from cnncli.datasets.build import build_dataset

    cases = [
        {
            "name": "mnist 28x28x1",
            "side": 28,
            "channels": 1,
            "mode": "L",
            "classes": 10,
            "batch": 64,
            "n": 2000 if quick else 12000,
        },
        {
            "name": "facade 500x500x4",
            "side": 500,
            "channels": 4,
            "mode": "RGBA",
            "classes": 2,
            "batch": 8,
            "n": 24 if quick else 96,
        },
    ]
    print("\n(1) reading the dataset alone, images/s over 3 epochs")
    print(
        f"{'case':18} {'cnncli tf.data':>15} {'keras idfd':>11} {'ratio':>6} "
        f"{'idfd+cache':>11} {'ratio':>6}"
    )
    for i, case in enumerate(cases):
        images = make_images(
            tmp / f"read{i}" / "images", case["n"], case["side"], case["mode"], case["classes"]
        )
        build_dataset(images, tmp / f"read{i}" / "ds", val=0.0)
        r = read_cnncli(tmp / f"read{i}" / "ds", case["batch"])
        k = read_keras(images, case, case["batch"], cache=False)
        kc = read_keras(images, case, case["batch"], cache=True)
        print(f"{case['name']:18} {r:>15.0f} {k:>11.0f} {r / k:>6.2f} {kc:>11.0f} {r / kc:>6.2f}")
    print("goal: ratio >= 1.0")


if __name__ == "__main__":
    main()
