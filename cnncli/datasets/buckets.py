"""Writing a stable-shard build (cnncli.datasets.stable says where each record goes): which
buckets a build or an update writes and which it keeps (`plan_buckets`), the writing of one
bucket (`write_bucket`, the same on this machine and in a Ray task), and the local engine.

A bucket whose rows (path, source sha256, label) are all as they were is hard-linked from the
dataset updated (same bytes, same mtime); a changed bucket is written again, the records of
its unchanged rows copied from the old shard without decoding their images. The rows'
outcomes are merged bucket by bucket in (split, bucket) order and, within a bucket, in key
order, whichever engine wrote them, so the index, skipped.csv and manifest are the same.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.datasets.convert import Converted, ConvertJob
from cnncli.datasets.plan import with_warnings
from cnncli.datasets.shards import SPLITS, ShardWriter, shard_name
from cnncli.datasets.stable import Previous, bucket_of, record_index, row_key
from cnncli.datasets.tasks import index_label
from cnncli.datasets.tfrecord import frame, read_records
from cnncli.datasets.workers import converted_records, describe_pool
from cnncli.errors import DatasetError
from cnncli.images import Conversions
from cnncli.progress import Counter as ProgressCounter

if TYPE_CHECKING:
    from cnncli.datasets.plan import Plan

Key = tuple[str, int]  # (split, bucket)


@dataclass
class StableLayout:
    """A stable-shard build: {split: N buckets}, and the dataset it updates (None: a new one)."""

    buckets: dict[str, int]
    previous: Previous | None = None


@dataclass
class BucketPlan:
    """Where each row goes and what must be written: `members` the rows of each bucket in
    key order, `reuse` the rows whose old record is kept, `linked` the buckets kept whole,
    `dirty` the buckets written, in order; `old_members` the old dataset's paths by bucket."""

    layout: StableLayout
    members: dict[Key, list[int]]
    reuse: set[int]
    old_members: dict[Key, list[str]] = field(default_factory=dict)
    linked: set[Key] = field(default_factory=set)
    dirty: list[Key] = field(default_factory=list)

    def n(self, split: str) -> int:
        return self.layout.buckets[split]

    def old_shard(self, key: Key) -> Path | None:
        """The old dataset's shard of bucket `key`, if it has one."""
        prev = self.layout.previous
        if prev is None:
            return None
        name = shard_name(key[0], key[1], self.n(key[0]))
        listed = prev.info.manifest["splits"].get(key[0], {}).get("shards", [])
        return prev.info.path / name if name in listed else None

    def need(self) -> list[int]:
        """The rows to convert, in the order the dirty buckets are written."""
        return [i for k in self.dirty for i in self.members[k] if i not in self.reuse]

    def task(self, job: ConvertJob, i: int) -> tuple:
        """Row i as cnncli.datasets.workers.convert_record takes it: its index a hash of its
        path (cnncli.datasets.stable.record_index), not its position."""
        t = job.task(i)
        return (*t[:3], record_index(job.plan.rows[i].name), *t[4:])


def plan_buckets(plan: Plan, layout: StableLayout) -> BucketPlan:
    rows, prev = plan.rows, layout.previous
    members: dict[Key, list[int]] = {}
    for i, r in enumerate(rows):
        s = plan.splits[i]
        members.setdefault((s, bucket_of(s, r.name, layout.buckets[s])), []).append(i)
    for key, ids in members.items():
        ids.sort(key=lambda i: row_key(key[0], rows[i].name))
    reuse = {i for i, r in enumerate(rows) if prev and _same(prev, r, plan.splits[i])}
    bp = BucketPlan(layout, members, reuse)
    for name, (_, _, _, s, _) in prev.rows.items() if prev else ():
        if s in layout.buckets:
            key = (s, bucket_of(s, name, layout.buckets[s]))
            bp.old_members.setdefault(key, []).append(name)
    bp.linked = {
        k
        for k, ids in members.items()
        if prev
        and all(i in reuse for i in ids)
        and sorted(rows[i].name for i in ids) == sorted(bp.old_members.get(k, []))
        and bp.old_shard(k) is not None
    }
    bp.dirty = sorted((k for k in members if k not in bp.linked), key=_split_order)
    return bp


def write_bucket(
    folder: Path,
    key: Key,
    n: int,
    rows: list[tuple[int, str, bool]],
    old: tuple[str | None, list[str]],
    convert: Callable[[int], tuple],
    write: bool,
    stop_on_bad: bool,
) -> tuple[list[tuple], str | None]:
    """Write bucket `key` (of `n`) as its shard in `folder`: `rows` (row, path, reused) in
    key order, a reused row's record read from the old shard `old` (its path, and its rows'
    paths), another's from `convert(row)` (convert_record's result). Nothing is written
    when `write` is false, nor after a bad row when `stop_on_bad`. -> ([(row, status,
    reason, sha256, conversions, warnings)] of the rows converted, the shard's name or
    None when none was written)."""
    split = key[0]
    records = read_old_records(old[0], split, old[1]) if any(r[2] for r in rows) else {}
    writer = ShardWriter(folder, split, ("images", 1), bucket=(key[1], n))
    out = []
    for i, name, reused in rows:
        if reused:
            data = records[name]
        else:
            status, data, sha, kinds, said = convert(i)
            out.append((i, status, None if status == "ok" else data, sha, kinds, said))
            if status != "ok":
                write = write and not stop_on_bad
                continue
        if write:
            writer.write(data)
    if not write:
        writer.close_file()
        for part in writer.parts:
            part.unlink(missing_ok=True)
        return out, None
    names = writer.finish()
    return out, names[0] if names else None


def read_old_records(path: str | None, split: str, names: list[str]) -> dict[str, bytes]:
    """{path: framed record} of an old shard (empty when there is none): its records are
    its index.csv rows (`names`) in key order (CRCs checked, images not decoded)."""
    if path is None:
        return {}
    names = sorted(names, key=lambda name: row_key(split, name))
    with open(path, "rb") as f:
        records = [frame(data) for data in read_records(f, name=str(path))]
    if len(records) != len(names):
        raise DatasetError(
            f"{path} holds {len(records)} records, its index.csv rows {len(names)}",
            "build the dataset again with --overwrite",
        )
    return dict(zip(names, records, strict=True))


def merge_outcomes(
    plan: Plan, outcomes: list[tuple], sha: dict, bad: set, changed: Conversions
) -> None:
    """Add a bucket's converted rows to the build's results, as write_bucket gave them."""
    for i, status, reason, sha[i], kinds, said in outcomes:
        name = plan.rows[i].name
        if status == "ok":
            changed.merge(kinds)
            plan.warned += [(name, m) for m in said]
        else:
            plan.problems.append((name, with_warnings(reason, said)))
            bad.add(i)


def finish_buckets(
    bp: BucketPlan, job: ConvertJob, written: set[Key], writing: bool
) -> tuple[dict[str, list[str]], int]:
    """Link the kept buckets' old shards into the build's folder -> ({split: shard names},
    how many kept)."""
    kept = bp.linked if writing else set()
    for key in kept:
        old = bp.old_shard(key)
        assert old is not None  # a linked bucket is one the old dataset has
        _link(old, job.folder / shard_name(key[0], key[1], bp.n(key[0])))
    names = {
        s: [shard_name(s, b, bp.n(s)) for s2, b in sorted(written | kept) if s2 == s]
        for s in SPLITS
    }
    return names, len(kept)


def described(bp: BucketPlan, written: int, kept: int, engine: str) -> str:
    if bp.layout.previous is None:
        return engine
    return f"stable shards: {written} written, {kept} kept as they were; {engine}"


class StableEngine:
    """Writes a stable-shard build on this machine, reusing what an update's dataset has."""

    name = "local"

    def __init__(self, layout: StableLayout):
        self.layout = layout
        self.written = self.kept = 0

    def convert(self, job: ConvertJob) -> Converted:
        plan = job.plan
        bp = plan_buckets(plan, self.layout)
        prev = self.layout.previous
        sha: dict[int, str] = (
            {i: prev.current[plan.rows[i].name] or "" for i in bp.reuse} if prev else {}
        )
        bad: set[int] = set()
        changed = Conversions()
        writing = job.writing()
        need = bp.need()
        counter = ProgressCounter(job.progress, len(need))
        counter.start()
        written: set[Key] = set()
        tasks = (bp.task(job, i) for i in need)
        with closing(converted_records(tasks, job.pool)) as results:

            def convert(i: int) -> tuple:
                counter.add()
                return next(results)

            for key in bp.dirty:
                rows = [(i, plan.rows[i].name, i in bp.reuse) for i in bp.members[key]]
                old = bp.old_shard(key)
                outcomes, name = write_bucket(
                    job.folder,
                    key,
                    bp.n(key[0]),
                    rows,
                    (str(old) if old else None, bp.old_members.get(key, [])),
                    convert,
                    writing,
                    stop_on_bad=not job.skip_bad or bool(plan.blockers),
                )
                merge_outcomes(plan, outcomes, sha, bad, changed)
                writing = writing and (job.skip_bad and not plan.blockers or not bad)
                if name:
                    written.add(key)
        names, self.kept = finish_buckets(bp, job, written, writing)
        self.written = len(written)
        said = described(bp, self.written, self.kept, describe_pool(job.pool))
        return Converted(sha, bad, changed, names, said)


def _split_order(key: Key) -> tuple[int, int]:
    return SPLITS.index(key[0]), key[1]


def _same(prev: Previous, row, split: str) -> bool:
    """Whether row's record in the old dataset is the one a build would write now."""
    old = prev.rows.get(row.name)
    return (
        old is not None
        and old[3] == split
        and prev.current.get(row.name) == old[4]
        and str(index_label(row.label)) == old[1]
        and row.class_name == old[2]
    )


def _link(src: Path, dst: Path) -> None:
    """The old shard in the new folder: a hard link (the same file), else a copy that
    keeps its mtime."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
