"""What `dataset build` is asked to do (`BuildOptions`), its defaults, and the one place its
options are checked, before any file is read.

`BuildOptions` holds every option of a build; `checked()` refuses bad values and returns the
options with their defaults filled in (val/test, the split files parsed, the size and
class list parsed, the shard size read); `manifest_options()` is the manifest's `options`
(docs/FORMAT.md). `cnncli dataset build` takes its defaults from `BuildOptions()`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnncli.errors import UsageError

RECORD_FORMATS = ("raw", "png")
DEFAULT_RECORD_FORMAT = "raw"  # measured: see docs/FORMAT.md ("Record encoding")
DEFAULT_SHARD_SIZE = "64MB"


@dataclass
class BuildOptions:
    """Every option of a build (`cnncli dataset build --help` says what each does)."""

    labels: Path | None = None  # the label table; None: class folders
    image_col: str | None = None
    label_col: str | None = None
    name_col: str | None = None
    task: str = "classify"  # or multilabel, regression (cnncli.datasets.targets)
    label_delim: str | None = None
    label_cols: Any = None  # multilabel: 'a,b,c' or a list
    target_cols: Any = None  # regression: a list of columns
    encoding: str | None = None
    classes: Any = None  # 'a,b,c' or a list: class names in index order
    color: str | None = None  # None: the mode most images have
    size: Any = None  # 'HxW' or (h, w); None: kept when every image shares it
    fit: str = "stretch"
    val: float | None = None  # None: 0.2 (0 with split files giving no val list)
    test: float | None = None  # None: 0
    seed: int = 0
    split_col: str | None = None
    split_files: Any = None  # 'train.txt,val.txt,test.txt'; checked(): {split: file}
    skip_bad: bool = False
    overwrite: bool = False
    workers: int | None = None  # None: every core
    record_format: str = DEFAULT_RECORD_FORMAT
    shard_size: int | str = DEFAULT_SHARD_SIZE  # bytes ('64MB') or images (500)
    exclude: Path | None = None
    relabel: Path | None = None
    allow_leaks: bool = False
    engine: str = "local"
    address: str | None = None
    # each record in a shard by a hash of its path (cnncli.datasets.stable): True, or
    # {split: shards} to give their numbers; False (--seeded-shards): the seeded order,
    # cut into shards
    stable_shards: bool | dict = True
    update: bool = False  # rewrite only the changed shards of the dataset at OUT

    def checked(self) -> BuildOptions:
        """The options with their defaults filled in; UsageError (one line) for a bad one
        (the engine's name and what it can do: cnncli.datasets.engines.open_engine)."""
        # imported here: the CLI reads the defaults above without loading NumPy or Pillow
        from cnncli.datasets.shards import parse_shard_size
        from cnncli.datasets.splits import split_options
        from cnncli.datasets.targets import check_task_options
        from cnncli.images import COLORS, FITS, parse_size

        check_task_options(
            self.task,
            labels=self.labels,
            label_col=self.label_col,
            label_delim=self.label_delim,
            label_cols=self.label_cols,
            target_cols=self.target_cols,
            name_col=self.name_col,
            classes=self.classes,
        )
        val, test, split_files = split_options(
            self.val, self.test, self.split_col, self.split_files
        )
        for name, v in (("--val", val), ("--test", test)):
            if not 0 <= v < 1:
                raise UsageError(f"{name} must be a fraction from 0 to below 1, got {v}")
        if val + test >= 1:
            raise UsageError(f"--val {val} and --test {test} leave nothing to train on")
        if self.color is not None and self.color not in COLORS:
            raise UsageError(f"unknown colour {self.color!r}", f"use one of {', '.join(COLORS)}")
        if self.fit not in FITS:
            raise UsageError(f"unknown fit {self.fit!r}", f"use one of {', '.join(FITS)}")
        if self.record_format not in RECORD_FORMATS:
            raise UsageError(
                f"unknown record format {self.record_format!r}",
                f"use one of {', '.join(RECORD_FORMATS)}",
            )
        parse_shard_size(self.shard_size)  # a bad --shard-size is refused here
        if self.update:
            if split_files:
                raise UsageError(
                    "--update keeps the splits the dataset has; --split-files cannot change them",
                    "drop --split-files (a --split-col is read for new rows)",
                )
            if self.overwrite:
                raise UsageError(
                    "--update and --overwrite exclude each other",
                    "--update keeps the dataset's unchanged shards; --overwrite rebuilds",
                )
        classes = self.classes
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        size = parse_size(self.size) if isinstance(self.size, str) else self.size
        return replace(
            self, val=val, test=test, split_files=split_files, classes=classes, size=size
        )

    @property
    def shard_limit(self) -> tuple[str, int]:
        """('bytes', n) or ('images', n): where a shard is full."""
        from cnncli.datasets.shards import parse_shard_size

        return parse_shard_size(self.shard_size)

    def manifest_options(self, spec, columns: dict, sources: dict | None, corrected: dict) -> dict:
        """The manifest's `options` (docs/FORMAT.md) of checked options: `spec` the image
        spec chosen, `columns` the table's columns, `sources` the split files' paths and
        sha256, `corrected` what --exclude and --relabel did."""
        split_files = self.split_files
        given = bool(split_files or self.split_col)
        return {
            "labels": Path(self.labels).name if self.labels is not None else None,
            "columns": {k: v for k, v in columns.items() if k != "ignored"} or None,
            "classes": self.classes,
            "task": self.task,
            "color": spec.color,
            "size": [spec.height, spec.width],
            "fit": spec.fit,
            "val": self.val if not given or (split_files and self.val) else None,
            "test": self.test if not given else None,
            "seed": self.seed,
            "split_col": self.split_col,
            "split_files": sources if split_files else None,
            "splits_from": "files" if split_files else "column" if self.split_col else "random",
            "skip_bad": self.skip_bad,
            "record_format": self.record_format,
            "shard_size": self.shard_size
            if isinstance(self.shard_size, int)
            else str(self.shard_size),
            **corrected,
            **({"allow_leaks": True} if self.allow_leaks else {}),
        }
