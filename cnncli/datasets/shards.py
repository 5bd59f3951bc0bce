"""Writing a dataset folder's files (docs/FORMAT.md): the TFRecord shards of each split,
index.csv and skipped.csv. Everything is written inside the build's temporary folder, which
`atomic_dir` renames into place once the whole dataset is there."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from cnncli.atomic import rename, write_text
from cnncli.errors import UsageError

SPLITS = ("train", "val", "test")


def parse_shard_size(value: int | str) -> tuple[str, int]:
    """'64MB' / '500KB' / 1000 -> ('bytes', n) or ('images', n)."""
    if isinstance(value, int):
        kind, n = "images", value
    else:
        text = str(value).strip().upper().replace(" ", "")
        units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "B": 1}
        kind, n = "images", 0
        for unit, mult in units.items():
            if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
                kind, n = "bytes", int(float(text[: -len(unit)]) * mult)
                break
        else:
            n = int(text) if text.isdigit() else 0
    if n < 1:
        raise UsageError(
            f"bad shard size {value!r}", "give a number of images (500) or a size (64MB)"
        )
    return kind, n


def shard_name(split: str, k: int, n: int) -> str:
    """The file name of shard k of a split's n."""
    return f"{split}-{k:05d}-of-{n:05d}.tfrecord"


class ShardWriter:
    """Writes one split's records into shards, starting a new shard when one is full."""

    def __init__(
        self,
        folder: Path,
        split: str,
        limit: tuple[str, int],
        bucket: tuple[int, int] | None = None,
    ):
        """`bucket` (b, n): write only shard b of n (a stable-shard bucket, whatever its
        size), under a part name of its own (a task run again writes beside it)."""
        self.folder, self.split, (self.kind, self.limit) = folder, split, limit
        self.bucket = bucket
        self.parts: list[Path] = []
        self._f: io.BufferedWriter | None = None
        self._bytes = self._count = 0

    def write(self, record: bytes) -> None:
        if self._f is None:
            part = self.folder / f".{self.split}-{len(self.parts):05d}.part"
            if self.bucket is not None:
                tag = uuid.uuid4().hex[:8]
                part = self.folder / f".{self.split}-{self.bucket[0]:05d}.{tag}.part"
            self.parts.append(part)
            self._f = open(part, "wb")  # noqa: SIM115 - closed when full or in close_file()
            self._bytes = self._count = 0
        self._f.write(record)
        self._bytes += len(record)
        self._count += 1
        full = (self._bytes if self.kind == "bytes" else self._count) >= self.limit
        if full and self.bucket is None:
            self.close_file()

    def close_file(self) -> None:
        """Close the shard being written, if any (the last one may be less than full)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def finish(self) -> list[str]:
        """Close and rename the shards to their final names; return those names."""
        self.close_file()
        names = []
        for i, part in enumerate(self.parts):
            b, n = self.bucket or (i, len(self.parts))
            name = shard_name(self.split, b, n)
            rename(part, self.folder / name)
            names.append(name)
        return names


class ShardSet:
    """One ShardWriter per split; a context manager that closes every open file on leaving,
    whether the block ended or raised (the caller removes the folder on failure)."""

    def __init__(self, folder: Path, limit: tuple[str, int]):
        self.writers = {s: ShardWriter(folder, s, limit) for s in SPLITS}

    def write(self, split: str, record: bytes) -> None:
        self.writers[split].write(record)

    def finish(self) -> dict[str, list[str]]:
        """{split: shard file names}, the shards renamed to their final names."""
        return {s: w.finish() for s, w in self.writers.items()}

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, *exc) -> None:
        for w in self.writers.values():
            w.close_file()


def csv_text(rows: Iterable[Sequence]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_index(folder: Path, entries: Iterable[Sequence]) -> None:
    """index.csv: one (index, path, label, class_name, split, sha256) line per record."""
    header = ("index", "path", "label", "class_name", "split", "sha256")
    write_text(folder / "index.csv", csv_text([header, *entries]))


def write_skipped(folder: Path, problems: Iterable[tuple[str, str]]) -> None:
    """skipped.csv: the (path, reason) of each input left out by --skip-bad."""
    write_text(folder / "skipped.csv", csv_text([("path", "reason"), *problems]))
