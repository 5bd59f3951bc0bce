"""The input pipelines of a fit (cnncli.training.loop): the train split repeated over the
run's epochs and shuffled per epoch (seeded), the val split, the steps of an epoch and the
class weights; on several workers each reads its own shard files at the global batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnncli.datasets.store import DatasetInfo
from cnncli.training import distribute
from cnncli.training.model import class_weights
from cnncli.training.options import TrainOptions
from cnncli.training.tasks import with_label_weights, with_one_hot_labels


def fit_inputs(
    info: DatasetInfo,
    opts: TrainOptions,
    plan: distribute.StrategyPlan,
    strategy: Any,
    initial_epoch: int,
    cache_dir: Path | None,
    one_hot: bool = False,
) -> tuple:
    """(train, val or None, steps per epoch, class weights for fit, distribution details);
    `one_hot`: class indices as one-hot rows (a label-smoothed softmax head); `strategy`:
    the tf.distribute strategy a multi-worker `plan` trains under."""
    from cnncli.datasets.tfdata import make_tf_dataset, shard_files, steps_per_epoch

    has_val = info.count("val") > 0
    weights = class_weights(info) if opts.class_weight == "auto" else None
    per_label = None  # multilabel: a weight per (image, label), put in the data
    if info.task == "multilabel" and weights is not None:
        per_label, weights = weights, None
    common: dict[str, Any] = {"cache": opts.cache, "cache_dir": cache_dir}
    # one spare epoch: Keras may look one batch ahead
    assert opts.epochs is not None  # filled in by TrainOptions.for_dataset (or the run.json)
    epochs: dict[str, Any] = {
        "repeat": True,
        "first_epoch": initial_epoch,
        "last_epoch": opts.epochs + 1,
    }
    if not plan.multi_worker:
        train_ds = make_tf_dataset(
            info,
            "train",
            batch_size=opts.batch_size,
            shuffle=True,
            seed=opts.seed,
            **epochs,
            **common,
        )
        if per_label is not None:
            train_ds = with_label_weights(train_ds, per_label)
        val_ds = (
            make_tf_dataset(info, "val", batch_size=opts.batch_size, **common) if has_val else None
        )
        train_ds, val_ds = (with_one_hot_labels(d, info, one_hot) for d in (train_ds, val_ds))
        steps = steps_per_epoch(info, "train", opts.batch_size)
        return train_ds, val_ds, steps, weights, {}

    # Several workers: each reads its own train shard files and runs the same number of
    # steps (an epoch is one pass over the whole train split at the global batch); every
    # worker evaluates the whole val split, so the val metrics are those of one machine.
    n, global_batch = plan.num_workers, opts.batch_size * plan.num_workers
    steps = -(-info.count("train") // global_batch)
    read: dict[int, list[str]] = {}

    def train_fn(ctx):
        files = shard_files(info, "train", ctx.num_input_pipelines, ctx.input_pipeline_id)
        read[ctx.input_pipeline_id] = [Path(f).name for f in files]
        per_worker = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        ds = make_tf_dataset(
            info,
            "train",
            batch_size=ctx.get_per_replica_batch_size(global_batch),
            shuffle=True,
            seed=opts.seed,
            num_shards=ctx.num_input_pipelines,
            shard_index=ctx.input_pipeline_id,
            epoch_steps=steps * per_worker,
            class_weight=weights,
            **epochs,
            **common,
        )
        if per_label is not None:
            ds = with_label_weights(ds, per_label)
        return distribute.auto_shard_off(with_one_hot_labels(ds, info, one_hot))

    def val_fn(ctx):
        batch = ctx.get_per_replica_batch_size(global_batch)
        ds = make_tf_dataset(info, "val", batch_size=batch, **common)
        return distribute.auto_shard_off(with_one_hot_labels(ds, info, one_hot))

    train_ds = strategy.distribute_datasets_from_function(train_fn)
    val_ds = strategy.distribute_datasets_from_function(val_fn) if has_val else None
    every = [p.name for p in info.shard_paths("train")]
    detail = {
        **plan.to_dict(),
        "worker": plan.rank,
        "per_worker_batch": opts.batch_size,
        "global_batch": global_batch,
        "steps_per_epoch": steps,
        "read_shards": read.get(plan.rank, []),
        "train_shards": {str(r): every[r::n] for r in range(n)},
    }
    return train_ds, val_ds, steps, None, detail  # class weights are in the data
