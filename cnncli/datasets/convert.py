"""The conversion step of a build (cnncli.datasets.build), whatever engine runs it: what an
engine is given (`ConvertJob`: the plan, decided before any work is sent out) and what it
hands back (`Converted`), the seeded order of the records, and the local engine.

The local engine converts the rows in a thread or process pool on this machine
(cnncli.datasets.workers) and streams the records, in the seeded order, into shards that are
cut when full (cnncli.datasets.shards). Other engines (cnncli.datasets.ray_engine) must write
the same bytes: the same records, in the same order, cut at the same places.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnncli.datasets.plan import Plan, with_warnings
from cnncli.datasets.shards import ShardSet
from cnncli.datasets.workers import converted_records, describe_pool
from cnncli.images import Conversions
from cnncli.progress import Counter as ProgressCounter
from cnncli.progress import Progress


@dataclass
class ConvertJob:
    """What an engine converts: `plan` (rows, splits, image spec), read from `images_dir`,
    written into `folder` (the build's temporary folder) in shards of `shard_limit`
    (cnncli.datasets.shards.parse_shard_size), in the order `seed` gives."""

    plan: Plan
    images_dir: Path
    folder: Path
    shard_limit: tuple[str, int]
    record_format: str
    pool: tuple[str, int]
    seed: int
    skip_bad: bool
    progress: Progress | None = None

    def writing(self) -> bool:
        """False when a problem found before converting means nothing will be written: the
        images are then only checked, to list every problem."""
        plan = self.plan
        return not plan.blockers and (self.skip_bad or not plan.problems)

    def task(self, i: int) -> tuple:
        """Row i as cnncli.datasets.workers.convert_record takes it."""
        row = self.plan.rows[i]
        return (
            str(self.images_dir / row.path),
            self.plan.spec.to_dict(),
            self.record_format,
            i,
            row.label,
            row.name,
        )


@dataclass
class Converted:
    """An engine's result: {row: source sha256}, the rows that failed (added to
    plan.problems), what the conversion changed, {split: shard file names} and the
    engine's words for the notes ('2 worker threads')."""

    sha: dict[int, str]
    bad: set[int]
    changed: Conversions
    shard_names: dict[str, list[str]]
    described: str


def record_order(n: int, seed: int) -> list[int]:
    """The rows' order in the shards: a seeded permutation, the same on every engine."""
    return np.random.default_rng([seed, 7919]).permutation(n).tolist() if n else []


class LocalEngine:
    """Converts on this machine, in a thread or process pool (job.pool)."""

    name = "local"

    def convert(self, job: ConvertJob) -> Converted:
        with ShardSet(job.folder, job.shard_limit) as shards:
            sha, bad, changed = _convert(job, shards)
            names = shards.finish()
        return Converted(sha, bad, changed, names, describe_pool(job.pool))


def _convert(job: ConvertJob, shards: ShardSet):
    """Convert every row in the seeded order (the shards' order) and write the records,
    unless a problem means nothing will be written: then only check, to list every problem.
    -> ({row: source sha256}, {rows that failed}, what the conversion changed in the rows
    written); failures are added to plan.problems."""
    plan = job.plan
    rows = plan.rows
    order = record_order(len(rows), job.seed)
    sha: dict[int, str] = {}
    bad: set[int] = set()
    changed = Conversions()
    writing = job.writing()
    counter = ProgressCounter(job.progress, len(rows))
    counter.start()
    # closing(): the pool stops at once on an error or Ctrl-C, not when garbage collected
    tasks = (job.task(i) for i in order)
    with closing(converted_records(tasks, job.pool)) as results:
        for i, (status, payload, sha[i], kinds, said) in zip(order, results, strict=True):
            if status == "ok":
                changed.merge(kinds)
                plan.warned += [(rows[i].name, m) for m in said]
                if writing:
                    shards.write(plan.splits[i], payload)
            else:
                plan.problems.append((rows[i].name, with_warnings(payload, said)))
                bad.add(i)
                writing = job.skip_bad and not plan.blockers
            counter.add()
    return sha, bad, changed
