"""Where training runs: one device, several devices of one machine, or several machines.

`plan_strategy(name, workers=..., worker_index=...)` turns `--strategy` (and TF_CONFIG or
`--workers host:port,... --worker-index I`) into a `StrategyPlan`; `create_strategy(plan)`
then makes the `tf.distribute` strategy (and sets TF_CONFIG first for `--workers`).

- one-device: TensorFlow's default strategy (Keras' own path, no wrapper); what `auto` picks
  on one machine. `--strategy one-device` pins `OneDeviceStrategy` on the first GPU, else
  the CPU.
- mirrored: `MirroredStrategy` over the machine's devices; --batch-size is the machine's
  batch, split between its devices.
- multi-worker: `MultiWorkerMirroredStrategy`. Each worker reads its own train shard files
  (worker i of n: files i, i+n, ...), --batch-size is per worker, and the global batch is
  batch x workers. Only the chief (worker 0) writes the run folder.

Keras 3.15's `fit` does not run under a real (two or more process) MultiWorkerMirroredStrategy
as shipped: `_maybe_symbolic_build` reduces the first batch's (x, y) tuple across workers
and `reduce_per_replica` reduces scalar metrics along axis 0; both raise. `prepare_model`
builds the model before `fit` (so fit needs no first batch for it), and `keras_workarounds`
reduces scalars over all axes, only while a multi-worker `fit` runs. With these, the
two-process test trains, and the chief's val metrics equal Keras' evaluate of its model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.errors import UsageError

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass
class StrategyPlan:
    """The resolved strategy. `rank` numbers the workers from 0 (the chief)."""

    kind: str  # one-device | mirrored | multi-worker
    requested: str = "auto"
    explicit: bool = False  # one-device asked for by name: OneDeviceStrategy
    workers: list[str] = field(default_factory=list)  # host:port of every worker, chief first
    rank: int = 0
    tf_config: dict | None = None  # set as TF_CONFIG before the strategy is made
    source: str = ""  # where the cluster came from: TF_CONFIG or --workers

    @property
    def num_workers(self) -> int:
        return max(1, len(self.workers))

    @property
    def multi_worker(self) -> bool:
        return self.kind == "multi-worker"

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        if self.multi_worker:
            role = "chief" if self.is_chief else "writes nothing"
            return (
                f"multi-worker: worker {self.rank} of {self.num_workers} ({role}), "
                f"cluster from {self.source}"
            )
        if self.kind == "mirrored":
            return "mirrored: every device of this machine"
        return "one device" + (" (OneDeviceStrategy)" if self.explicit else "")

    def to_dict(self) -> dict:
        return {
            "strategy": self.kind,
            "requested": self.requested,
            "workers": self.workers,
            "num_workers": self.num_workers,
            "source": self.source or None,
        }


# ----------------------------------------------------------------------- the cluster
def parse_workers(text: str) -> list[str]:
    """'host:port,host:port' -> ['host:port', ...], checked."""
    workers = [w.strip() for w in str(text).split(",") if w.strip()]
    if not workers:
        raise UsageError("--workers is empty", "give host:port,host:port (the chief first)")
    for w in workers:
        m = _HOST_PORT.match(w)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise UsageError(
                f"--workers: {w!r} is not host:port",
                "give every worker as host:port, e.g. 10.0.0.1:12345,10.0.0.2:12345",
            )
    if len(set(workers)) != len(workers):
        raise UsageError("--workers names a worker twice", "give each host:port once")
    return workers


def build_tf_config(workers: list[str], index: int) -> dict:
    """The standard TF_CONFIG of worker `index` in a cluster of `workers` (chief: 0)."""
    if not 0 <= index < len(workers):
        raise UsageError(
            f"--worker-index {index} is not in 0..{len(workers) - 1}",
            f"number the {len(workers)} workers from 0 (the chief) in the order of --workers",
        )
    return {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}


def read_tf_config(text: str) -> tuple[list[str], int]:
    """TF_CONFIG JSON -> (every worker's host:port with the chief first, this task's rank).
    A cluster with a 'chief' job numbers it 0 and the workers after it, as TensorFlow does."""
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = str(task["type"]), int(task["index"])
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(
            f"TF_CONFIG is not a cluster description ({type(e).__name__}: {e})",
            'set it like {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}',
        ) from None
    if kind not in ("chief", "worker") or len(chiefs) > 1:
        raise UsageError(
            f"TF_CONFIG task type {kind!r} (with {len(chiefs)} chief(s)) cannot train here",
            "cnncli trains with 'worker' tasks and at most one 'chief'",
        )
    everyone = chiefs + workers
    rank = index if kind == "chief" else len(chiefs) + index
    if not everyone or not 0 <= rank < len(everyone):
        raise UsageError(f"TF_CONFIG task {kind} {index} is not in its cluster")
    return everyone, rank


def plan_strategy(
    name: str = "auto",
    *,
    workers: str | list[str] | None = None,
    worker_index: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> StrategyPlan:
    """Resolve --strategy. auto: multi-worker when --workers or TF_CONFIG is given, else
    one device. --workers (with --worker-index) wins over TF_CONFIG."""
    env = os.environ if environ is None else environ
    name = (name or "auto").lower()
    if name not in STRATEGIES:
        raise UsageError(f"unknown --strategy {name!r}", f"use one of {', '.join(STRATEGIES)}")
    tf_config_text = env.get("TF_CONFIG", "").strip()
    if worker_index is not None and workers is None:
        raise UsageError("--worker-index needs --workers", "give --workers host:port,host:port")
    cluster: tuple[list[str], int, dict | None, str] | None = None
    if workers is not None:
        listed = parse_workers(workers) if isinstance(workers, str) else list(workers)
        if worker_index is None:
            raise UsageError(
                "--workers needs --worker-index", "give each worker its number: 0 is the chief"
            )
        config = build_tf_config(listed, worker_index)
        cluster = (listed, worker_index, config, "--workers")
    elif tf_config_text:
        listed, rank = read_tf_config(tf_config_text)
        cluster = (listed, rank, None, "TF_CONFIG")
    requested = name
    if name == "auto":
        name = "multi-worker" if cluster else "one-device"
    if name == "multi-worker":
        if cluster is None:
            raise UsageError(
                "--strategy multi-worker needs the cluster",
                "set TF_CONFIG, or give --workers host:port,host:port --worker-index I",
            )
        listed, rank, tf_config, source = cluster
        return StrategyPlan("multi-worker", requested, True, listed, rank, tf_config, source)
    if cluster is not None and workers is not None:
        raise UsageError(f"--workers needs --strategy multi-worker (or auto), not {name}")
    return StrategyPlan(name, requested, explicit=requested == "one-device")


def create_strategy(plan: StrategyPlan) -> Any:
    """The tf.distribute strategy of `plan` (None: TensorFlow's default, Keras' own path).
    Call it before any other TensorFlow work: collective ops are configured at start-up."""
    import tensorflow as tf

    if plan.multi_worker:
        if plan.tf_config is not None:
            os.environ["TF_CONFIG"] = json.dumps(plan.tf_config)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if plan.kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if plan.explicit:
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    return None


# ----------------------------------------------------------------------- the data
def check_shards(count: int, num_workers: int, dataset: Path) -> None:
    """Refuse a train split with fewer shard files than workers (a worker would read
    nothing)."""
    if count < num_workers:
        raise UsageError(
            f"dataset {dataset} has {count} train shard file(s) for {num_workers} workers; "
            "every worker needs at least one",
            "build the dataset again with smaller shards, e.g. cnncli dataset build ... "
            f"--shard-size N with N at most (train images / {num_workers})",
        )


def auto_shard_off(ds: Any) -> Any:
    """Each worker already reads its own files: tell tf.distribute not to shard again."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


# ----------------------------------------------------------------------- Keras 3.15
def prepare_model(model: Any, strategy: Any, batch: tuple) -> None:
    """Build the model, its loss, metrics and optimizer before fit (inside the strategy's
    scope; None: TensorFlow's default) from one `batch` of NumPy arrays.

    Under a strategy this stops fit from pulling a first batch to do it (Keras reduces that
    batch across workers, which fails with two or more processes, and under any strategy it
    would take one batch from the first epoch). Without one, Keras builds the optimizer's
    and the metrics' variables while it traces the train step, and a tf.function that
    creates variables is traced twice: building first saved 0.9-1.9 s of the first epoch of
    the default digits run here (bench/bench_startup_train.py)."""
    if not hasattr(model, "_symbolic_build"):  # another Keras: leave fit as it is
        return
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = _no_build


def _no_build(iterator=None, data_batch=None):
    return None


@contextlib.contextmanager
def keras_workarounds(plan: StrategyPlan) -> Iterator[None]:
    """While a multi-worker fit runs: reduce per-replica scalars (loss, metrics) over all
    axes across workers, where Keras 3.15 reduces along axis 0 and fails."""
    if not plan.multi_worker:
        yield
        return
    from keras.src.backend.tensorflow import trainer

    original = getattr(trainer, "reduce_per_replica", None)
    if original is None or not hasattr(trainer, "_collective_all_reduce_multi_worker"):
        yield  # another Keras: nothing to work around here
        return

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            import tensorflow as tf

            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer.reduce_per_replica = original
