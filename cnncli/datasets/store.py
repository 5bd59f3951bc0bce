"""Open a dataset folder (docs/FORMAT.md) and read its records, without TensorFlow.

`open_dataset(path)` checks the folder (exists, has a manifest of a known format version,
every listed shard present, not a half-written build) and returns a `DatasetInfo`, after
`recover_dataset` has dealt with what an interrupted build left;
`iter_records(info, split)` reads a split's shards in pure Python, verifying CRCs.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cnncli import claims
from cnncli.atomic import clean_debris, parse_temp_name, recover_swap
from cnncli.datasets.tfrecord import decode_example, read_records
from cnncli.errors import BusyError, DatasetError, not_found
from cnncli.images import ImageSpec

KNOWN_VERSIONS = (1, 2)  # 2: multilabel and regression datasets (docs/FORMAT.md)
TASKS = ("classify", "multilabel", "regression")
# A dataset is reported as unbalanced when its largest class has this many times the
# smallest's images.
UNBALANCED_RATIO = 1.5
_BUILD = "build it with cnncli dataset build IMAGES_DIR -o DIR"


@dataclass(frozen=True)
class Target:
    """A regression target as the manifest records it: its column name, and the mean and
    population std of the train split (std 0 stored as 1.0), min and max over all images."""

    name: str
    mean: float
    std: float
    min: float
    max: float


@dataclass(frozen=True)
class Record:
    index: int
    # classify: the class index; multilabel: float32 [L] multi-hot; regression: float32 [T]
    # in the table's own units
    label: int | np.ndarray
    path: str
    image: np.ndarray  # H x W x C uint8


@dataclass
class DatasetInfo:
    path: Path
    manifest: dict
    sha256: str
    _index: object = field(default=None, repr=False)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in sorted(self.manifest["classes"], key=lambda c: c["index"])]

    @property
    def num_classes(self) -> int:
        return len(self.manifest["classes"])

    @property
    def task(self) -> str:
        """ "classify" (also every format-version-1 dataset), "multilabel" or "regression"."""
        return self.manifest.get("task") or "classify"

    @property
    def label_names(self) -> list[str]:
        """The labels of a multilabel dataset (its class_names); [] for the other tasks."""
        return self.class_names if self.task == "multilabel" else []

    @cached_property
    def targets(self) -> list[Target]:
        """The regression targets, in record order; [] for the other tasks."""
        return [
            Target(t["name"], float(t["mean"]), float(t["std"]), float(t["min"]), float(t["max"]))
            for t in self.manifest.get("targets") or []
        ]

    @property
    def output_size(self) -> int:
        """What a model's output holds: classes, labels or targets."""
        return len(self.targets) if self.task == "regression" else self.num_classes

    @cached_property
    def image(self) -> ImageSpec:
        return ImageSpec.from_dict(self.manifest["image"])

    @property
    def encoding(self) -> str:
        return self.manifest.get("encoding", "raw")

    @property
    def splits(self) -> list[str]:
        return list(self.manifest.get("splits", {}))

    def _split(self, split: str) -> dict:
        try:
            return self.manifest["splits"][split]
        except KeyError:
            raise DatasetError(
                f"dataset {self.path} has no {split!r} split",
                f"its splits are {', '.join(self.splits) or 'none'}",
            ) from None

    def count(self, split: str) -> int:
        return int(self._split(split)["count"]) if split in self.splits else 0

    def per_class(self, split: str) -> dict[str, int]:
        if split not in self.splits:
            return dict.fromkeys(self.class_names, 0)
        return dict(self._split(split)["per_class"])

    def shard_paths(self, split: str) -> list[Path]:
        return [self.path / name for name in self._split(split)["shards"]]

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class name: images}} for the splits the dataset has."""
        return {s: self.per_class(s) for s in self.splits}

    @property
    def conversions(self) -> list[str]:
        """What the build's conversion changed ("12 of 40 images: RGBA -> RGB, ..."); empty
        for datasets built before cnncli recorded it."""
        return list(self.manifest.get("conversions") or [])

    def shard_count(self) -> int:
        return sum(len(self._split(s)["shards"]) for s in self.splits)

    def summary(self) -> dict:
        """What `cnncli dataset info --json` prints: classes, image, counts, checksum and the
        unbalanced-classes warning (None when balanced)."""
        counts = self.counts()
        task = self.task
        return {
            "path": str(self.path),
            "task": task,
            "classes": self.class_names,
            "image": self.image.to_dict(),
            "shape": list(self.image.shape),
            "encoding": self.encoding,
            "counts": counts,
            "images": {s: self.count(s) for s in self.splits},
            "total": sum(self.count(s) for s in self.splits),
            "sha256": self.sha256,
            "unbalanced": unbalanced(counts, self.class_names) if task == "classify" else None,
            "conversions": self.conversions,
            **{k: self.manifest[k] for k in TASK_KEYS[task] if k in self.manifest},
        }

    @property
    def index(self) -> Any:
        """index.csv as a pandas DataFrame (read on first use)."""
        if self._index is None:
            import pandas as pd

            self._index = pd.read_csv(
                self.path / "index.csv", dtype={"path": str, "class_name": str, "split": str}
            )
        return self._index


# What `dataset info --json` carries for each task, beside the counts.
TASK_KEYS = {
    "classify": (),
    "multilabel": ("label_counts", "unlabeled", "cooccurrence"),
    "regression": ("targets", "target_histograms"),
}


def unbalanced(counts: dict, class_names: list[str]) -> str | None:
    """A warning when the largest class has UNBALANCED_RATIO times the smallest's images."""
    totals = {n: sum(c.get(n, 0) for c in counts.values()) for n in class_names}
    if not totals:
        return None
    big = max(totals, key=totals.__getitem__)
    small = min(totals, key=totals.__getitem__)
    if totals[small] == 0 or totals[big] / totals[small] >= UNBALANCED_RATIO:
        return (
            f"classes are unbalanced: {big!r} has {totals[big]} images, {small!r} "
            f"{totals[small]} (warned at {UNBALANCED_RATIO}x or more)"
        )
    return None


def open_dataset(path: str | os.PathLike) -> DatasetInfo:
    """Open and check a dataset folder; raise DatasetError with one clear line if unusable.
    What an interrupted build of it left is recovered or removed first (recover_dataset)."""
    path = Path(path)
    if path.name.startswith(".") and ".partial-" in path.name:
        raise DatasetError(
            f"{path} is the temporary folder of an interrupted build (incomplete)", _BUILD
        )
    recover_dataset(path)
    if not_found(path):  # a symlink loop, a name too long: said as such
        partial = (
            sorted(path.parent.glob(f".{glob.escape(path.name)}.partial-*"))
            if path.parent.exists()
            else []
        )
        if partial:
            raise DatasetError(
                f"dataset {path} is incomplete: a build was interrupted "
                f"(it left {partial[0].name})",
                "delete that folder and " + _BUILD,
            )
        raise DatasetError(f"dataset folder {path} not found", _BUILD)
    manifest, raw = _checked(path)
    return DatasetInfo(path=path, manifest=manifest, sha256=hashlib.sha256(raw).hexdigest())


def _checked(path: Path) -> tuple[dict, bytes]:
    """(manifest, its bytes) of a whole dataset folder; DatasetError (one line) otherwise."""
    if not path.is_dir():
        raise DatasetError(f"{path} is not a dataset folder (it is a file)", _BUILD)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise DatasetError(f"{path} is not a cnncli dataset (no manifest.json)", _BUILD)
    raw = mpath.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{mpath} is not valid JSON ({e})", "build the dataset again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "cnncli-dataset":
        raise DatasetError(f"{path} is not a cnncli dataset (unknown manifest)", _BUILD)
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise DatasetError(
            f"{mpath}: format_version must be a whole number, got {version!r}", _BUILD
        )
    if version in KNOWN_VERSIONS and manifest.get("task", "classify") not in TASKS:
        raise DatasetError(
            f"dataset {path} has task {manifest.get('task')!r}, which this cnncli does not know",
            "upgrade cnncli, or build the dataset again with this version",
        )
    if version not in KNOWN_VERSIONS:
        raise DatasetError(
            f"dataset {path} has format version {version}, which this cnncli "
            f"({', '.join(map(str, KNOWN_VERSIONS))}) does not know",
            "upgrade cnncli, or build the dataset again with this version",
        )
    for split, entry in manifest.get("splits", {}).items():
        for name in entry.get("shards", []):
            if not (path / name).is_file():
                raise DatasetError(
                    f"dataset {path} is incomplete: shard {name} of split {split!r} is missing",
                    "build the dataset again",
                )
    if not (path / "index.csv").is_file():
        raise DatasetError(f"dataset {path} is incomplete: index.csv is missing", _BUILD)
    return manifest, raw


def dataset_folder(value: object) -> Path | None:
    """`value` (a path, or a list of one path) as a Path when it is a dataset folder (one
    holding manifest.json), else None: what evaluate and embed claim for reading."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            return None
        value = value[0]
    if not isinstance(value, (str, os.PathLike)):
        return None
    path = Path(value)
    return path if (path / "manifest.json").is_file() else None


def dataset_complete(folder: Path) -> bool:
    """Whether `folder` holds a whole dataset (the build's last file, manifest.json, is
    written, and every file it lists is there)."""
    try:
        _checked(Path(folder))
    except (DatasetError, OSError):
        return False
    return True


def recover_dataset(path: str | os.PathLike) -> None:
    """What interrupted builds of dataset `path` left, dealt with, each said in one line: a
    build with --overwrite stopped between its two renames (`path` missing) is finished when
    its new dataset is complete, else the old one is put back (cnncli.atomic.recover_swap);
    the temporary folders of builds that are gone are removed. Takes the claim on `path`
    for the recovery (DatasetError naming the build that holds it); with the claim held by
    this process (a build's start), every leftover not of this process is removed."""
    path = Path(path)
    parent = path.parent
    try:
        left = [
            p
            for p in parent.glob(f".{glob.escape(path.name)}.*-*")
            if (t := parse_temp_name(p.name)) is not None and t.target == path.name
        ]
    except OSError:
        return
    if not left:
        return
    held = claims.holds(path)
    if held is None and not path.exists():
        try:
            with claims.claim(path, None):
                recover_dataset(path)
        except BusyError as e:
            raise DatasetError(e.message, "wait for it to finish, then run it again") from None
        return
    if not path.exists():
        recover_swap(path, dataset_complete)
    clean_debris(parent, path.name, claimed=held == "write")


def decode_image(data: bytes, spec: ImageSpec, encoding: str) -> np.ndarray:
    """A record's image bytes -> H x W x C uint8 array."""
    if encoding == "raw":
        arr = np.frombuffer(data, dtype=np.uint8)
        if arr.size != spec.height * spec.width * spec.channels:
            raise DatasetError(f"a record holds {arr.size} bytes, not {spec.shape}", _BUILD)
        return arr.reshape(spec.shape)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def iter_records(info: DatasetInfo, split: str) -> Iterator[Record]:
    """Each record of a split, in shard order, with its pixels decoded."""
    spec, encoding, task = info.image, info.encoding, info.task
    for shard in info.shard_paths(split):
        with open(shard, "rb") as f:
            for data in read_records(f, name=str(shard)):
                ex = decode_example(data)
                label: int | np.ndarray
                if task == "classify":
                    label = int(ex["label"][0])
                else:
                    label = np.asarray(
                        ex["target" if task == "regression" else "label"], dtype=np.float32
                    )
                yield Record(
                    index=int(ex["index"][0]),
                    label=label,
                    path=ex["path"][0].decode("utf-8"),
                    image=decode_image(ex["image"][0], spec, encoding),
                )
