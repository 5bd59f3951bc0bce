"""The training step against the machine's limit (issue 26): the fp32 matmul peak of this
CPU, and the share of it a training step reaches for the default network (the fast recipe)
and the course's models (mnist on digits, facade on 500x500x4 images), in three ways:

  - keras ceiling: the very model cnncli trains (cnncli.training.model.build_model: its
    rescaling, augmentation, loss, optimizer, one-cycle rate and weight average, the steps
    per execution cnncli chose) fitted by Keras on NumPy arrays already in memory, nothing
    saved, no callbacks: what Keras itself reaches;
  - cnncli train: cnncli.training.fit.train as `cnncli train` runs it, its input pipeline,
    callbacks and per-epoch saving included (an epoch's time runs to after its files);
  - notebook fp32 (the course's models only): the hand-written course notebook, arrays /255,
    a Sequential model, Adam, fit (bench_train.notebook).

Samples per second from epoch 2 on (the first holds the compile), median over interleaved
rounds (a burst of load hits every side); GFLOP/s = 3 x the forward FLOPs of the
convolutions and dense layers x samples/s; the peak is the larger of a timed 2048x2048
tf.matmul and numpy matmul in float32. Data as bench_train.py makes it (digits 1,437 train
images at 28x28x1, batch 64; synthetic 500x500x4 two-class images, batch 32).

    python bench/bench_peak.py [--quick] [--rounds N] [--only digits|facade]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cnncli

import numpy as np  # noqa: E402
from bench_train import matmul_peak, notebook, prepare  # noqa: E402


def numpy_peak(n: int = 2048, seconds: float = 1.5) -> float:
    """GFLOP/s of a timed square float32 numpy matmul (its BLAS, all cores)."""
    a = np.random.default_rng(0).random((n, n), np.float32)
    a @ a  # warm up
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ a
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0) / 1e9


def recipe_options(case, info, default: bool):
    """cnncli's options and model source for the case: the fast recipe's network or the
    course's architecture, at the case's batch and epochs (given: no saturation stop)."""
    from cnncli.training.options import TrainOptions, model_source
    from cnncli.training.recipes import apply_recipe

    given = TrainOptions(epochs=case["epochs"], batch_size=case["batch"], seed=0)
    source = model_source() if default else model_source(arch=case["arch"])
    opts, source, _ = apply_recipe(given, info, source)
    return opts.for_dataset(info), source


def ceiling(case, default: bool, spe: int) -> dict:
    """Keras fitting cnncli's own training model on arrays in memory: no saving."""
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.training.model import build_model, one_hot_training

    info = open_dataset(case["ds"])
    opts, source = recipe_options(case, info, default)
    keras.utils.set_random_seed(0)
    net, _ = build_model(source, info, opts)
    net.steps_per_execution = spe
    x, y = case["train"]
    if one_hot_training(net):
        y = np.eye(info.output_size, dtype=np.float32)[y]
    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)

    net.fit(x, y, batch_size=opts.batch_size, epochs=opts.epochs, verbose=0, callbacks=[Timer()])
    return {"seconds": seconds, "flops": model_flops(net)}


def cnncli_train(case, default: bool, run_dir: Path) -> dict:
    """`cnncli train` in process: each epoch's wall time to after its files."""
    import json

    from cnncli.training.events import TrainEvents
    from cnncli.training.fit import TrainOptions, train

    begin: dict[int, float] = {}
    end: dict[int, float] = {}

    class Events(TrainEvents):
        def epoch_begin(self, epoch, steps):
            begin[epoch] = time.perf_counter()

        def epoch_end(self, report):
            end[report.epoch] = time.perf_counter()

    options = TrainOptions(epochs=case["epochs"], batch_size=case["batch"], seed=0)
    arch = None if default else case["arch"]
    train(case["ds"], run_dir, arch=arch, options=options, overwrite=True, events=Events())
    run = json.loads((run_dir / "run.json").read_text())
    return {
        "seconds": [end[e] - begin[e] for e in sorted(end)],
        "spe": run["steps_per_execution"]["value"],
        "network": run["model"]["name"],
    }


def model_flops(net) -> float:
    from cnncli.training.precision import forward_flops

    return forward_flops(net)


def rate(n: int, seconds: list[float]) -> float:
    """Samples per second over the epochs after the first."""
    later = seconds[1:] or seconds
    return n * len(later) / sum(later)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round, fewer images and epochs")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    ap.add_argument("--only", choices=["digits", "facade"], help="one case only")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    tmp = Path(tempfile.mkdtemp(prefix="bench_peak-"))
    try:
        import tensorflow as tf

        cases = prepare(tmp, quick=True)  # digits; 64 façade images (51 train)
        for case in cases:
            case["epochs"] = 2 if args.quick else 3
        if args.only:
            cases = [c for c in cases if c["name"].startswith(args.only[:4])]
        tf.config.experimental.enable_op_determinism()  # as cnncli runs (process-wide)
        peaks = {"tf.matmul": matmul_peak("float32"), "numpy matmul": numpy_peak()}
        peak = max(peaks.values())
        print(
            f"TensorFlow {tf.__version__}; {os.cpu_count()} cores; load average "
            f"{os.getloadavg()[0]:.1f} at the start (the machine is shared: figures are noisy)"
        )
        print(
            "fp32 matmul peak (2048x2048): "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
            + f"; the peak below: {peak:.0f}"
        )
        rows = []
        for case in cases:
            n = len(case["train"][1])
            sides: dict[str, list[float]] = {}
            flops: dict[str, float] = {}
            loads = []
            for r in range(rounds):  # interleaved
                loads.append(os.getloadavg()[0])
                nb = notebook(case)
                sides.setdefault(f"{case['arch']}: notebook fp32", []).append(rate(n, nb["fit"]))
                flops[f"{case['arch']}: notebook fp32"] = case["flops"]
                for default in (False, True):
                    name = "default" if default else case["arch"]
                    got = cnncli_train(case, default, tmp / f"run-{name}-{r}")
                    top = ceiling(case, default, got["spe"])
                    for side, secs in (("keras ceiling", top), ("cnncli train", got)):
                        label = f"{name}: {side}"
                        sides.setdefault(label, []).append(rate(n, secs["seconds"]))
                        flops[label] = top["flops"]
                print(f"  [{case['name']}] round {r + 1} done, load {loads[-1]:.1f}", flush=True)
            rows.append((case, n, sides, flops, loads))
        for case, n, sides, flops, loads in rows:
            med = {k: statistics.median(v) for k, v in sides.items()}
            print(
                f"\n{case['name']}: {n} train images, batch {case['batch']}, "
                f"{case['epochs']} epochs, {rounds} round(s), load {min(loads):.1f}-"
                f"{max(loads):.1f}"
            )
            print(
                f"{'model: side':28} {'MFLOP/img':>9} {'samples/s':>10} {'GFLOP/s':>8} "
                f"{'%peak':>6} {'/ceiling':>9} {'/notebook':>10}  rounds (samples/s)"
            )
            base = med[f"{case['arch']}: notebook fp32"]
            for label, value in med.items():
                model = label.split(":")[0]
                gflops = 3 * flops[label] * value / 1e9
                top = med.get(f"{model}: keras ceiling")
                print(
                    f"{label:28} {flops[label] / 1e6:>9.1f} {value:>10.1f} {gflops:>8.2f} "
                    f"{100 * gflops / peak:>5.1f}% "
                    f"{(value / top if top else float('nan')):>9.2f} {value / base:>10.2f}  "
                    + " ".join(f"{v:.0f}" for v in sides[label])
                )
        print(
            "\n/ceiling: samples/s against Keras fitting the same model on arrays in memory; "
            "/notebook: against the course notebook (its own model, fp32); goal (issue 26): "
            "cnncli train with saving >= 1.05x the notebook"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
