"""Benchmark `cnncli dataset build --update` (issue 30, "Incremental builds").

A dataset (stable shards, the default) of N distinct small photos (16x16 RGB PNGs by
default, three classes, a label table) is built; then 1% of its rows change (a third added,
a third removed, a third relabelled) and the dataset is brought up to date twice: with
--update, and with a full rebuild of the changed table into a new folder. Reported: each
time, the shard files the update wrote again against those it kept as they were, and the
machine's load (`uptime`), since this machine is shared.

    python bench/bench_update.py [--n 12000] [--shard-size 500,50] [--workers W] [--side 16]
        [--engine local|ray] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnncli.datasets.build import build_dataset  # noqa: E402

CLASSES = ("brick", "marble", "stone")


def make_photos(
    folder: Path, start: int, n: int, seed: int = 0, side: int = 16
) -> list[tuple[str, str]]:
    rng = np.random.default_rng([seed, start])
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + n):
        name = f"p{i:06d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            folder / name, compress_level=1
        )
        rows.append((name, CLASSES[i % 3]))
    return rows


def write_table(path: Path, rows) -> None:
    path.write_text("image,type\n" + "".join(f"{n},{c}\n" for n, c in rows), encoding="utf-8")


def timed(**kw) -> tuple[float, object]:
    t = time.perf_counter()
    result = build_dataset(**kw)
    return time.perf_counter() - t, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12_000)
    ap.add_argument(
        "--shard-size",
        default="500,50",
        help="images per shard; several, comma-separated, are run one after another",
    )
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--side", type=int, default=16, help="the photos' side in pixels")
    ap.add_argument("--engine", default="local", help="local or ray (this machine's cores)")
    ap.add_argument("--quick", action="store_true", help="1,200 images")
    args = ap.parse_args()
    n = 1_200 if args.quick else args.n
    for size in [int(s) for s in str(args.shard_size).split(",")]:
        run(args, n, size)


def run(args, n: int, shard_size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, table, ds = root / "imgs", root / "labels.csv", root / "ds"
        rows = make_photos(folder, 0, n, side=args.side)
        write_table(table, rows)
        common = dict(
            images_dir=folder,
            labels=table,
            image_col="image",
            label_col="type",
            classes=list(CLASSES),
            shard_size=shard_size,
            workers=args.workers,
            engine=args.engine,
        )
        t_first, first = timed(out_dir=ds, **common)
        before = {p.name: p.stat().st_ino for p in ds.glob("*.tfrecord")}

        k = max(3, n // 100) // 3  # 1%: a third added, a third removed, a third relabelled
        rng = np.random.default_rng(1)
        picked = rng.permutation(len(rows))
        removed = {rows[i][0] for i in picked[:k]}
        relabelled = {rows[i][0] for i in picked[k : 2 * k]}
        changed = [
            (name, CLASSES[(CLASSES.index(c) + 1) % 3] if name in relabelled else c)
            for name, c in rows
            if name not in removed
        ]
        changed += make_photos(folder, n, k, seed=1, side=args.side)
        write_table(table, changed)

        t_update, updated = timed(out_dir=ds, update=True, **common)
        after = {p.name: p.stat().st_ino for p in ds.glob("*.tfrecord")}
        same = sum(1 for name, ino in after.items() if before.get(name) == ino)
        t_full, _ = timed(out_dir=root / "full", **common)
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        out = {
            "images": n,
            "engine": args.engine,
            "changed_rows": {"added": k, "removed": k, "relabelled": k},
            "side": args.side,
            "shard_size_images": shard_size,
            "shards_before": len(before),
            "shards_after": len(after),
            "update_s": round(t_update, 2),
            "full_rebuild_s": round(t_full, 2),
            "first_build_s": round(t_first, 2),
            "ratio_full_over_update": round(t_full / t_update, 2),
            "shards_written": updated.shards["written"],
            "shards_kept_same_file": same,
            "cpus": os.cpu_count(),
            "uptime": load,
        }
        assert updated.shards["kept"] == same, (updated.shards, same)
        print(json.dumps(out, indent=2))
        del first


if __name__ == "__main__":
    main()
