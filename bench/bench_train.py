"""Benchmark `cnncli train` against the hand-written fp32 notebook (issue 18 §1, §2, §6).

Two cases: digits (the 1,797 8x8 digits of sklearn's bundled load_digits as 28x28 PNGs, as
bench_evaluate.py makes them; a stratified 80/20 split: 1,437 train, 360 test; the `mnist`
architecture, batch 64) and the course's façade model (synthetic 500x500x4 images, two
classes; the `facade` architecture, batch 32). Sides, interleaved in rounds, median:
  - notebook: the train images preloaded as NumPy arrays /255, `model.fit`, fp32;
  - cnncli default: cnncli.training.fit.train as `cnncli train` runs it (precision auto:
    the precision it picked and why are printed), per-epoch saving included;
  - cnncli --precision fp32: only when the default picked something else;
  - cnncli --precision bf16.
Samples per second from epoch 2 on (cnncli: its fit alone, and with its saving: the wall
time of an epoch to after its files), the ratio to the notebook, the test accuracy of the
model after the last epoch (same seed everywhere), and the achieved GFLOP/s (3 x the
forward FLOPs of the convolutions and dense layers per image x samples/s) next to the
machine's fp32 and bf16 matmul peak (a timed tf.matmul). cnncli turns on op determinism
process-wide, so the notebook runs under it too.

Goals: bf16 >= 1.5x the notebook on digits and >= 1.3x on the façade model with test
accuracy within 0.01 of fp32; cnncli default with saving >= 1.05x.

    python bench/bench_train.py [--quick] [--rounds N] [--no-bf16]
                                [--only digits|facade|multi-worker]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cnncli

import numpy as np  # noqa: E402
from bench_evaluate import make_digits  # noqa: E402
from bench_train_io import make_images, multi_worker  # noqa: E402
from PIL import Image  # noqa: E402


def split_folder(src: Path, dst: Path, test: float = 0.2, seed: int = 0) -> tuple[Path, Path]:
    """src's class folders into dst/train and dst/test (stratified, seeded)."""
    rng = np.random.default_rng(seed)
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.png"))
        rng.shuffle(files)
        k = round(len(files) * test)
        for part, chosen in (("test", files[:k]), ("train", files[k:])):
            (dst / part / folder.name).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                os.link(f, dst / part / folder.name / f.name)
    return dst / "train", dst / "test"


def load_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image of the class folders into one float32 array (0..255) and the labels."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = sorted(folder.rglob("*.png"))
    xs = [np.asarray(Image.open(f), np.float32) for f in files]
    x = np.stack([a[..., None] if a.ndim == 2 else a for a in xs])
    y = np.array([classes.index(f.parent.name) for f in files], np.int32)
    return x, y


def notebook(case) -> dict:
    """The course's way: arrays /255, a Sequential model, compile, fit, evaluate."""
    import keras

    from cnncli.models.presets import build_architecture

    keras.utils.set_random_seed(0)
    x, y = case["train"]
    model = build_architecture(case["arch"], x.shape[1:], case["classes"])
    binary = case["classes"] == 2
    model.compile(
        optimizer="adam",
        metrics=["accuracy"],
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
    )
    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)

    model.fit(
        x / 255.0,
        y,
        batch_size=case["batch"],
        epochs=case["epochs"],
        shuffle=True,
        verbose=0,
        callbacks=[Timer()],
    )
    tx, ty = case["test"]
    acc = model.evaluate(tx / 255.0, ty, batch_size=256, verbose=0)[1]
    return {"fit": seconds, "wall": seconds, "acc": acc, "precision": "fp32 (Keras default)"}


def cnncli_side(case, run_dir: Path, precision: str) -> dict:
    import keras

    from cnncli.training.events import TrainEvents
    from cnncli.training.fit import TrainOptions, train

    class Events(TrainEvents):
        def __init__(self):
            self.begin, self.end, self.fit, self.info = {}, {}, [], {}

        def train_begin(self, info):
            self.info = info

        def epoch_begin(self, epoch, steps):
            self.begin[epoch] = time.perf_counter()

        def epoch_end(self, report):
            self.end[report.epoch] = time.perf_counter()
            self.fit.append(report.seconds)

    ev = Events()
    options = TrainOptions(
        epochs=case["epochs"], batch_size=case["batch"], seed=0, precision=precision
    )
    train(case["ds"], run_dir, arch=case["arch"], options=options, overwrite=True, events=ev)
    walls = [ev.end[e] - ev.begin[e] for e in sorted(ev.end)]
    model = keras.models.load_model(run_dir / "last.keras")
    tx, ty = case["test"]
    acc = model.evaluate(tx, ty, batch_size=256, verbose=0)[1]  # cnncli's model rescales
    return {"fit": ev.fit, "wall": walls, "acc": acc, "precision": ev.info.get("precision", "")}


def matmul_peak(dtype: str, n: int = 2048, seconds: float = 1.5) -> float:
    """GFLOP/s of a timed square tf.matmul in `dtype` (float32 or bfloat16)."""
    import tensorflow as tf

    a = tf.cast(np.random.default_rng(0).random((n, n), np.float32), dtype)
    tf.matmul(a, a).numpy()  # warm up (oneDNN picks its kernel)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tf.matmul(a, a).numpy()
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0) / 1e9


def prepare(tmp: Path, quick: bool) -> list[dict]:
    from cnncli.datasets.build import build_dataset
    from cnncli.models.presets import build_architecture
    from cnncli.training.precision import forward_flops

    digits = make_digits(tmp / "digits" / "all")
    n_facade = 64 if quick else 160
    facade = make_images(tmp / "facade" / "all", n_facade, 500, "RGBA", 2)
    cases = [
        {
            "name": "digits 28x28x1",
            "arch": "mnist",
            "classes": 10,
            "batch": 64,
            "epochs": 4 if quick else 10,
            "all": digits,
        },
        {
            "name": "facade 500x500x4",
            "arch": "facade",
            "classes": 2,
            "batch": 32,
            "epochs": 3 if quick else 5,
            "all": facade,
        },
    ]
    for case in cases:
        root = case["all"].parent
        train_dir, test_dir = split_folder(case["all"], root / "split")
        case["train"], case["test"] = load_arrays(train_dir), load_arrays(test_dir)
        case["ds"] = root / "ds"
        build_dataset(train_dir, case["ds"], val=0.0, test=0.0, seed=0)
        model = build_architecture(case["arch"], case["train"][0].shape[1:], case["classes"])
        case["flops"] = forward_flops(model)
    return cases


def report(case, sides: dict, peaks: dict) -> None:
    med = statistics.median
    x, _ = case["train"]
    n = len(x) * (case["epochs"] - 1)
    base = [n / sum(r["fit"][1:]) for r in sides["notebook"]]
    print(
        f"\n{case['name']}: {len(x)} train, {len(case['test'][1])} test, batch "
        f"{case['batch']}, {case['epochs']} epochs, {case['flops'] / 1e6:.1f} MFLOP/image "
        f"forward"
    )
    print(
        f"{'side':26} {'fit/s':>8} {'+saving/s':>10} {'ratio':>6} {'GFLOP/s':>8} "
        f"{'%peak':>6} {'test acc':>9}  rounds (ratio with saving)"
    )
    for label, rounds in sides.items():
        fit = [n / sum(r["fit"][1:]) for r in rounds]
        wall = [n / sum(r["wall"][1:]) for r in rounds]
        ratios = [w / b for w, b in zip(wall, base, strict=True)]
        gflops = 3 * case["flops"] * med(wall) / 1e9
        used = re.search(r"\b(fp32|bf16|fp16)\b", rounds[-1]["precision"])  # the first named
        peak = peaks["bf16" if used and used.group(1) == "bf16" else "fp32"]
        print(
            f"{label:26} {med(fit):>8.1f} {med(wall):>10.1f} {med(ratios):>6.2f} "
            f"{gflops:>8.1f} {100 * gflops / peak:>5.0f}% {rounds[-1]['acc']:>9.4f}  "
            + " ".join(f"{r:.2f}" for r in ratios)
        )
    for label, rounds in sides.items():
        if label != "notebook":
            print(f"  {label}: {rounds[-1]['precision']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and façade images")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per case (default 3, quick 1)")
    ap.add_argument("--only", choices=["digits", "facade", "multi-worker"], help="one case only")
    ap.add_argument(
        "--no-bf16",
        action="store_true",
        help="leave out the bf16 side (on a CPU without AMX-BF16 it is emulated, slow)",
    )
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train-"))
    try:
        if args.only == "multi-worker":  # bench_train_io.py's part (2)
            multi_worker(tmp, args.quick, rounds)
            return
        import tensorflow as tf

        from cnncli.training.precision import detect_device

        cases = prepare(tmp, args.quick)
        if args.only:
            cases = [c for c in cases if c["arch"] == {"digits": "mnist"}.get(args.only, args.only)]
        tf.config.experimental.enable_op_determinism()  # as cnncli runs (process-wide)
        peaks = {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}
        device = detect_device()
        print(
            f"TensorFlow {tf.__version__}; {os.cpu_count()} cores; device {device.describe()}"
            f" ({device.evidence}); the machine is shared: figures are noisy"
        )
        print(
            f"matmul peak (2048x2048, tf.matmul): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 "
            f"{peaks['bf16']:.0f} GFLOP/s"
        )
        for case in cases:
            sides: dict[str, list] = {"notebook": [], "cnncli default": []}
            for r in range(rounds):  # interleaved: a burst of load hits every side
                sides["notebook"].append(notebook(case))
                sides["cnncli default"].append(cnncli_side(case, tmp / f"d{r}", "auto"))
                if "fp32" not in sides["cnncli default"][-1]["precision"]:
                    sides.setdefault("cnncli --precision fp32", []).append(
                        cnncli_side(case, tmp / f"f{r}", "fp32")
                    )
                if not args.no_bf16:
                    sides.setdefault("cnncli --precision bf16", []).append(
                        cnncli_side(case, tmp / f"b{r}", "bf16")
                    )
            report(case, sides, peaks)
        print(
            "\ngoals: bf16 >= 1.5x (digits), >= 1.3x (façade), test accuracy within 0.01 of "
            "fp32; cnncli default with saving >= 1.05x"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
