"""A dataset split as a `tf.data.Dataset`: parallel shard reads, decode, cache, seeded
shuffle, batch, prefetch. Used by training and evaluation.

Images come out as float32 0..255 (H, W, C); labels as the dataset's task has them: a class
index int32 (classify), a float32 [L] multi-hot (multilabel) or float32 [T] targets in the
table's own units (regression: the model standardizes them). Models trained by cnncli rescale
inside the model, so the same raw pixels reach it at training and at use.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from cnncli.datasets.store import DatasetInfo
from cnncli.errors import DatasetError, UsageError

CACHE_MODES = ("memory", "disk", "none")
# Without an in-memory cache the shuffle buffer is what bounds memory: this many images.
BOUNDED_SHUFFLE_BUFFER = 2048


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: derived from (seed, epoch) so a resumed run that
    starts at epoch e sees the same order as an uninterrupted run did at epoch e."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2**31 - 1)


def _features(info: DatasetInfo) -> dict:
    if info.task == "regression":
        label = {"target": tf.io.FixedLenFeature([len(info.targets)], tf.float32)}
    elif info.task == "multilabel":
        label = {"label": tf.io.FixedLenFeature([info.num_classes], tf.int64)}
    else:
        label = {"label": tf.io.FixedLenFeature([1], tf.int64)}
    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        **label,
        "path": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def _label(ex: dict, task: str):
    if task == "regression":
        return ex["target"]
    if task == "multilabel":
        return tf.cast(ex["label"], tf.float32)
    return tf.cast(ex["label"][0], tf.int32)


def _decoder(info: DatasetInfo, with_paths: bool):
    spec, encoding = info.image, info.encoding
    shape = (spec.height, spec.width, spec.channels)
    features, task = _features(info), info.task
    if not with_paths:
        features.pop("path")
    if encoding not in ("raw", "png"):
        raise DatasetError(f"dataset {info.path} uses record encoding {encoding!r}, unknown here")

    def decode(serialized):
        ex = tf.io.parse_single_example(serialized, features)
        if encoding == "raw":
            image = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), shape)
        else:
            image = tf.io.decode_png(ex["image"], channels=spec.channels)
            image = tf.ensure_shape(image, shape)
        label = _label(ex, task)
        if with_paths:
            return image, label, ex["path"]
        return image, label

    return decode


def _to_float(*item):
    return (tf.cast(item[0], tf.float32), *item[1:])


def make_tf_dataset(
    info: DatasetInfo,
    split: str,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache: str = "memory",
    cache_dir: str | os.PathLike | None = None,
    repeat: bool = False,
    first_epoch: int = 0,
    last_epoch: int | None = None,
    with_paths: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    drop_remainder: bool = False,
    epoch_steps: int | None = None,
    class_weight: dict[int, float] | None = None,
) -> tf.data.Dataset:
    """A split of an opened dataset as batches of (image float32 0..255, label) [+ path
    bytes]: label int32 (classify), float32 [L] multi-hot (multilabel) or float32 [T] raw
    targets (regression).

    - Shards are read in parallel (deterministic order); `num_shards`/`shard_index` take
      every num_shards-th shard FILE (for multi-worker training).
    - `cache`: 'memory' keeps decoded uint8 images in RAM after the first pass; 'disk'
      writes them to a cache file under `cache_dir` (memory stays bounded); 'none' reads
      the shards every epoch.
    - `shuffle` with `repeat=True` and `last_epoch`: epochs first_epoch..last_epoch-1 in
      a row, each shuffled with `epoch_seed(seed, epoch)`, so a run resumed at epoch e
      sees the order an uninterrupted run saw (give fit `steps_per_epoch`). Without
      `last_epoch`: endless, reshuffled each pass. Without repeat: one pass, reshuffled on
      each iteration.
    - `epoch_steps` (with repeat, shuffle and last_epoch): every epoch is exactly this many
      full batches, wrapping around the split when it is shorter (multi-worker training:
      every worker must run the same number of steps whatever its shards hold).
    - `class_weight`: a third element, the weight of each image's class (as Keras'
      class_weight, which cannot map a distributed dataset).
    """
    if cache not in CACHE_MODES:
        raise UsageError(f"unknown cache mode {cache!r}", f"use one of {', '.join(CACHE_MODES)}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    files = shard_files(info, split, num_shards, shard_index)
    count = info.count(split)

    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8) or None)
    ds = ds.map(_decoder(info, with_paths), num_parallel_calls=tf.data.AUTOTUNE)
    if cache == "memory":
        ds = ds.cache()
    elif cache == "disk":
        if cache_dir is None:
            raise UsageError("cache='disk' needs a cache_dir")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        name = f"{info.sha256[:16]}-{split}-{shard_index}of{num_shards}"
        ds = ds.cache(str(Path(cache_dir) / name))

    # With everything in memory a full shuffle costs nothing extra; otherwise bound it.
    buffer = max(1, count if cache == "memory" else min(count, BOUNDED_SHUFFLE_BUFFER))

    def one_epoch(source, epoch_seed_value, reshuffle):
        if shuffle:
            source = source.shuffle(
                buffer, seed=epoch_seed_value, reshuffle_each_iteration=reshuffle
            )
        if epoch_steps is not None:
            return source.repeat().batch(batch_size, drop_remainder=True).take(epoch_steps)
        return source.batch(batch_size, drop_remainder=drop_remainder)

    if repeat and shuffle and last_epoch is not None:
        # One dataset per epoch, each shuffled with its own Python-int seed, chained by a
        # flat choose_from_datasets (a tensor seed in flat_map breaks under op determinism,
        # and a concatenate chain gets slower with every epoch). They share one cache.
        steps = -(-count // batch_size) if not drop_remainder else count // batch_size
        steps = steps if epoch_steps is None else epoch_steps
        epochs = range(first_epoch, last_epoch)
        if not epochs or steps == 0:
            raise UsageError(f"no epochs to read ({first_epoch}..{last_epoch})")
        per_epoch = [one_epoch(ds, epoch_seed(seed, e), False) for e in epochs]
        choice = tf.data.Dataset.range(len(per_epoch)).flat_map(
            lambda i: tf.data.Dataset.from_tensors(i).repeat(steps)
        )
        ds = tf.data.Dataset.choose_from_datasets(per_epoch, choice)
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps * len(per_epoch)))
    elif repeat:
        ds = one_epoch(ds, epoch_seed(seed, first_epoch), True).repeat()
    else:
        ds = one_epoch(ds, epoch_seed(seed, first_epoch), True)
        # a known length lets Keras size its progress and skip probing for the end
        n_files = len(info.shard_paths(split))
        if num_shards == 1 or n_files == len(files):
            batches = count // batch_size if drop_remainder else -(-count // batch_size)
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    ds = ds.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if class_weight:
        table = tf.constant(
            [float(class_weight.get(i, 1.0)) for i in range(info.num_classes)], tf.float32
        )
        ds = ds.map(lambda x, y, *rest: (x, y, tf.gather(table, y), *rest))
    # tf.data's autotuning off (in this pipeline and those made from it): its model thread,
    # when caught busy, held the deletion of a used iterator, and so `model.fit`'s return
    # after the last epoch, for 0.5-1.7 s in about one run of six (measured on the default
    # digits run: 2 of 16 fits against 0 of 16 without it). Without it AUTOTUNE parallelism
    # is the core count and the prefetch buffer still grows by itself; the epochs took as
    # long (the data in memory feeds the step 20-50x faster than it trains).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def shard_files(
    info: DatasetInfo, split: str, num_shards: int = 1, shard_index: int = 0
) -> list[str]:
    """The shard files of `split` that worker `shard_index` of `num_shards` reads (every
    num_shards-th file from shard_index: multi-worker training splits shards by file)."""
    if not 0 <= shard_index < num_shards:
        raise UsageError(f"shard index {shard_index} is not in 0..{num_shards - 1}")
    every = [str(p) for p in info.shard_paths(split)]
    files = every[shard_index::num_shards]
    if not files:
        raise DatasetError(
            f"split {split!r} of {info.path} has {len(every)} shard file(s), "
            f"none for worker {shard_index} of {num_shards}",
            "build the dataset with smaller shards (--shard-size) or use fewer workers",
        )
    return files


def steps_per_epoch(
    info: DatasetInfo, split: str, batch_size: int, drop_remainder: bool = False
) -> int:
    n = info.count(split)
    return n // batch_size if drop_remainder else -(-n // batch_size)
