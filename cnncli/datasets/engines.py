"""Which engine converts a build's images and writes its shards: `local` (this machine's
cores, the default) or `ray` (the nodes of a Ray cluster, cnncli.datasets.ray_engine).

An engine is an object with `name` and `convert(ConvertJob) -> Converted`
(cnncli.datasets.convert); another one (Apache Beam) would be one more entry here. The
options are checked, and a cluster reached, before any image is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnncli.datasets.buckets import StableEngine, StableLayout
from cnncli.datasets.convert import LocalEngine
from cnncli.errors import UsageError

if TYPE_CHECKING:
    from cnncli.datasets.ray_engine import RayEngine

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'cnncli[ray]'"


def open_engine(
    name: str = "local",
    address: str | None = None,
    *,
    record_format: str = "raw",
    shard_limit: tuple[str, int] = ("images", 1),
    stable: bool = False,
) -> Any:
    """The engine called `name`, ready to convert: for 'ray', connected to the cluster at
    `address` (HOST:PORT, 'auto' for the one started on this machine with `ray start`, or
    None: RAY_ADDRESS, else a cluster of this machine's cores started for the build).
    Raises UsageError for an unknown engine, Ray not installed, or options the engine
    cannot honour; InputError when the cluster cannot be reached. `stable`: the build will
    be a stable-shard one (`stable_engine`), whose shards are counted before any decode."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}", f"use one of {', '.join(ENGINES)}")
    if name == "local":
        if address is not None:
            raise UsageError("--address is for --engine ray", "add --engine ray, or drop --address")
        return LocalEngine()
    if not ray_installed():
        raise UsageError("--engine ray needs Ray, which is not installed", RAY_INSTALL)
    if not stable and record_format != "raw" and shard_limit[0] == "bytes":
        raise UsageError(
            f"--engine ray cuts {record_format} shards by a number of images, not by bytes",
            "give --shard-size as a number of images (--shard-size 500)",
        )
    from cnncli.datasets.ray_engine import RayEngine

    return RayEngine(address)


def stable_engine(engine: LocalEngine | RayEngine, layout: StableLayout) -> Any:
    """The engine that writes the stable-shard build `layout` (an update's too) where
    `engine` (open_engine's) converts: this machine, or its Ray cluster."""
    if engine.name == "local":
        return StableEngine(layout)
    from cnncli.datasets.ray_buckets import RayBuckets

    assert not isinstance(engine, LocalEngine)
    return RayBuckets(engine, layout)


def ray_installed() -> bool:
    """Whether Ray can be imported (an ImportError of any kind counts as not installed)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True
