"""cnncli.datasets.tfdata: the tf.data view of a dataset split equals the records on disk."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.errors import UsageError


def _make_images(write_image, root, n_per_class=12, size=16, classes=("a", "b", "c")):
    rng = np.random.default_rng(1)
    for k, c in enumerate(classes):
        for i in range(n_per_class):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            arr[: size // 2, :, k % 3] = 255
            write_image(root / c / f"{i}.png", arr)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, write_image):
    from cnncli.datasets.build import build_dataset

    base = tmp_path_factory.mktemp("tfdata")
    images = _make_images(write_image, base / "images")
    out = {}
    for enc in ("raw", "png"):
        build_dataset(images, base / enc, val=0.25, record_format=enc, shard_size="2KB", workers=1)
        out[enc] = base / enc
    return out


def _paths(ds):
    return [p.decode() for batch in ds for p in batch[2].numpy()]


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_pixels_labels_and_paths_equal_the_records(datasets, encoding):
    from cnncli.datasets.store import iter_records, open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    info = open_dataset(datasets[encoding])
    ref = {r.path: r for r in iter_records(info, "train")}
    ds = make_tf_dataset(info, "train", batch_size=5, with_paths=True)
    seen = 0
    for x, y, p in ds:
        assert x.dtype.name == "float32" and y.dtype.name == "int32"
        assert x.shape[1:] == (16, 16, 3)
        for xi, yi, pi in zip(x.numpy(), y.numpy(), p.numpy(), strict=True):
            r = ref[pi.decode()]
            np.testing.assert_array_equal(xi, r.image.astype(np.float32))
            assert yi == r.label
            seen += 1
    assert seen == info.count("train") == 27
    # without paths: (image, label) pairs, last batch smaller unless drop_remainder
    sizes = [int(x.shape[0]) for x, _ in make_tf_dataset(info, "train", batch_size=5)]
    assert sizes == [5, 5, 5, 5, 5, 2]
    sizes = [
        int(x.shape[0])
        for x, _ in make_tf_dataset(info, "train", batch_size=5, drop_remainder=True)
    ]
    assert sizes == [5] * 5


def test_seeded_shuffle_per_epoch_and_resume_order(datasets):
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset, steps_per_epoch

    info = open_dataset(datasets["raw"])
    steps = steps_per_epoch(info, "train", 4)
    kw = dict(batch_size=4, shuffle=True, seed=7, repeat=True, with_paths=True)
    full = _paths(make_tf_dataset(info, "train", first_epoch=0, last_epoch=3, **kw))
    n = info.count("train")
    epochs = [full[i * n : (i + 1) * n] for i in range(3)]
    assert len(full) == 3 * n and steps == 7
    assert all(sorted(e) == sorted(epochs[0]) for e in epochs)  # every image once per epoch
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled each epoch
    again = _paths(make_tf_dataset(info, "train", first_epoch=0, last_epoch=3, **kw))
    assert again == full  # same seed, same order
    resumed = _paths(make_tf_dataset(info, "train", first_epoch=2, last_epoch=3, **kw))
    assert resumed == epochs[2]  # a run resumed at epoch 3 sees epoch 3's order
    other = _paths(make_tf_dataset(info, "train", first_epoch=0, last_epoch=1, **{**kw, "seed": 8}))
    assert other != epochs[0]


def test_pipelines_run_without_tf_data_autotuning(datasets):
    """Autotuning is off in every pipeline (and in those made from one, as fit's one-hot
    labels are): its thread held a used iterator's deletion, and so fit's return after the
    last epoch, for 0.5-1.7 s in about one run of six."""
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    info = open_dataset(datasets["raw"])
    train = make_tf_dataset(info, "train", batch_size=4, shuffle=True, repeat=True, last_epoch=2)
    for ds in (train, make_tf_dataset(info, "val", batch_size=4), train.map(lambda x, y: (x, y))):
        assert ds.options().autotune.enabled is False


def test_sharding_by_file_and_cache_modes(datasets, tmp_path):
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    info = open_dataset(datasets["raw"])
    assert len(info.shard_paths("train")) >= 2
    all_paths = _paths(make_tf_dataset(info, "train", batch_size=8, with_paths=True))
    parts = [
        _paths(
            make_tf_dataset(
                info, "train", batch_size=8, with_paths=True, num_shards=2, shard_index=i
            )
        )
        for i in (0, 1)
    ]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(all_paths)

    disk = make_tf_dataset(
        info, "train", batch_size=8, with_paths=True, cache="disk", cache_dir=tmp_path / "c"
    )
    assert _paths(disk) == all_paths and _paths(disk) == all_paths
    assert any((tmp_path / "c").iterdir())  # the cache file was written
    none = make_tf_dataset(info, "train", batch_size=8, with_paths=True, cache="none")
    assert _paths(none) == all_paths


def test_bad_options(datasets):
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    info = open_dataset(datasets["raw"])
    with pytest.raises(UsageError, match="unknown cache mode 'ram'"):
        make_tf_dataset(info, "train", batch_size=4, cache="ram")
    with pytest.raises(UsageError, match="batch size must be at least 1"):
        make_tf_dataset(info, "train", batch_size=0)
    with pytest.raises(UsageError, match="shard index 2 is not in 0..1"):
        make_tf_dataset(info, "train", batch_size=4, num_shards=2, shard_index=2)


def test_fixed_epoch_steps_wrap_and_class_weights(datasets):
    """Multi-worker epochs: exactly `epoch_steps` full batches per epoch, wrapping around a
    short shard; class weights as a third element."""
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset, shard_files

    info = open_dataset(datasets["raw"])
    files = shard_files(info, "train", 2, 1)
    ds = make_tf_dataset(
        info,
        "train",
        batch_size=3,
        shuffle=True,
        repeat=True,
        first_epoch=0,
        last_epoch=2,
        num_shards=2,
        shard_index=1,
        epoch_steps=5,
        class_weight={0: 0.5, 1: 2.0},
    )
    batches = list(ds)
    assert len(batches) == 10  # 2 epochs x 5 steps, whatever the shard holds
    assert all(len(b) == 3 and b[0].shape[0] == 3 for b in batches)  # full batches only
    for _x, y, w in batches:
        want = [{0: 0.5, 1: 2.0}.get(int(c), 1.0) for c in y.numpy()]  # unlisted: 1.0
        np.testing.assert_allclose(w.numpy(), want)
    assert len(files) >= 1 and all(f.endswith(".tfrecord") for f in files)


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_task_labels_come_out_as_float_vectors_in_raw_units(task, sample_data, tmp_path):
    """multilabel: float32 [L] multi-hot; regression: float32 [T] in the table's units; the
    same seeded shuffle as classification."""
    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import iter_records, open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    if task == "multilabel":
        folder = sample_data / "multishapes"
        kw = dict(labels=folder / "labels.csv", label_col="tags")
    else:
        folder = sample_data / "facade"
        kw = dict(labels=folder / "measures.csv", target_cols=["brightness", "wall"])
    build_dataset(folder, tmp_path / "ds", task=task, shard_size="40KB", workers=1, **kw)
    info = open_dataset(tmp_path / "ds")
    ref = {r.path: r.label for r in iter_records(info, "val")}
    width = 3 if task == "multilabel" else 2
    ds = make_tf_dataset(info, "val", batch_size=4, shuffle=True, seed=5, with_paths=True)
    order = []
    for _x, y, p in ds:
        assert y.dtype.name == "float32" and y.shape[1:] == (width,)
        for yi, pi in zip(y.numpy(), p.numpy(), strict=True):
            np.testing.assert_array_equal(yi, ref[pi.decode()])
            order.append(pi.decode())
    assert sorted(order) == sorted(ref) and len(info.shard_paths("val")) > 1
    again = make_tf_dataset(info, "val", batch_size=4, shuffle=True, seed=5, with_paths=True)
    assert _paths(again) == order
    if task == "regression":
        assert max(v[0] for v in ref.values()) > 150  # brightness in 0..255, not standardized
