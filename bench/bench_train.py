"""Benchmark `cnncli train` (issue 4 §4) against hand-written Keras, in one run.

(1) Training speed, for the `mnist` architecture on 28x28x1 images and the `facade`
    architecture on 500x500x4 images: samples per second of cnncli's training (the library
    function cnncli.training.fit.train, as `cnncli train` calls it) against a hand-written
    `model.fit` on the same images preloaded as NumPy arrays (divided by 255), same
    architecture, batch size and epochs. Goal: >= 0.95 of the hand-written speed from the
    second epoch on; the first epoch's extra time (reading the dataset into the cache) is
    stated. cnncli's figure is given for the fit alone and with its per-epoch saving (best,
    last, checkpoint and resume state, history.csv/png, run.json).
(2) Reading the dataset alone: images per second over 3 epochs of cnncli's tf.data pipeline
    against keras.utils.image_dataset_from_directory on the same images in class folders
    (as used, and with .cache()). Goal: at least as fast.
(3) Multi-worker (issue 7 §2): `cnncli train --arch mnist` as two worker processes on
    127.0.0.1 (MultiWorkerMirroredStrategy, each reading its own shard files, batch B/2 per
    worker) against one process (batch B), the same global batch: samples per second from
    epoch 2 on, from the chief's --json-log. On one machine the two workers share its cores,
    so this measures what the cluster machinery costs, not a speed-up.

cnncli turns on TensorFlow's op determinism (for exact resume) for the whole process, so the
hand-written side runs with it too (--no-determinism: neither does). The two sides alternate
in rounds and the median ratio is reported, as the machine is shared and noisy.

    python bench/bench_train.py [--quick] [--only mnist|facade|multi-worker]
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


def architecture(name: str, shape, classes: int):
    """The course's architecture from cnncli's presets (the course's own definition when
    the presets module is not installed)."""
    try:
        from cnncli.models.presets import build_architecture
    except ImportError:
        return _course_architecture(name, shape, classes)
    return build_architecture(name, input_shape=shape, num_classes=classes)


def _course_architecture(name, shape, classes):
    import keras
    from keras import layers as L

    head = [L.Dense(1, activation="sigmoid")] if classes == 2 else [
        L.Dense(classes, activation="softmax")]  # fmt: skip
    if name == "mnist":  # 93,322 parameters (course 001)
        body = [L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
                L.Conv2D(64, 3, activation="relu"), L.Flatten(),
                L.Dense(64, activation="relu")]  # fmt: skip
    else:  # facade (course 000)
        body = []
        for filters, k, pool in ((10, 5, 5), (10, 5, 5), (20, 3, 5), (25, 2, 4)):
            body += [L.Conv2D(filters, k, padding="same"), L.LeakyReLU(), L.MaxPooling2D(pool)]
        body += [L.Flatten(), L.Dense(10, activation="relu"), L.Dropout(0.5)]
    return keras.Sequential([keras.Input(shape), *body, *head], name=name)


def load_arrays(images: Path, side: int, channels: int):
    """The hand-written way: every image into one NumPy array, /255."""
    files = sorted(images.rglob("*.png"))
    x = np.empty((len(files), side, side, channels), np.float32)
    y = np.empty(len(files), np.int32)
    for i, f in enumerate(files):
        arr = np.asarray(Image.open(f))
        x[i] = (arr[..., None] if arr.ndim == 2 else arr) / 255.0
        y[i] = int(f.parent.name[5:])
    return x, y


class EpochTimer:
    def __init__(self):
        import keras

        class CB(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.t0 = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                self.seconds.append(time.perf_counter() - cb.t0)

        self.seconds: list[float] = []
        self.callback = CB()


def keras_baseline(case, images: Path):
    import keras

    t0 = time.perf_counter()
    x, y = load_arrays(images, case["side"], case["channels"])
    load_s = time.perf_counter() - t0
    keras.utils.set_random_seed(0)
    model = architecture(case["arch"], x.shape[1:], case["classes"])
    binary = case["classes"] == 2
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    timer = EpochTimer()
    model.fit(x, y, batch_size=case["batch"], epochs=EPOCHS, shuffle=True, verbose=0,
              callbacks=[timer.callback])  # fmt: skip
    return {"load_s": load_s, "epochs": timer.seconds, "n": len(y)}


def cnncli_train(case, dataset: Path, run_dir: Path, deterministic: bool = True):
    from cnncli.training.callbacks import TrainEvents
    from cnncli.training.fit import TrainOptions, train

    class Events(TrainEvents):
        def __init__(self):
            self.begin, self.end = {}, {}
            self.fit_seconds = []

        def epoch_begin(self, epoch, steps):
            self.begin[epoch] = time.perf_counter()

        def epoch_end(self, report):
            self.end[report.epoch] = time.perf_counter()
            self.fit_seconds.append(report.seconds)

    ev = Events()
    t0 = time.perf_counter()
    options = TrainOptions(
        epochs=EPOCHS, batch_size=case["batch"], seed=0, deterministic=deterministic
    )
    import keras

    keras.utils.set_random_seed(0)
    shape = (case["side"], case["side"], case["channels"])
    model = architecture(case["arch"], shape, case["classes"])
    train(dataset, run_dir, model=model, options=options, overwrite=True, events=ev)
    total = time.perf_counter() - t0
    # wall time of an epoch including its saving: from its start to after its files
    walls = [ev.end[e] - ev.begin[e] for e in sorted(ev.end)]
    return {"epochs": ev.fit_seconds, "walls": walls, "total": total}


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("nan")


def read_cnncli(dataset: Path, batch: int) -> float:
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    info = open_dataset(dataset)
    ds = make_tf_dataset(info, "train", batch_size=batch, shuffle=True, seed=0)
    t0 = time.perf_counter()
    n = 0
    for _ in range(EPOCHS):
        for x, _y in ds:
            n += int(x.shape[0])
    return rate(n, time.perf_counter() - t0)


def read_keras(images: Path, case, batch: int, cache: bool) -> float:
    import keras

    ds = keras.utils.image_dataset_from_directory(
        images, image_size=(case["side"], case["side"]), batch_size=batch,
        color_mode={1: "grayscale", 4: "rgba"}[case["channels"]], shuffle=True, seed=0,
        verbose=False,
    )  # fmt: skip
    if cache:
        ds = ds.cache()
    t0 = time.perf_counter()
    n = 0
    for _ in range(EPOCHS):
        for x, _y in ds:
            n += int(x.shape[0])
    return rate(n, time.perf_counter() - t0)


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
        cmd = [sys.executable, "-m", "cnncli", "train", str(dataset), "--arch", "mnist",
               "-o", str(run_dir), "--overwrite", "--epochs", str(EPOCHS),
               "--batch-size", str(batch), "--json-log", "--quiet"]  # fmt: skip
        if workers > 1:
            cmd += ["--workers", cluster, "--worker-index", str(i)]
        cmds.append(cmd)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for c in cmds]  # fmt: skip
    outs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"cnncli train failed ({p.returncode}):\n{err[-2000:]}")
    lines = [json.loads(line) for line in outs[0][0].splitlines() if line.startswith("{")]
    return {"epochs": [d["seconds"] for d in lines], "wall": wall,
            "val_accuracy": lines[-1].get("val_accuracy")}  # fmt: skip


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
    print(f"\n(3) multi-worker: mnist on {n} 28x28x1 images ({train_n} train), global batch "
          f"{batch}, {EPOCHS} epochs, rounds {rounds}")  # fmt: skip
    print(f"{'':30} {'samples/s ep2+':>15} {'command wall s':>15} {'val_accuracy':>13}")
    med = statistics.median
    for label, k in (("one process (batch 64)", 0), ("two workers (32 each)", 1)):
        rates = [rate(train_n * (EPOCHS - 1), sum(x[k]["epochs"][1:])) for x in results]
        walls = [x[k]["wall"] for x in results]
        acc = results[-1][k]["val_accuracy"]
        print(f"{label:30} {med(rates):>15.0f} {med(walls):>15.1f} {acc:>13.3f}")
    ratios = [rate(1, sum(t["epochs"][1:])) / rate(1, sum(o["epochs"][1:])) for o, t in results]
    print(f"ratio two workers / one process (samples/s from epoch 2): {med(ratios):.2f} "
          f"(rounds: {' '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images")
    ap.add_argument(
        "--no-determinism",
        action="store_true",
        help="train cnncli without TensorFlow op determinism (to measure its cost)",
    )
    ap.add_argument("--only", choices=["mnist", "facade", "multi-worker"], help="one case only")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per case (default 3, quick 1)")
    args = ap.parse_args()
    cases = [
        {"name": "mnist 28x28x1", "arch": "mnist", "side": 28, "channels": 1, "mode": "L",
         "classes": 10, "batch": 64, "n": 2000 if args.quick else 12000},
        {"name": "facade 500x500x4", "arch": "facade", "side": 500, "channels": 4,
         "mode": "RGBA", "classes": 2, "batch": 8, "n": 24 if args.quick else 96},
    ]  # fmt: skip
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.only:
        cases = [c for c in cases if c["arch"] == args.only]
    from cnncli.datasets.build import build_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_train-"))
    if args.only == "multi-worker":
        try:
            print(f"cores: {os.cpu_count()} (shared with other work: figures are noisy)")
            multi_worker(tmp, args.quick, args.rounds)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        print(f"cores: {os.cpu_count()} (shared with other work: figures are noisy)")
        for case in cases:
            case["images"] = make_images(tmp / case["arch"] / "images", case["n"], case["side"],
                                         case["mode"], case["classes"])  # fmt: skip
            t0 = time.perf_counter()
            build_dataset(case["images"], tmp / case["arch"] / "ds", val=0.0)
            case["build_s"] = time.perf_counter() - t0
            case["ds"] = tmp / case["arch"] / "ds"

        import tensorflow as tf

        det = "off" if args.no_determinism else "on"
        print(f"TensorFlow {tf.__version__}, epochs {EPOCHS}, cnncli op determinism {det}\n")
        if not args.no_determinism:
            # cnncli turns op determinism on (for exact resume); it is process-wide, so the
            # hand-written runs get it too and both sides run under the same setting
            tf.config.experimental.enable_op_determinism()
        # rounds alternate the two sides, so a burst of load from other work on this shared
        # machine hits both; the median of the per-round ratios is the figure
        for case in cases:
            case["rounds"] = []
            for r in range(args.rounds):
                k = keras_baseline(case, case["images"])
                c = cnncli_train(case, case["ds"], tmp / case["arch"] / f"run{r}",
                                 not args.no_determinism)  # fmt: skip
                case["rounds"].append((k, c))
            case["read_keras"] = read_keras(case["images"], case, case["batch"], cache=False)
            case["read_keras_cache"] = read_keras(case["images"], case, case["batch"], cache=True)
            case["read_cnncli"] = read_cnncli(case["ds"], case["batch"])

        print("(1) training, samples/s from epoch 2 on (median of rounds; per-round ratios)")
        head = f"{'case':18} {'n':>6} {'batch':>5} {'keras fit':>10} {'cnncli fit':>11} "
        head += f"{'ratio':>6} {'+saving':>8} {'ratio':>6}  rounds"
        print(head)
        for case in cases:
            n = case["n"]
            ks, cs, ws, ratios = [], [], [], []
            for k, c in case["rounds"]:
                ks.append(rate(n * (EPOCHS - 1), sum(k["epochs"][1:])))
                cs.append(rate(n * (EPOCHS - 1), sum(c["epochs"][1:])))
                ws.append(rate(n * (EPOCHS - 1), sum(c["walls"][1:])))
                ratios.append(cs[-1] / ks[-1])
            med = statistics.median
            wr = med(w / k for w, k in zip(ws, ks, strict=True))
            print(
                f"{case['name']:18} {n:>6} {case['batch']:>5} {med(ks):>10.1f} {med(cs):>11.1f} "
                f"{med(ratios):>6.2f} {med(ws):>8.1f} {wr:>6.2f}  "
                + " ".join(f"{x:.2f}" for x in ratios)
            )
        print("\nfirst epoch's extra time over a later epoch (median of rounds)")
        for case in cases:
            k_extra = statistics.median(
                k["epochs"][0] - statistics.mean(k["epochs"][1:]) for k, _ in case["rounds"]
            )
            c_extra = statistics.median(
                c["epochs"][0] - statistics.mean(c["epochs"][1:]) for _, c in case["rounds"]
            )
            load = statistics.median(k["load_s"] for k, _ in case["rounds"])
            print(
                f"{case['name']:18} cnncli {c_extra:+.2f}s (reads the shards into the memory "
                f"cache; the dataset build took {case['build_s']:.1f}s once); keras "
                f"{k_extra:+.2f}s, after {load:.1f}s loading the images into NumPy arrays"
            )
        print("\n(2) reading the dataset alone, images/s over 3 epochs")
        print(f"{'case':18} {'cnncli tf.data':>15} {'keras idfd':>11} {'ratio':>6} "
              f"{'idfd+cache':>11} {'ratio':>6}")  # fmt: skip
        for case in cases:
            r, k, kc = case["read_cnncli"], case["read_keras"], case["read_keras_cache"]
            print(f"{case['name']:18} {r:>15.0f} {k:>11.0f} {r / k:>6.2f} {kc:>11.0f} "
                  f"{r / kc:>6.2f}")  # fmt: skip
        print("\ngoals: (1) ratio >= 0.95 from epoch 2 on; (2) ratio >= 1.0")
        if not args.only:
            multi_worker(tmp, args.quick, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
