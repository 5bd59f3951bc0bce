"""Stable-key shards and incremental builds: where `dataset build` puts each record (by
default; `--seeded-shards` keeps the older layout, the seeded order cut into shards),
and `--update` (docs/dataset.md, "Updating a dataset"; docs/FORMAT.md, "sharding").

A stable-shard dataset puts each record by a key of its own, never by its position among
the others: the key is sha256("SPLIT/PATH"); the record goes to bucket `key mod N` of its
split (N per split fixed at the first build and kept in the manifest's "sharding"), and a
bucket's records are ordered by key. A record's `index` is a hash of its path (48 bits), so
it is the same whichever rows are beside it. Adding, removing, relabelling or re-encoding a
few images then changes only the buckets those rows fall in.

`--update` reads the existing dataset (`Previous`): rows already in its index.csv keep their
split; new rows draw theirs from the seed, each on its own (`new_row_split`), so two updates
give what one update of both changes gives; identical image files join the split of their
copies. Which shards are written again and which are kept: cnncli.datasets.buckets.
Everything goes into the build's temporary folder, renamed into place as any build is.
A dataset without "sharding" in its manifest (built by an older cnncli, or with
--seeded-shards) cannot be updated: it is built once more.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.datasets.shards import SPLITS
from cnncli.datasets.splits import file_sha256
from cnncli.datasets.store import DatasetInfo, open_dataset
from cnncli.datasets.workers import raw_record_size
from cnncli.errors import DatasetError, UsageError

if TYPE_CHECKING:
    from cnncli.datasets.plan import Plan

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


def bucket_counts(plan: Plan, limit: tuple[str, int], given: dict | None = None) -> dict[str, int]:
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
    dataset, UsageError when its shards are cut by position (an older cnncli, or
    --seeded-shards)."""
    try:
        info = open_dataset(out_dir)
    except DatasetError as e:
        raise DatasetError(
            f"--update: {e.message}", "give a dataset folder that dataset build wrote"
        ) from None
    sharding = info.manifest.get("sharding")
    if not isinstance(sharding, dict) or sharding.get("key") != SHARDING_KEY:
        raise UsageError(
            f"{out_dir} has its records in shards by position (an older cnncli, or "
            "--seeded-shards), so --update cannot keep its shards",
            "rebuild it once with --overwrite; later builds can --update it",
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


def new_row_split(name: str, val: float, test: float, seed: int) -> str:
    """A new row's split on --update: a draw from (seed, path), on its own, so it does not
    depend on which other rows are new."""
    u = int(hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()[:16], 16) / 2.0**64
    return "test" if u < test else "val" if u < test + val else "train"
