"""Benchmark the keras.applications backbones of `cnncli train --backbone` (issue 17).

1. Samples per second of each backbone at its smallest input (32x32x3, its narrowest
   width, random weights) on this machine: inference (`predict_on_batch`, batch 32) and
   training (`train_on_batch`, batch 32, the backbone trainable), after a warm-up call.
2. Accuracy and time on the bundled sets, each run as `cnncli train` runs it
   (cnncli.training.fit.train, a fixed seed, the val split):
   - façade (40 RGBA photos, 2 classes): the course's `facade` model from scratch (500x500x4)
     vs `--backbone mobilenetv2 --alpha 0.35 --weights none` (96x96, alpha dropped in the
     model) vs the same from a weights file made by a short pre-training of MobileNetV2 on
     the shapes set (`--weights shapes-run/best.keras --fine-tune-at`);
   - shapes (class folders, 4 classes, 32x32 RGB): the `tiny` model from scratch vs
     `--backbone mobilenetv2 --alpha 0.35 --weights none --lr-schedule cosine`.
   Best val accuracy, its epoch, and the wall time of the run (model building included).
3. A recipe that beats the course's on a class-folder set (sklearn's 1,797 digits as 28x28
   PNGs, as bench_evaluate.py makes them; 65/15/20 train/val/test): the course's MNIST
   convnet (`mnist`, 10 epochs, batch 64) against the same with --augment (rotation 10,
   shift 0.1, zoom 0.1, no flip, no shear: digits are not mirrored), --lr-schedule cosine,
   --warmup 1 and 20 epochs; test accuracy of best.keras (cnncli evaluate). The backbones
   take 32x32 and up, so they sit this one out. Always the full epochs (about a minute).

    python bench/bench_backbones.py [--quick] [--only speed|runs|recipe]

--quick: four backbones, fewer timing batches, 3 epochs per run (else all backbones, 10).
The machine is shared: the numbers are for comparing rows of one run, not absolute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's cnncli

import numpy as np  # noqa: E402

QUICK_BACKBONES = ("mobilenet", "mobilenetv2", "mobilenetv3small", "efficientnetb0")


def throughput(names, batches: int) -> list[dict]:
    import keras

    from cnncli.models.backbones import build_backbone_model, get_backbone

    rows = []
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 2, (32, 1)).astype("float32")
    for name in names:
        bb = get_backbone(name)
        alpha = min(bb.alphas)
        head = keras.layers.Dense(1, activation="sigmoid")
        model = build_backbone_model(
            name, (32, 32, 3), head, alpha=alpha if len(bb.alphas) > 1 else None
        )
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.predict_on_batch(x)
        t = time.perf_counter()
        for _ in range(batches):
            model.predict_on_batch(x)
        infer = batches * 32 / (time.perf_counter() - t)
        model.train_on_batch(x, y)
        t = time.perf_counter()
        for _ in range(batches):
            model.train_on_batch(x, y)
        trained = batches * 32 / (time.perf_counter() - t)
        rows.append(
            {
                "backbone": bb.describe(alpha if len(bb.alphas) > 1 else None),
                "params": model.count_params(),
                "infer_per_s": infer,
                "train_per_s": trained,
            }
        )
        print(
            f"  {rows[-1]['backbone']:<28} {rows[-1]['params']:>10,} params  "
            f"infer {infer:8.0f}/s  train {trained:7.0f}/s",
            flush=True,
        )
        keras.backend.clear_session()
    return rows


def run(name, ds, out, **kw) -> dict:
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    arch = kw.pop("arch", None)
    t = time.perf_counter()
    result = train(ds, out, arch=arch, options=TrainOptions(seed=0, **kw))
    seconds = time.perf_counter() - t
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    acc = max(r.get("val_accuracy", 0) for r in result.history)
    row = {
        "run": name,
        "val_accuracy": acc,
        "best_epoch": result.best_epoch,
        "val_loss": best.get("val_loss"),
        "seconds": seconds,
    }
    print(f"  {name:<58} best val acc {acc:.3f}  {seconds:6.1f} s", flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("speed", "runs", "recipe"))
    args = ap.parse_args(argv)
    epochs = 3 if args.quick else 10
    from cnncli.datasets.build import build_dataset
    from cnncli.models.backbones import BACKBONES

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    if args.only in (None, "speed"):
        print("1. samples/s at 32x32x3, narrowest width, batch 32:")
        throughput(QUICK_BACKBONES if args.quick else list(BACKBONES), 3 if args.quick else 10)
    work = Path(tempfile.mkdtemp(prefix="bench-backbones-"))
    try:
        if args.only in (None, "recipe"):
            recipe(work)
        if args.only not in (None, "runs"):
            return 0
        facade, labels = ROOT / "sample_data" / "facade", ROOT / "sample_data/facade/labels.csv"
        build_dataset(facade, work / "f500", labels=labels, size=(500, 500), val=0.25, seed=0)
        build_dataset(facade, work / "f96", labels=labels, size=(96, 96), val=0.25, seed=0)
        build_dataset(
            ROOT / "sample_data" / "shapes", work / "shapes", size=(32, 32), val=0.25, seed=0
        )
        v2 = {"backbone": "mobilenetv2", "alpha": 0.35, "epochs": epochs, "batch_size": 8}
        print(f"2. shapes (class folders, 4 classes), {epochs} epochs:")
        run(
            "tiny from scratch (lr 0.01)",
            work / "shapes",
            work / "s-tiny",
            arch="tiny",
            epochs=epochs,
            batch_size=8,
            lr=0.01,
        )
        run(
            "mobilenetv2 0.35 --weights none --lr-schedule cosine",
            work / "shapes",
            work / "s-v2",
            weights="none",
            lr_schedule="cosine",
            **v2,
        )
        print(f"3. façade (2 classes, 40 photos), {epochs} epochs:")
        run(
            "course facade model from scratch (500x500x4)",
            work / "f500",
            work / "f-course",
            arch="facade",
            epochs=epochs,
            batch_size=8,
        )
        run(
            "mobilenetv2 0.35 --weights none (96x96)",
            work / "f96",
            work / "f-none",
            weights="none",
            **v2,
        )
        at = max(2, epochs // 2)
        run(
            f"mobilenetv2 0.35 --weights shapes-run --fine-tune-at {at}",
            work / "f96",
            work / "f-pre",
            weights=str(work / "s-v2" / "best.keras"),
            fine_tune_at=at,
            fine_tune_lr=1e-4,
            **v2,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def recipe(work: Path) -> None:
    from bench_evaluate import make_digits

    from cnncli.datasets.build import build_dataset
    from cnncli.inference.evaluate import evaluate
    from cnncli.training.augment import AugmentOptions

    make_digits(work / "digits")
    ds = work / "digits-ds"
    build_dataset(work / "digits", ds, size=(28, 28), color="grayscale", val=0.15, test=0.2, seed=0)
    aug = AugmentOptions.from_options(True, rotation=10, shift=0.1, shear=0.0, zoom=0.1, flip=False)
    print("4. digits (class folders, 10 classes), test accuracy of best.keras:")
    for name, kw in (
        ("course: mnist, 10 epochs", {"epochs": 10}),
        (
            "recipe: mnist --augment --lr-schedule cosine --warmup 1, 20 epochs",
            {"epochs": 20, "augment": aug, "lr_schedule": "cosine", "warmup": 1},
        ),
    ):
        row = run(name, ds, work / name[:6], arch="mnist", batch_size=64, **kw)
        test = evaluate(work / name[:6] / "best.keras", ds, split="test").accuracy
        print(f"    test accuracy {test:.4f} ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
