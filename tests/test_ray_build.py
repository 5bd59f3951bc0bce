"""`dataset build --engine ray` on a real Ray cluster: two worker nodes (one CPU each) and a
head with none, started once for this module (Ray takes tens of seconds to start here)."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import pytest

from cnncli.datasets.build import build_dataset
from cnncli.errors import InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def same_folders(a: Path, b: Path) -> list[str]:
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    for n in names:
        assert filecmp.cmp(a / n, b / n, shallow=False), f"{n} differs"
    return names


@pytest.fixture(scope="module")
def facade(sample_data, tmp_path_factory) -> tuple[Path, Path]:
    """The façade sample twice over (84 images) and a label table."""
    root = tmp_path_factory.mktemp("facade")
    src = sample_data / "facade"
    lines = (src / "labels.csv").read_text(encoding="utf-8").splitlines()
    out = [lines[0]]
    for copy in ("a", "b"):
        (root / copy).mkdir()
        for line in lines[1:]:
            cells = line.split(",")
            shutil.copy(src / cells[1], root / copy / cells[1])
            cells[1] = f"{copy}/{cells[1]}"
            out.append(",".join(cells))
    (root / "labels.csv").write_text("\n".join(out) + "\n", encoding="utf-8")
    return root, root / "labels.csv"


@pytest.mark.parametrize(
    "options",
    [
        # shards by position (--seeded-shards)
        {"shard_size": 7, "stable_shards": False},  # by images: 10 train shards, 3 val
        {"shard_size": "2MB", "test": 0.1, "stable_shards": False},  # cut where local cuts
        {
            "shard_size": 5,
            "record_format": "png",
            "size": "64x48",
            "color": "grayscale",
            "stable_shards": False,
        },
        # stable shards (the default): a bucket per task
        {"shard_size": 7},
        {"shard_size": "2MB", "test": 0.1, "record_format": "png"},  # png cut by bytes
    ],
    ids=["images", "bytes", "png", "stable-images", "stable-png-bytes"],
)
def test_ray_build_is_byte_identical_to_local(cluster, facade, tmp_path, options):
    images, labels = facade
    local = build_dataset(images, tmp_path / "local", labels=labels, **options)
    ray_ = build_dataset(images, tmp_path / "ray", labels=labels, engine="ray", **options)
    names = same_folders(tmp_path / "local", tmp_path / "ray")
    assert sum(n.endswith(".tfrecord") for n in names) >= 3
    assert ray_.manifest == local.manifest
    assert "Ray: " in ray_.notes[-1] and "of 3 nodes" in ray_.notes[-1]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary left


@pytest.mark.parametrize("stable", [False, True], ids=["by-position", "stable"])
def test_skip_bad_moves_the_cuts_as_a_local_build_does(cluster, facade, tmp_path, stable):
    images, labels = facade
    bad = tmp_path / "in"
    shutil.copytree(images, bad)
    for name in sorted(os.listdir(bad / "a"))[:3:2]:  # two broken images
        (bad / "a" / name).write_bytes((bad / "a" / name).read_bytes()[:300])
    options = {"labels": bad / "labels.csv", "shard_size": 6, "skip_bad": True}
    local = build_dataset(bad, tmp_path / "local", stable_shards=stable, **options)
    ray_ = build_dataset(bad, tmp_path / "ray", stable_shards=stable, engine="ray", **options)
    same_folders(tmp_path / "local", tmp_path / "ray")
    assert len(ray_.skipped) == 2 and ray_.skipped == local.skipped


def test_cli_ray_build(cluster, cli, facade, tmp_path):
    images, labels = facade
    r = cli(
        "dataset",
        "build",
        images,
        "--labels",
        labels,
        "-o",
        tmp_path / "ds",
        "--engine",
        "ray",
        "--shard-size",
        "20",
        "--seeded-shards",
    )
    assert r.exit_code == 0, r.output
    assert "(Ray: 5 tasks on" in r.output
    assert (tmp_path / "ds" / "train-00003-of-00004.tfrecord").is_file()


def test_a_node_with_another_version_is_refused(cluster, facade, tmp_path, monkeypatch):
    from cnncli.datasets import ray_engine

    monkeypatch.setattr(ray_engine, "__version__", "0.0.0-other")
    images, labels = facade
    with pytest.raises(InputError) as e:
        build_dataset(images, tmp_path / "ds", labels=labels, engine="ray")
    assert e.value.message.startswith("node ")
    assert "this machine 0.0.0-other" in e.value.message
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_node_lost_mid_build_has_its_shards_done_again(cluster, facade, tmp_path):
    """The second worker node is killed as soon as the first shard is in: its shards are
    retried on the other node, and the dataset is the same as a local build."""
    images, labels = facade
    victim = list(cluster.worker_nodes)[-1]
    killed = []

    def progress(done, total):
        if done and not killed:
            killed.append(done)
            cluster.remove_node(victim, allow_graceful=False)

    build_dataset(
        images, tmp_path / "ray", labels=labels, shard_size=2, engine="ray", progress=progress
    )
    assert killed
    build_dataset(images, tmp_path / "local", labels=labels, shard_size=2)
    same_folders(tmp_path / "local", tmp_path / "ray")
    cluster.add_node(num_cpus=1)


def test_predict_on_ray_equals_local_predict(cluster, cli, tiny, tmp_path):
    """150 images and a broken one, predicted in chunks of 4 batches of 8 by the actors:
    the same file as a local predict, rows in input order, the broken file reported."""
    images = tiny.make_images(tmp_path / "images", tiny.SHAPES, per_class=50, seed=3)
    (images / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    model = tiny.save_with_metadata(tiny.model(3, seed=2), tmp_path / "m.keras", tiny.SHAPES)
    local = cli(
        "predict", model, images, "--batch-size", "8", "--top-k", "2", "-o", tmp_path / "local.csv"
    )
    ray_ = cli(
        "predict",
        model,
        images,
        "--batch-size",
        "8",
        "--top-k",
        "2",
        "-o",
        tmp_path / "ray.csv",
        "--engine",
        "ray",
    )
    assert local.exit_code == ray_.exit_code == 2, ray_.output  # the broken file
    assert "broken.png" in ray_.output
    text = (tmp_path / "ray.csv").read_text()
    assert text == (tmp_path / "local.csv").read_text()
    assert len(text.splitlines()) == 151


def test_update_on_ray_equals_a_local_update(cluster, facade, tmp_path, write_image):
    """A stable-shard dataset updated after adding, removing, relabelling and re-encoding
    images, once on the cluster and once here: the same files, byte for byte; the shards
    the changes did not touch keep their bytes and mtimes on both."""
    import numpy as np

    images, labels = facade
    work = tmp_path / "in"
    shutil.copytree(images, work)
    table = work / "labels.csv"
    options = {"labels": table, "shard_size": 6, "test": 0.1}
    build_dataset(work, tmp_path / "local", **options)
    shutil.copytree(tmp_path / "local", tmp_path / "ray", copy_function=shutil.copy2)
    lines = table.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    removed = rows.pop(5).split(",")[1]
    (work / removed).unlink()
    cells = rows[7].split(",")  # relabelled: the other class (name and index)
    other = next(r.split(",") for r in rows if r.split(",")[3] != cells[3])
    rows[7] = ",".join([cells[0], cells[1], other[2], other[3]])
    reencoded = rows[9].split(",")[1]
    rng = np.random.default_rng(0)
    with open(work / reencoded, "rb") as f:
        from PIL import Image

        size = Image.open(f).size
    write_image(work / reencoded, rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8))
    for k in range(2):  # two new photos, copies of others' pixels under new names
        src = rows[20 + k].split(",")
        shutil.copy(work / src[1], work / f"a/new{k}.png")
        rows.append(",".join([str(1000 + k), f"a/new{k}.png", src[2], src[3]]))
    table.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")

    def state(ds):
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in ds.glob("*.tfrecord")}

    before = state(tmp_path / "ray")
    local = build_dataset(work, tmp_path / "local", update=True, **options)
    ray_ = build_dataset(work, tmp_path / "ray", update=True, engine="ray", **options)
    same_folders(tmp_path / "local", tmp_path / "ray")
    assert ray_.shards == local.shards and 1 <= ray_.shards["written"] <= 6
    after = state(tmp_path / "ray")
    kept = [n for n in after if before.get(n) == after[n]]
    assert len(kept) == ray_.shards["kept"] >= len(before) - 6
    assert "Ray: " in ray_.notes[-1] and f"{ray_.shards['written']} written" in ray_.notes[-1]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
