"""`cnncli predict --engine ray`: the images read and predicted by Ray actors, one model
load per actor, in batches; the rows come back in input order, the same rows as a local
predict (cnncli.inference.predict).

The driver opens the model first (so a bad model or option is refused before any work is
sent), cuts the files into chunks of CHUNK_BATCHES batches and hands them to a pool of
actors (ray.util.ActorPool: one per CPU of the cluster, given chunks as they free up);
each actor predicts its chunk exactly as a local predict does (a PredictStream over the
model it opened once) and sends back the rows, the files it skipped and what it converted.
The model file and the images must be at the same paths on every node (a shared folder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cnncli.datasets.engines import ENGINES, RAY_INSTALL, ray_installed
from cnncli.datasets.ray_engine import check_nodes, connect
from cnncli.errors import ImageError, UsageError
from cnncli.inference.model import DEFAULT_BATCH
from cnncli.inference.predict import PredictStream, predict_batches
from cnncli.progress import Counter, Progress

CHUNK_BATCHES = 4  # batches of files one actor call predicts
ACTOR_RETRIES = 3  # an actor whose worker or node died is started again this often


def predict_batches_on(engine: str = "local", address: str | None = None) -> Callable[..., Any]:
    """predict_batches (engine 'local') or predict_batches_ray at `address` ('ray')."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    if engine == "local":
        if address is not None:
            raise UsageError("--address is for --engine ray", "add --engine ray, or drop --address")
        return predict_batches
    return partial(predict_batches_ray, address=address)


def predict_batches_ray(
    model: Any,
    inputs: Sequence,
    top_k: int = 1,
    *,
    address: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    unsafe: bool = False,
    class_names: str | Sequence[str] | None = None,
    pixel_scale: str | float | None = None,
    tta: bool = False,
) -> RayPredictStream:
    """predict_batches (cnncli.inference.predict) on the Ray cluster at `address` (see
    cnncli.datasets.engines.open_engine): checks the options, opens the model and reaches
    the cluster now; iterating the stream yields the rows chunk by chunk, in input order."""
    if tta:
        raise UsageError(
            "--tta is not offered with --engine ray",
            "leave out one of them: --tta predicts on this machine",
        )
    if not ray_installed():
        raise UsageError("--engine ray needs Ray, which is not installed", RAY_INSTALL)
    local = predict_batches(
        model,
        inputs,
        top_k,
        batch_size=batch_size,
        unsafe=unsafe,
        class_names=class_names,
        pixel_scale=pixel_scale,
        threads=1,
    )
    import ray

    owned = not ray.is_initialized()
    if owned:
        connect(address)
    try:
        files = local.files
        check_nodes([model, *{files[0], files[-1]}], f"the model {model} and the images given")
    except BaseException:
        if owned:
            ray.shutdown()
        raise
    return RayPredictStream(
        local.model,
        local.files,
        top_k,
        batch_size,
        progress,
        source=str(model),
        options={"unsafe": unsafe, "class_names": class_names, "pixel_scale": pixel_scale},
        owned=owned,
    )


class Predictor:
    """The Ray actor: opens the model once, then predicts chunks of files."""

    def __init__(self, model: str, options: dict):
        from cnncli.inference.model import open_model

        self.info = open_model(model, **options)

    def predict(self, files: list[str], top_k: int, batch_size: int) -> tuple:
        """-> (rows, skipped (file, reason), Conversions) for these files."""
        stream = PredictStream(self.info, [Path(f) for f in files], top_k, batch_size)
        rows = []
        try:
            for batch in stream:
                rows += batch
        except ImageError:  # every file of the chunk unreadable: they are in stream.skipped
            pass
        return rows, stream.skipped, stream.changed


@dataclass
class RayPredictStream(PredictStream):
    """A PredictStream whose batches are predicted by Ray actors (one chunk at a time)."""

    source: str = ""
    options: dict | None = None
    owned: bool = False  # this process started the Ray connection, and ends it

    def __iter__(self):
        import ray
        from ray.util import ActorPool

        counter = Counter(self.progress, len(self.files))
        counter.start()
        size = self.batch_size * CHUNK_BATCHES
        chunks = [
            [str(f) for f in self.files[i : i + size]] for i in range(0, len(self.files), size)
        ]
        n = max(1, min(len(chunks), int(ray.cluster_resources().get("CPU", 1))))
        actor = ray.remote(Predictor).options(
            num_cpus=1, max_restarts=ACTOR_RETRIES, max_task_retries=ACTOR_RETRIES
        )
        actors = [actor.remote(self.source, self.options or {}) for _ in range(n)]
        produced = 0
        try:
            pool = ActorPool(actors)
            for rows, skipped, changed in pool.map(
                lambda a, c: a.predict.remote(c, self.top_k, self.batch_size), chunks
            ):
                self.skipped += skipped
                self.changed.merge(changed)
                counter.add(len(rows) + len(skipped))
                produced += len(rows)
                if rows:
                    yield rows
        finally:
            for a in actors:
                ray.kill(a)
            if self.owned:
                ray.shutdown()
        if not produced and self.skipped:  # as a local predict says it
            first, reason = self.skipped[0]
            raise ImageError(
                first,
                reason
                if len(self.skipped) == 1
                else f"{reason} (and {len(self.skipped) - 1} other file(s) could not be read)",
            )
