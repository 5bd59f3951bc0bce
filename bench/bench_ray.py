"""Benchmark `dataset build --engine ray` against the local engine (issue 30).

On one machine a Ray cluster is not faster (the same cores, plus Ray's scheduling): this
measures the overhead. A two-node local cluster (ray.cluster_utils.Cluster: a head with no
CPU, two nodes of one CPU each) and the local engine (its default pool) build the same
folder of 500x500 RGBA PNGs; printed: each time, the ratio, the per-shard overhead (the
Ray build with --shard-size 10 against the default 64MB, per extra shard), the per-image
cost, the driver's header probe per image, and what those give on paper for 1M images on
N 16-core machines. The load average is printed beside each figure (a shared machine).

    python bench/bench_ray.py [--images 1200] [--json]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_dataset import make_folder  # noqa: E402

SMALL = 600  # images in the per-shard overhead measurement


def make_tiny(root: Path, n: int) -> Path:
    """n 8x8 RGB PNGs in two class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
            root / f"c{i % 2}" / f"{i:05d}.png"
        )
    return root


def load() -> str:
    return "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from cnncli.datasets.build import build_dataset
    from cnncli.images import probe_image

    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    c = None
    res: dict = {"images": args.images, "cores": os.cpu_count()}
    try:
        folder = make_folder(tmp / "in", args.images)
        files = sorted(folder.rglob("*.png"))
        t, _ = timed(lambda: [probe_image(f) for f in files])
        res["probe_ms_per_image"] = (round(1000 * t / len(files), 3), load())

        start = time.perf_counter()
        c = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
        )
        c.add_node(num_cpus=1)
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
        res["cluster_start_s"] = (round(time.perf_counter() - start, 1), load())
        # warm the workers (their first task imports cnncli): not counted
        build_dataset(folder, tmp / "warm", engine="ray", shard_size=50)

        def build(name, **kw):
            t, r = timed(lambda: build_dataset(folder, tmp / name, **kw))
            shards = sum(len(s["shards"]) for s in r.manifest["splits"].values())
            return round(t, 2), shards, load()

        cpu0 = os.times()
        res["local"] = build("local")
        cpu1 = os.times()
        cpu_local = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        res["ray"] = build("ray", engine="ray")
        res["local_again"] = build("local2")
        res["ray_small_shards"] = build("ray10", engine="ray", shard_size=10)
        res["local_small_shards"] = build("local10", shard_size=10)
        same = all(
            filecmp.cmp(tmp / "local" / n, tmp / "ray" / n, shallow=False)
            for n in os.listdir(tmp / "local")
        )
        res["byte_identical"] = same
        t_local = min(res["local"][0], res["local_again"][0])
        res["ratio_ray_over_local"] = round(res["ray"][0] / t_local, 2)
        # the per-shard overhead, apart from the conversion: 8x8 images, one shard per image
        # against one shard per node (the same records, both nodes busy in both), on Ray;
        # per shard in a node's time: 2 nodes share the extra shards
        tiny = make_tiny(tmp / "tiny", SMALL)
        t_one, _ = timed(
            lambda: build_dataset(tiny, tmp / "t1", engine="ray", shard_size=SMALL // 2, val=0.0)
        )
        t_many, _ = timed(
            lambda: build_dataset(tiny, tmp / "tn", engine="ray", shard_size=1, val=0.0)
        )
        per_shard = 2 * (t_many - t_one) / (SMALL - 2)
        res["tiny_one_shard_s"] = (round(t_one, 2), load())
        res["tiny_one_shard_per_image_s"] = (round(t_many, 2), load())
        res["per_shard_overhead_ms"] = round(1000 * per_shard, 1)
        per_image = cpu_local / args.images  # CPU seconds per image (threads included)
        res["cpu_s_per_image"] = round(per_image, 4)
        probe = res["probe_ms_per_image"][0] / 1000
        shards_1m = 1_000_000 // 64  # 64 MB shards of 1 MB records
        res["paper_1M_s"] = {
            n: round(
                (1_000_000 * per_image + shards_1m * per_shard) / (16 * n) + 1_000_000 * probe, 0
            )
            for n in (1, 4, 16, 64)
        }
        src = sum(f.stat().st_size for f in files) / len(files)
        res["bytes_per_image"] = {
            "source": int(src),
            "record": int(
                sum(f.stat().st_size for f in (tmp / "local").glob("*.tfrecord")) / args.images
            ),
        }
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if c is not None:
            c.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{args.images} images of 500x500 RGBA, {res['cores']} cores")
    print(f"cluster start: {res['cluster_start_s'][0]} s ({res['cluster_start_s'][1]})")
    for k in ("local", "local_again", "ray", "local_small_shards", "ray_small_shards"):
        t, n, ld = res[k]
        print(f"{k:>20}: {t:7.2f} s, {n:3d} shards ({ld})")
    print(f"byte-identical: {res['byte_identical']}")
    print(f"ray / local: {res['ratio_ray_over_local']}x")
    print(
        f"per-shard overhead: {res['per_shard_overhead_ms']} ms ({SMALL} 8x8 images: "
        f"2 shards {res['tiny_one_shard_s'][0]} s ({res['tiny_one_shard_s'][1]}), {SMALL} "
        f"shards {res['tiny_one_shard_per_image_s'][0]} s "
        f"({res['tiny_one_shard_per_image_s'][1]}))"
    )
    print(
        f"cost: {res['cpu_s_per_image'] * 1000:.1f} CPU-ms per image (local engine); header "
        f"probe {res['probe_ms_per_image'][0]} ms per image on the driver "
        f"({res['probe_ms_per_image'][1]})"
    )
    b = res["bytes_per_image"]
    print(f"bytes per image: source {b['source']:,}, record {b['record']:,}")
    moved = (b["source"] + b["record"]) * 1_000_000
    print(
        f"1M images move {moved / 1e12:.2f} TB through the shared folder (read + write): "
        f"{moved / 1e9 / 3600:.2f} h at an assumed 1 GB/s, the floor once the cores are many"
    )
    for n, s in res["paper_1M_s"].items():
        print(
            f"on paper, 1M images on {n:>2} x 16 cores: {s / 3600:.2f} h "
            f"(CPU / cores + shards x overhead / cores + the driver's serial header probe)"
        )


if __name__ == "__main__":
    main()
