"""Multi-label and regression training (issue 14): how well, and how fast.

Two parts:
  - quality: the bundled sample sets, as docs/tasks.md builds them: sample_data/multishapes
    (multilabel, --label-col tags) and sample_data/facade/measures.csv (regression,
    --target-col brightness --target-col wall); a model trained on each with `cnncli train`'s
    library call, then evaluated on val: macro F1 for the labels, MAE per target against the
    MAE of always predicting the train mean (the baseline a model must beat well).
  - speed: one set of synthetic 32x32 images built three ways (classify: the brightest
    quadrant; multilabel: which quadrants are bright; regression: the mean brightness and
    the brightest quadrant's mean), each trained with the same architecture (mnist, batch
    64); samples per second from epoch 2 on (run.json's epoch_seconds: fit and the epoch's
    saving), median of the rounds, interleaved. Goal: multilabel and regression no slower
    per sample than classification (ratio >= 0.95, allowing for noise).

    python bench/bench_tasks.py [--quick] [--only quality|speed] [--rounds N]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's cnncli

import numpy as np  # noqa: E402

SAMPLE = ROOT / "sample_data"


def quality(tmp: Path, quick: bool) -> None:
    from cnncli.datasets.build import build_dataset
    from cnncli.inference.evaluate import evaluate
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    ml = build_dataset(
        SAMPLE / "multishapes",
        tmp / "multishapes",
        labels=SAMPLE / "multishapes" / "labels.csv",
        task="multilabel",
        label_col="tags",
        label_delim=";",
    ).out_dir
    rg = build_dataset(
        SAMPLE / "facade",
        tmp / "facade-measures",
        labels=SAMPLE / "facade" / "measures.csv",
        task="regression",
        target_cols=["brightness", "wall"],
    ).out_dir
    # docs/tasks.md's runs: mnist on the 48x48 shapes, tiny on the 128x128 façades
    runs = (
        (
            "multilabel",
            ml,
            "mnist",
            TrainOptions(epochs=10 if quick else 30, batch_size=16, monitor="val_f1_macro"),
        ),
        ("regression", rg, "tiny", TrainOptions(epochs=20 if quick else 60, batch_size=8, lr=0.01)),
    )
    for name, ds, arch, options in runs:
        epochs = options.epochs
        t0 = time.perf_counter()
        run = train(ds, tmp / f"run-{name}", arch=arch, options=options)
        secs = time.perf_counter() - t0
        r = evaluate(run.run_dir / "best.keras", ds, split="val")
        print(
            f"\n{name}: {arch}, {epochs} epochs in {secs:.0f}s, best epoch {run.best_epoch} "
            f"(by {run.monitor}); {r.count} val images"
        )
        if name == "multilabel":
            m = r.metrics
            share = r.y_true.mean(axis=0)  # every label said for every image: F1 2p / (1 + p)
            trivial = float(np.mean(2 * share / (1 + share)))
            print(
                f"  macro F1 {m['macro_f1']:.3f} (every label for every image: {trivial:.3f}), "
                f"micro F1 {m['micro_f1']:.3f}, subset accuracy {m['subset_accuracy']:.3f}, "
                f"Hamming loss {m['hamming_loss']:.3f} (every label: "
                f"{float(1 - share.mean()):.3f})"
            )
            for x in r.labels:
                print(
                    f"  {x.name:10s} precision {x.precision:.3f} recall {x.recall:.3f} "
                    f"F1 {x.f1:.3f} (support {x.support})"
                )
        else:
            for t in r.targets:
                print(
                    f"  {t.name:10s} MAE {t.mae:.4g} vs train-mean baseline {t.baseline_mae:.4g}"
                    f" ({t.mae / t.baseline_mae:.0%} of it), RMSE {t.rmse:.4g}, R² {t.r2:.3f}"
                )


def synthetic(root: Path, n: int) -> dict:
    """n 32x32 images with one bright quadrant or more; three tables over them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        arr = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
        bright = rng.random(4) < 0.4
        level = rng.integers(100, 160, 4)
        for q in range(4):
            if bright[q]:
                r0, c0 = (q // 2) * 16, (q % 2) * 16
                arr[r0 : r0 + 16, c0 : c0 + 16] += level[q].astype(np.uint8)
        means = [
            arr[(q // 2) * 16 : (q // 2) * 16 + 16, (q % 2) * 16 : (q % 2) * 16 + 16].mean()
            for q in range(4)
        ]
        name = f"{i:05d}.png"
        Image.fromarray(arr).save(root / "img" / name)
        tags = ";".join(f"q{q}" for q in range(4) if bright[q])
        rows.append(
            [
                name,
                f"q{int(np.argmax(means))}",
                tags,
                round(float(arr.mean()), 2),
                round(float(max(means)), 2),
            ]
        )
    with open(root / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", "quadrant", "tags", "light", "peak"], *rows])
    return {"images": root / "img", "table": root / "table.csv"}


def speed(tmp: Path, quick: bool, rounds: int) -> None:
    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    n, epochs = (600, 3) if quick else (3000, 4)
    src = synthetic(tmp / "synthetic", n)
    table = src["table"]
    sets = {
        "classify": {"label_col": "quadrant"},
        "multilabel": {"task": "multilabel", "label_col": "tags", "label_delim": ";"},
        "regression": {"task": "regression", "target_cols": ["light", "peak"]},
    }
    built = {
        k: build_dataset(src["images"], tmp / k, labels=table, val=0.2, **kw).out_dir
        for k, kw in sets.items()
    }
    train_n = open_dataset(built["classify"]).count("train")
    rates: dict[str, list[float]] = {k: [] for k in sets}
    for r in range(rounds):
        for task, ds in built.items():
            run = train(
                ds,
                tmp / f"{task}-{r}",
                arch="mnist",
                options=TrainOptions(epochs=epochs, batch_size=64, seed=0),
            )
            import json

            secs = json.loads((run.run_dir / "run.json").read_text())["epoch_seconds"][1:]
            rates[task].append(train_n / statistics.median(secs))
    base = statistics.median(rates["classify"])
    print(
        f"\nspeed: mnist at 32x32x3, {train_n} train images, batch 64, {epochs} epochs, "
        f"{rounds} round(s); samples/s from epoch 2 (fit + the epoch's saving), median; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for task, values in rates.items():
        med = statistics.median(values)
        print(f"  {task:10s} {med:8.0f} samples/s  ({med / base:.2f}x classify)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and images")
    ap.add_argument("--only", choices=("quality", "speed"))
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="cnncli-bench-tasks-") as tmp:
        tmp = Path(tmp)
        if args.only in (None, "quality"):
            quality(tmp, args.quick)
        if args.only in (None, "speed"):
            speed(tmp, args.quick, rounds)


if __name__ == "__main__":
    main()
