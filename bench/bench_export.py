"""Benchmark `cnncli export` (issue 15): Keras vs LiteRT, LiteRT int8 and ONNX Runtime.

For the `mnist` architecture (28x28 grayscale, the bundled shapes) and the `facade`
architecture (500x500 RGBA, the bundled façades with their label table), each with
Rescaling(1/255) in front as cnncli trains it: a dataset is built from sample_data, the
model trained briefly on its train split and saved as cnncli saves it, then exported with
`cnncli.export.run.export_model` (litert, litert --int8 calibrated on the train split,
onnx; each checked on the held-out test split). Per format:
- per-image latency at batch 1 (median over repeated calls) and images/s at batch 64;
- file size;
- top-1 agreement with Keras, largest output difference, accuracy on the test split.
Keras runs through `predict_on_batch`, as cnncli's predict does; the runtimes through
cnncli.inference.runtimes (LiteRT's interpreter, onnxruntime's CPU session). The formats
alternate in rounds and the median is kept, as the machine is shared and noisy.

    python bench/bench_export.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data"


def build(arch: str, root: Path):
    """The dataset of `arch` from sample_data (train/val/test), seeded."""
    from cnncli.datasets.build import build_dataset

    out = root / f"{arch}-ds"
    if arch == "mnist":
        build_dataset(
            SAMPLES / "shapes",
            out,
            size="28x28",
            color="grayscale",
            val=0.2,
            test=0.25,
            seed=0,
            workers=1,
        )
    else:
        build_dataset(
            SAMPLES / "facade",
            out,
            labels=SAMPLES / "facade" / "labels.csv",
            image_col="image",
            label_col="type",
            size="500x500",
            color="rgba",
            val=0.2,
            test=0.25,
            seed=0,
            workers=1,
        )
    return out


def train(arch: str, dataset: Path, root: Path, epochs: int) -> Path:
    """A briefly trained model of `arch`, saved with cnncli's metadata."""
    import keras

    from cnncli.datasets.store import iter_records, open_dataset
    from cnncli.models.io import save_model
    from cnncli.models.presets import build_architecture

    info = open_dataset(dataset)
    recs = list(iter_records(info, "train"))
    x = np.stack([r.image for r in recs]).astype("float32")
    y = np.array([r.label for r in recs])
    keras.utils.set_random_seed(0)
    body = build_architecture(arch, info.image.shape, info.num_classes)
    model = keras.Sequential([keras.Input(info.image.shape), keras.layers.Rescaling(1 / 255), body])
    binary = info.num_classes == 2
    model.compile("adam", "binary_crossentropy" if binary else "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    path = root / f"{arch}.keras"
    meta = {"class_names": info.class_names, "image": info.image.to_dict(), "pixel_scale": 1.0}
    save_model(model, path, meta)
    return path


def timed(fn, x, repeats: int) -> float:
    """Median seconds of fn(x) over `repeats` calls (after one warm-up call)."""
    fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def bench_arch(arch: str, root: Path, quick: bool) -> list[dict]:
    from cnncli.datasets.store import iter_records, open_dataset
    from cnncli.export.run import export_model
    from cnncli.inference.model import open_model
    from cnncli.inference.runtimes import open_exported

    ds = build(arch, root)
    model_path = train(arch, ds, root, epochs=8 if quick else 20)
    exports = {
        "LiteRT": export_model(model_path, "litert", root / f"{arch}.tflite", check=ds),
        "LiteRT int8": export_model(
            model_path, "litert", root / f"{arch}.int8.tflite", int8=True, calibration=ds
        ),
        "ONNX Runtime": export_model(model_path, "onnx", root / f"{arch}.onnx", check=ds),
    }
    infos = {"Keras": open_model(model_path)}
    infos.update({name: open_exported(r.path) for name, r in exports.items()})
    test = np.stack([r.image for r in iter_records(open_dataset(ds), "test")]).astype("float32")
    one = test[:1]
    big = np.concatenate([test] * (64 // len(test) + 1))[:64]
    rounds, repeats, repeats64 = (2, 5, 1) if quick else (5, 50, 3)
    lat = {n: [] for n in infos}
    thr = {n: [] for n in infos}
    for _ in range(rounds):  # the formats alternate
        for name, info in infos.items():
            run = info.model.predict_on_batch
            lat[name].append(timed(run, one, repeats))
            thr[name].append(64 / timed(run, big, repeats64))
    rows = []
    for name in infos:
        check = exports[name].check if name in exports else None
        rows.append(
            {
                "arch": arch,
                "format": name,
                "ms_batch1": statistics.median(lat[name]) * 1000,
                "img_s_batch64": statistics.median(thr[name]),
                "bytes": size_of(model_path if name == "Keras" else exports[name].path),
                "agreement": 1.0 if check is None else check.top1_agreement,
                "max_diff": 0.0 if check is None else check.max_abs_diff,
                "accuracy": exports["LiteRT"].check.keras_accuracy
                if check is None
                else check.exported_accuracy,
                "test_images": exports["LiteRT"].check.images,
            }
        )
    return rows


def main() -> None:
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # Keras' retracing notices
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--arch", action="append", choices=["mnist", "facade"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch or ["mnist", "facade"]:
            t = time.perf_counter()
            rows += bench_arch(arch, Path(tmp), args.quick)
            print(f"{arch}: built, trained, exported and timed in {time.perf_counter() - t:.0f} s")
    head = (
        "arch",
        "format",
        "ms/img b1",
        "img/s b64",
        "size",
        "vs keras b1",
        "agree",
        "maxdiff",
        "accuracy",
    )
    print(" | ".join(head))
    base = {r["arch"]: r for r in rows if r["format"] == "Keras"}
    for r in rows:
        speed = base[r["arch"]]["ms_batch1"] / r["ms_batch1"]
        cells = (
            r["arch"],
            r["format"],
            f"{r['ms_batch1']:.3f}",
            f"{r['img_s_batch64']:.0f}",
            f"{r['bytes'] / 1024:.1f} KiB",
            f"{speed:.1f}x",
            f"{r['agreement']:.3f}",
            f"{r['max_diff']:.2g}",
            f"{r['accuracy']:.3f} ({r['test_images']} test images)",
        )
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
