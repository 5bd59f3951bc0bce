"""Benchmark issue 29: the whole `cnncli predict` / `cnncli evaluate` command on a .keras model
through Keras against its fast copy (onnxruntime, LiteRT), and each runtime's forward pass.

Models and images (made here, nothing downloaded):
- digits: sklearn's bundled load_digits as 28x28 grayscale PNGs (360 and all 1,797), the
  `mnist` architecture trained 1 epoch on them; a dataset of them (test split: 360) for
  evaluate;
- facade: 100 façade-size photos (128x128 RGB: the 42 of sample_data/facade, flipped and
  rotated), the `catsdogs` architecture at 128x128 (untrained: the speed is the point).

For each: the whole command in a fresh process, stdout piped, as a user runs it:
`--runtime keras`, the first `--runtime auto|litert` call (which exports and checks the copy)
and the later calls (median of `--rounds`); the answers of every image compared with Keras'
(largest probability difference). Then, in-process, per-image latency at batch 1 and images/s
at batch 64 for Keras, onnxruntime and LiteRT. `uptime`'s load is printed beside each figure:
the machine may be shared.

    python bench/bench_predict_runtime.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO), os.environ.get("PYTHONPATH")]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, PATHS))}


def load() -> str:
    return "load " + os.getloadavg().__repr__().strip("()").split(",")[0].strip()[:5]


def make_digits(root: Path, n: int) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images[:n], d.target[:n], strict=True)):
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray((img * (255 / 16)).astype(np.uint8), "L")
        small.resize((28, 28), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
    return root


def make_facades(root: Path, n: int = 100) -> Path:
    files = sorted((REPO / "sample_data" / "facade").glob("*.png"))
    ops = [None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_180]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.open(files[i % len(files)]).convert("RGB").resize((128, 128))
        op = ops[(i // len(files)) % len(ops)]
        (im.transpose(op) if op is not None else im).save(root / f"f{i:03d}.png")
    return root


def make_run(folder: Path, arch: str, shape, names, train=None) -> Path:
    """A run folder (run.json, best.keras) holding `arch` (trained 1 epoch on `train`)."""
    import keras

    from cnncli.images import ImageSpec
    from cnncli.models.io import save_model
    from cnncli.models.presets import build_architecture

    keras.utils.set_random_seed(0)
    body = build_architecture(arch, input_shape=shape, num_classes=len(names))
    inputs = keras.Input(shape)
    model = keras.Model(inputs, body(keras.layers.Rescaling(1 / 255)(inputs)))
    if train is not None:
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(*train, epochs=1, batch_size=32, verbose=0)
    color = "grayscale" if shape[-1] == 1 else "rgb"
    spec = ImageSpec(height=shape[0], width=shape[1], color=color, fit="stretch")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text("{}")
    meta = {"class_names": list(names), "image": spec.to_dict(), "pixel_scale": 1.0}
    save_model(model, folder / "best.keras", meta)
    return folder


def command(args, runtime: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "cnncli", *map(str, args), "--runtime", runtime],
        env=ENV,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t
    if out.returncode:
        raise SystemExit(f"{args} --runtime {runtime} failed: {out.stderr[-500:]}")
    return took, out.stdout


def predict_probs(stdout: str) -> dict:
    return {p["file"]: p["probability"] for p in json.loads(stdout)["predictions"]}


def whole(name: str, run: Path, args: list, rounds: int, kind: str) -> None:
    """The first call of each fast runtime (it makes the copy), then `rounds` interleaved
    rounds of Keras and the later calls of each (the load moves: interleaving is fairer);
    the medians, and the answers of every image against Keras'."""
    firsts = {}
    for runtime in ("onnx", "litert"):
        firsts[runtime] = command(args, runtime)[0]
        print(
            f"{name:28s} {runtime:7s} first call (makes the copy) {firsts[runtime]:6.2f} s"
            f"   ({load()})",
            flush=True,
        )
    times: dict[str, list[float]] = {"keras": [], "onnx": [], "litert": []}
    outs = {}
    for _ in range(rounds):
        for runtime in times:
            t, outs[runtime] = command(args, runtime)
            times[runtime].append(t)
    for runtime, ts in times.items():
        if kind == "predict":
            a, b = predict_probs(outs["keras"]), predict_probs(outs[runtime])
            diff = f"max p diff vs keras {max(abs(a[k] - b[k]) for k in a):.2g} on {len(a)}"
        else:
            a, b = json.loads(outs["keras"]), json.loads(outs[runtime])
            diff = f"accuracy {b['accuracy']:.4f} (keras {a['accuracy']:.4f})"
        print(
            f"{name:28s} {runtime:7s} later calls {statistics.median(ts):6.2f} s "
            f"(median of {len(ts)})   {diff}   ({load()})",
            flush=True,
        )
    shutil.rmtree(run / ".cnncli-cache", ignore_errors=True)


def forward(name: str, run: Path, shape) -> None:
    """Per-image latency at batch 1 and images/s at batch 64 per runtime, in-process."""
    from cnncli.export.run import export_model
    from cnncli.inference.model import open_model
    from cnncli.inference.runtimes import open_exported

    tmp = Path(tempfile.mkdtemp())
    models = {"keras": open_model(run / "best.keras").model}
    for fmt, suffix in (("onnx", ".onnx"), ("litert", ".tflite")):
        out = tmp / f"m{suffix}"
        export_model(run / "best.keras", fmt, out)
        models[fmt] = open_exported(out).model
    rng = np.random.default_rng(0)
    x1 = rng.uniform(0, 255, (1, *shape)).astype(np.float32)
    x64 = rng.uniform(0, 255, (64, *shape)).astype(np.float32)
    for rt, m in models.items():
        for x in (x1, x64):
            m.predict_on_batch(x)  # warm
        n1, t = 0, time.perf_counter()
        while time.perf_counter() - t < 1.0:
            m.predict_on_batch(x1)
            n1 += 1
        lat = (time.perf_counter() - t) / n1
        n64, t = 0, time.perf_counter()
        while time.perf_counter() - t < 1.5:
            m.predict_on_batch(x64)
            n64 += 1
        rate = 64 * n64 / (time.perf_counter() - t)
        print(
            f"{name:10s} {rt:7s} batch 1: {lat * 1e6:8.0f} µs/image   batch 64: "
            f"{rate:9.0f} images/s   ({load()})",
            flush=True,
        )
    shutil.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="360 digits only, 1 round")
    ap.add_argument("--skip", default="", help="comma-separated: 1797, evaluate, facade, forward")
    a = ap.parse_args()
    rounds = 1 if a.quick else a.rounds
    tmp = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    os.environ["XDG_CACHE_HOME"] = ENV["XDG_CACHE_HOME"] = str(tmp / "cache")
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.stack(
        [
            np.asarray(
                Image.fromarray((i * 255 / 16).astype(np.uint8), "L").resize(
                    (28, 28), Image.Resampling.BILINEAR
                ),
                np.float32,
            )
            for i in d.images
        ]
    )[..., None]
    digits = make_run(
        tmp / "digits-run", "mnist", (28, 28, 1), [f"digit{i}" for i in range(10)], (x, d.target)
    )
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    d360 = make_digits(tmp / "d360", 360)
    whole("predict 360 digits", digits, ["predict", digits, d360, "--json"], rounds, "predict")
    skip = set(a.skip.split(",")) | ({"1797", "evaluate", "facade"} if a.quick else set())
    d1797 = make_digits(tmp / "d1797", 1797)
    if "1797" not in skip:
        whole(
            "predict 1,797 digits", digits, ["predict", digits, d1797, "--json"], rounds, "predict"
        )
    if "evaluate" not in skip:
        from cnncli.datasets.build import build_dataset

        ds = tmp / "ds"
        build_dataset(d1797, ds, val=0.0, test=0.2, seed=0, workers=1)
        whole(
            "evaluate 360 digits (test)",
            digits,
            ["evaluate", digits, ds, "--json", "--no-confusion"],
            rounds,
            "evaluate",
        )
    if "facade" not in skip:
        facades = make_facades(tmp / "facades")
        facade = make_run(tmp / "facade-run", "catsdogs", (128, 128, 3), ["대리석", "벽돌"])
        whole(
            "predict 100 facades", facade, ["predict", facade, facades, "--json"], rounds, "predict"
        )
    if "forward" not in skip:
        forward("digits", digits, (28, 28, 1))
    if "forward" not in skip and "facade" not in skip:
        forward("facade", facade, (128, 128, 3))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
