"""Stable-key shards and incremental builds: `dataset build --stable-shards` and `--update`
(docs/dataset.md, "Updating a dataset"; docs/FORMAT.md, "sharding").

A stable-shard dataset puts each record by a key of its own, never by its position among
the others: the key is sha256("SPLIT/PATH"); the record goes to bucket `key mod N` of its
split (N per split fixed at the first build and kept in the manifest's "sharding"), and a
bucket's records are ordered by key. A record's `index` is a hash of its path (48 bits), so
it is the same whichever rows are beside it. Adding, removing, relabelling or re-encoding a
few images then changes only the buckets those rows fall in.

`--update` reads the existing dataset (`Previous`): rows already in its index.csv keep their
split; new rows draw theirs from the seed, each on its own (`new_row_split`), so two updates
give what one update of both changes gives; identical image files join the split of their
copies. A bucket whose rows (path, source sha256, label) are all as they were is hard-linked
from the old dataset (same bytes, same mtime); a changed bucket is written again, the
records of its unchanged rows copied from the old shard without decoding their images.
Everything goes into the build's temporary folder, renamed into place as any build is.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import shutil
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from cnncli.datasets.convert import Converted, ConvertJob
from cnncli.datasets.plan import with_warnings
from cnncli.datasets.shards import SPLITS
from cnncli.datasets.splits import file_sha256
from cnncli.datasets.store import DatasetInfo, open_dataset
from cnncli.datasets.tasks import index_label
from cnncli.datasets.tfrecord import frame, read_records
from cnncli.datasets.workers import converted_records, describe_pool, raw_record_size
from cnncli.errors import DatasetError, UsageError
from cnncli.images import Conversions
from cnncli.progress import Counter as ProgressCounter

SHARDING_KEY = "sha256(split/path)"
UPDATED_FROM = "index.csv of the dataset updated"
# the options an update must share with the dataset it updates (a different one would
# change records that the update keeps)
COMPARED = (
    "task",
    "color",
    "size",
    "fit",
    "seed",
    "val",
    "test",
    "record_format",
    "columns",
    "split_col",
    "classes",
)


def row_key(split: str, name: str) -> str:
    return hashlib.sha256(f"{split}/{name}".encode()).hexdigest()


def record_index(name: str) -> int:
    """A stable-shard record's `index`: 48 bits of sha256(path), whoever else is built."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)


def bucket_of(split: str, name: str, n: int) -> int:
    return int(row_key(split, name)[:16], 16) % n


def bucket_counts(plan, limit: tuple[str, int], given: dict | None = None) -> dict[str, int]:
    """{split: N buckets}: `given` where it has the split, else enough for `limit` (a number
    of images, or bytes reckoned from raw records) at this build's size."""
    out = {}
    for split in SPLITS:
        rows = [r for r, s in zip(plan.rows, plan.splits, strict=True) if s == split]
        if given and split in given:
            out[split] = int(given[split])
        elif rows:
            kind, n = limit
            size = (
                len(rows)
                if kind == "images"
                else sum(raw_record_size(plan.spec, 0, r.name, r.label) for r in rows)
            )
            out[split] = max(1, math.ceil(size / n))
    return out


def shard_name(split: str, b: int, n: int) -> str:
    return f"{split}-{b:05d}-of-{n:05d}.tfrecord"


@dataclass
class Previous:
    """The dataset an update starts from: its manifest, its rows by path (index, label,
    class name, split, sha256) and, once `split_rows` ran, each current row's sha256."""

    info: DatasetInfo
    rows: dict[str, tuple[str, str, str, str, str]]
    current: dict[str, str | None] = field(default_factory=dict)

    @property
    def buckets(self) -> dict[str, int]:
        return dict(self.info.manifest["sharding"]["buckets"])

    def split_rows(
        self, ls, images_dir: Path, val: float, test: float, seed: int, allow_leaks: bool
    ) -> str:
        """Give each row of `ls` its split: the old one for rows the dataset has, a seeded
        draw (or the table's split column) for new ones, the split of its copies for a new
        identical file unless `allow_leaks`. Returns the `given` words for the plan."""
        for r in ls.rows:
            try:
                self.current[r.name] = file_sha256(Path(images_dir) / r.path)
            except OSError:
                self.current[r.name] = None  # the conversion reports the file
            if r.name in self.rows:
                r.split = self.rows[r.name][3]
            elif r.split is None:
                r.split = new_row_split(r.name, val, test, seed)
        if not allow_leaks:
            groups: dict[str, list] = {}
            for r in ls.rows:
                digest = self.current[r.name]
                if digest:
                    groups.setdefault(digest, []).append(r)
            for g in groups.values():
                old = [r.split for r in g if r.name in self.rows]
                pool = old or [r.split for r in g]
                target = "train" if "train" in pool else pool[0]
                for r in g:
                    if r.name not in self.rows:
                        r.split = target
        return UPDATED_FROM

    def split_note(self, ls, val: float, test: float) -> str:
        new = sum(r.name not in self.rows for r in ls.rows)
        gone = len(self.rows) - (len(ls.rows) - new)
        return (
            f"update: {len(ls.rows) - new} images keep their split, {new} new (split by "
            f"--seed, --val {val}, --test {test}, each on its own), {gone} removed"
        )

    def check_options(self, options: dict, class_names: list[str]) -> None:
        """UsageError naming every option that differs from the dataset's."""
        old = self.info.manifest.get("options") or {}
        differ = [
            f"{k} {old.get(k)!r} -> {options.get(k)!r}"
            for k in COMPARED
            if _norm(old.get(k)) != _norm(options.get(k))
        ]
        if self.info.class_names != list(class_names):
            differ.append(f"classes {self.info.class_names} -> {list(class_names)}")
        if differ:
            raise UsageError(
                f"{self.info.path} was built with other options ({'; '.join(differ)}); "
                "--update keeps them, nothing was written",
                "give the same options, or build a new dataset without --update",
            )


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def open_previous(out_dir: Path) -> Previous:
    """The dataset at `out_dir` for --update: DatasetError (one line) when it is not a
    dataset, UsageError when it was not built with stable shards."""
    try:
        info = open_dataset(out_dir)
    except DatasetError as e:
        raise DatasetError(
            f"--update: {e.message}", "give a dataset folder built with --stable-shards"
        ) from None
    sharding = info.manifest.get("sharding")
    if not isinstance(sharding, dict) or sharding.get("key") != SHARDING_KEY:
        raise UsageError(
            f"{out_dir} was built without --stable-shards, so --update cannot keep its shards",
            "build it once more with --stable-shards (and --overwrite); later builds can update",
        )
    rows = {}
    with open(out_dir / "index.csv", newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            rows[line["path"]] = (
                line["index"],
                line["label"],
                line["class_name"],
                line["split"],
                line["sha256"],
            )
    return Previous(info, rows)


class StableEngine:
    """Writes a stable-shard build, reusing what `previous` (an update) already has."""

    name = "stable"

    def __init__(self, buckets: dict[str, int], previous: Previous | None = None):
        self.buckets, self.previous = buckets, previous
        self.written = self.kept = 0

    def convert(self, job: ConvertJob) -> Converted:
        plan, prev = job.plan, self.previous
        rows = plan.rows
        members: dict[tuple[str, int], list[int]] = {}
        for i, r in enumerate(rows):
            s = plan.splits[i]
            members.setdefault((s, bucket_of(s, r.name, self.buckets[s])), []).append(i)
        for key, ids in members.items():
            ids.sort(key=lambda i: row_key(key[0], rows[i].name))
        reuse = {i for i, r in enumerate(rows) if prev and _same(prev, r, plan.splits[i])}
        old_members: dict[tuple[str, int], list[str]] = {}
        for name, (_, _, _, s, _) in prev.rows.items() if prev else ():
            if s in self.buckets:
                old_members.setdefault((s, bucket_of(s, name, self.buckets[s])), []).append(name)
        linked = {
            k
            for k, ids in members.items()
            if prev
            and all(i in reuse for i in ids)
            and sorted(rows[i].name for i in ids) == sorted(old_members.get(k, []))
            and _old_file(prev, *k, self.buckets[k[0]]) is not None
        }
        dirty = sorted((k for k in members if k not in linked), key=_split_order)
        need = [i for k in dirty for i in members[k] if i not in reuse]
        sha: dict[int, str] = {i: prev.current[rows[i].name] or "" for i in reuse} if prev else {}
        bad: set[int] = set()
        changed = Conversions()
        writing = job.writing()
        counter = ProgressCounter(job.progress, len(need))
        counter.start()
        spec = plan.spec.to_dict()
        tasks = (
            (
                str(job.images_dir / rows[i].path),
                spec,
                job.record_format,
                record_index(rows[i].name),
                rows[i].label,
                rows[i].name,
            )
            for i in need
        )
        written: set[tuple[str, int]] = set()
        with closing(converted_records(tasks, job.pool)) as results:
            for split, b in dirty:
                n = self.buckets[split]
                old = (
                    _old_records(prev, split, b, n, old_members.get((split, b), [])) if prev else {}
                )
                part = job.folder / f".{split}-{b:05d}.part"
                count = 0
                with open(part, "wb") if writing else _Null() as f:
                    for i in members[(split, b)]:
                        if i in reuse:
                            data = old[rows[i].name]
                        else:
                            status, data, sha[i], kinds, said = next(results)
                            counter.add()
                            if status != "ok":
                                plan.problems.append((rows[i].name, with_warnings(data, said)))
                                bad.add(i)
                                writing = writing and job.skip_bad and not plan.blockers
                                continue
                            changed.merge(kinds)
                            plan.warned += [(rows[i].name, m) for m in said]
                        f.write(data)
                        count += 1
                if writing and count:
                    os.replace(part, job.folder / shard_name(split, b, n))
                    written.add((split, b))
                else:
                    part.unlink(missing_ok=True)
        if writing:
            for split, b in linked:
                kept = _old_file(prev, split, b, self.buckets[split]) if prev else None
                assert kept is not None  # a linked shard is one the previous dataset has
                _link(kept, job.folder / shard_name(split, b, self.buckets[split]))
        names = {
            s: [
                shard_name(s, b, self.buckets[s])
                for s2, b in sorted(written | (linked if writing else set()))
                if s2 == s
            ]
            for s in SPLITS
        }
        self.written, self.kept = len(written), len(linked) if writing else 0
        described = (
            f"stable shards: {self.written} written, {self.kept} kept as they were; "
            f"{describe_pool(job.pool)}"
        )
        return Converted(sha, bad, changed, names, described)


def _split_order(key: tuple[str, int]) -> tuple[int, int]:
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


def _old_file(prev: Previous, split: str, b: int, n: int) -> Path | None:
    name = shard_name(split, b, n)
    listed = prev.info.manifest["splits"].get(split, {}).get("shards", [])
    return prev.info.path / name if name in listed else None


def _old_records(prev: Previous, split: str, b: int, n: int, names: list[str]) -> dict[str, bytes]:
    """{path: framed record} of the old shard of bucket b (empty when it had none): its
    records are its index.csv rows (`names`) in key order (CRCs checked, images not decoded)."""
    path = _old_file(prev, split, b, n)
    if path is None:
        return {}
    names = sorted(names, key=lambda name: row_key(split, name))
    with open(path, "rb") as f:
        records = [frame(data) for data in read_records(f, name=str(path))]
    if len(records) != len(names):
        raise DatasetError(
            f"{path} holds {len(records)} records, its index.csv rows {len(names)}",
            "build the dataset again with --stable-shards --overwrite",
        )
    return dict(zip(names, records, strict=True))


def _link(src: Path, dst: Path) -> None:
    """The old shard in the new folder: a hard link (the same file), else a copy that
    keeps its mtime."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def write(self, data: bytes) -> None:
        return None


def new_row_split(name: str, val: float, test: float, seed: int) -> str:
    """A new row's split on --update: a draw from (seed, path), on its own, so it does not
    depend on which other rows are new."""
    u = int(hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()[:16], 16) / 2.0**64
    return "test" if u < test else "val" if u < test + val else "train"
