"""`build_dataset`: image folder (+ label table) -> dataset folder (manifest, index, shards).

The steps, and why in this order:
1. labels: read the table or the class folders (cnncli.datasets.labels); every row-level problem
   is collected, none is raised alone.
2. probe: open each image's header only (cnncli.images.probe_image: size, mode, orientation)
   to choose the default colour mode (the one most inputs have) and size (kept when all
   share it).
3. split: stratified by class, seeded per class, so the same inputs and seed give the same
   split (and a byte-identical manifest and index).
4. convert: a process pool (cnncli.datasets.workers) opens, checks and converts each image in
   one decode and encodes its record; the main process writes the records in a fixed order,
   streaming into shards (cnncli.datasets.shards) inside a temporary folder beside OUT_DIR.
5. if anything was wrong and --skip-bad was not given: list every problem, write nothing.
   Otherwise index.csv, skipped.csv and manifest.json are written and the folder renamed.
Every check runs before anything is reported: a problem that stops the whole build (class
indices with a gap, images of several sizes and no --size, a class too small for the split)
is kept as a "blocker" while the other checks, the decode of every image among them, go on,
so that one run lists every problem at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cnncli.atomic import atomic_dir, check_replaceable, write_json
from cnncli.claims import claimed
from cnncli.datasets.buckets import StableLayout
from cnncli.datasets.class_folders import scan_class_folders
from cnncli.datasets.convert import ConvertJob
from cnncli.datasets.corrections import apply_corrections
from cnncli.datasets.engines import open_engine, stable_engine
from cnncli.datasets.labels import LabelSet, load_label_table
from cnncli.datasets.manifest import dataset_manifest
from cnncli.datasets.options import BuildOptions
from cnncli.datasets.plan import (
    Plan,
    kept_warnings,
    plan_build,
    stop_if_bad,
    warning_notes,
)
from cnncli.datasets.shards import (
    write_index,
    write_skipped,
)
from cnncli.datasets.splits import apply_split_files, keep_copies_together
from cnncli.datasets.stable import SHARDING_KEY, bucket_counts, open_previous
from cnncli.datasets.stable import record_index as stable_index
from cnncli.datasets.store import recover_dataset
from cnncli.datasets.targets import load_task_table
from cnncli.datasets.tasks import index_label, split_counts, task_manifest
from cnncli.datasets.workers import pool_plan
from cnncli.errors import (
    DatasetError,
    InputError,
    UsageError,
    not_found,
    writing,
)
from cnncli.progress import Progress


@dataclass
class BuildResult:
    manifest: dict
    out_dir: Path
    counts: dict[str, dict[str, int]]  # split -> class name -> images
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, decoder's words)
    shards: dict[str, int] | None = None  # stable shards: {"written": n, "kept": n}

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "task": self.manifest.get("task", "classify"),
            "classes": [c["name"] for c in self.manifest["classes"]],
            "image": self.manifest["image"],
            "encoding": self.manifest["encoding"],
            "counts": self.counts,
            "total": sum(s["count"] for s in self.manifest["splits"].values()),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "unused_files": len(self.unused),
            "notes": self.notes,
            "warnings": [{"path": p, "message": m} for p, m in self.warnings],
            "shards": self.shards,
        }


@claimed("out_dir", "cnncli dataset build", prepare=recover_dataset)
def build_dataset(
    images_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: BuildOptions | None = None,
    *,
    progress: Progress | None = None,
    **given_options,
) -> BuildResult:
    """Build a dataset folder (docs/FORMAT.md) from IMAGES_DIR and an optional label table.

    `options` (cnncli.datasets.options.BuildOptions; keyword arguments named as its fields
    replace its values) say what to build. Raises DatasetError (with `.problems`, every
    (file, reason) found) when inputs are bad and `skip_bad` is false; nothing is written
    then. `progress(done, total)` is called as images are converted. `engine` 'ray'
    converts on the Ray cluster at `address` (cnncli.datasets.engines): the same bytes as
    'local'. `stable_shards` puts each record in a shard by a key of its own (True, or
    {split: shards} to give their numbers); `update` rewrites only the changed shards of
    the dataset at `out_dir` (cnncli.datasets.stable).
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    o = replace(options or BuildOptions(), **given_options).checked()
    assert o.val is not None and o.test is not None  # checked() gives them their defaults
    shard_limit, stable_shards = o.shard_limit, o.stable_shards
    previous = None
    if o.update:
        previous = open_previous(out_dir)
        stable_shards = previous.buckets
    _check_paths(images_dir, out_dir, o.labels, o.overwrite or o.update, o.split_col)
    runner = open_engine(
        o.engine,
        o.address,
        record_format=o.record_format,
        shard_limit=shard_limit,
        stable=bool(stable_shards),
    )
    ls = _read_labels(o, images_dir, out_dir)
    corrected, said = apply_corrections(ls, o.exclude, o.relabel)
    ls.notes += said
    given = f"column {o.split_col!r}" if o.split_col else None
    sources = None
    if o.split_files:
        sources = apply_split_files(ls, images_dir, o.split_files)
        given = "files " + ", ".join(f"{p.name} ({s})" for s, p in o.split_files.items())
    if previous is not None:
        given = previous.split_rows(ls, images_dir, o.val, o.test, o.seed, o.allow_leaks)
    plan = plan_build(
        ls,
        images_dir,
        o.color,
        o.size,
        o.fit,
        o.val,
        o.test,
        o.seed,
        given,
        carve=o.val if o.split_files else 0.0,
    )
    if previous is not None:
        plan.notes = [n for n in plan.notes if not n.startswith("splits from")]
        plan.notes.append(previous.split_note(ls, o.val, o.test))
    if o.allow_leaks:
        plan.notes.append("identical image files may land in different splits (--allow-leaks)")
    else:
        hashes = previous.current if previous is not None else None
        plan.notes.append(keep_copies_together(plan.rows, plan.splits, images_dir, given, hashes))
    pool = pool_plan(o.workers, plan.source_pixels)  # ('threads' or 'processes', how many)
    options_kept = o.manifest_options(plan.spec, ls.columns, sources, corrected)
    if previous is not None:
        previous.check_options(options_kept, ls.class_names)
        options_kept["shard_size"] = previous.info.manifest["options"].get("shard_size")
    sharding = None
    if stable_shards:
        given_n = stable_shards if isinstance(stable_shards, dict) else None
        buckets = bucket_counts(plan, shard_limit, given_n)
        sharding = {"key": SHARDING_KEY, "buckets": buckets}
        runner = stable_engine(runner, StableLayout(buckets, previous))
    # a full disk or an unwritable OUT_DIR: one line naming it (nothing is left behind) and,
    # for raw records, about how much the dataset needs
    pixels = len(plan.rows) * int(np.prod(plan.spec.shape))
    with (
        writing(out_dir, pixels if o.record_format == "raw" else None),
        atomic_dir(out_dir, overwrite=o.overwrite or o.update) as tmp,
    ):
        job = ConvertJob(
            plan, images_dir, tmp, shard_limit, o.record_format, pool, o.seed, o.skip_bad, progress
        )
        done = runner.convert(job)
        sha, bad, changed = done.sha, done.bad, done.changed
        problems, notes, rows = plan.problems, plan.notes, plan.rows
        stop_if_bad(problems, plan.blockers, o.skip_bad)
        kept = [i for i in range(len(rows)) if i not in bad]
        counts = _counts(plan, kept)
        _check_train(counts, ls.class_names, problems, given)
        shard_names = done.shard_names
        ids = [stable_index(r.name) for r in rows] if sharding else range(len(rows))
        write_index(
            tmp,
            [
                (
                    ids[i],
                    rows[i].name,
                    index_label(rows[i].label),
                    rows[i].class_name,
                    plan.splits[i],
                    sha[i],
                )
                for i in kept
            ],
        )
        if problems:
            write_skipped(tmp, problems)
            notes.append(f"{len(problems)} bad rows skipped (listed in skipped.csv)")
        warned = kept_warnings(plan.warned, problems)
        notes += changed.notes() + warning_notes(warned)
        manifest = dataset_manifest(
            plan, o.record_format, counts, shard_names, options_kept, changed.notes()
        )
        if sharding:
            manifest["sharding"] = sharding
        manifest, said = task_manifest(
            manifest, rows, plan.splits, kept, o.task, ls.class_names, ls.target_names
        )
        notes += said
        n_shards = sum(len(v) for v in shard_names.values())
        notes.append(
            f"records: {o.record_format} pixels, {n_shards} shard{'s' * (n_shards != 1)}"
            f" ({done.described})"
        )
        write_json(tmp / "manifest.json", manifest)
    stable = {"written": runner.written, "kept": runner.kept} if sharding else None
    return BuildResult(manifest, out_dir, counts, problems, notes, ls.unused, warned, stable)


def _read_labels(o: BuildOptions, images_dir: Path, out_dir: Path) -> LabelSet:
    """The rows and labels: from the table (of the task), else from the class folders."""
    if o.task != "classify":
        assert o.labels is not None  # check_task_options refused a task without a table
        return load_task_table(
            o.labels,
            images_dir,
            o.task,
            image_col=o.image_col,
            label_col=o.label_col,
            label_delim=o.label_delim,
            label_cols=o.label_cols,
            target_cols=o.target_cols,
            encoding=o.encoding,
            split_col=o.split_col,
        )
    if o.labels is not None:
        return load_label_table(
            o.labels,
            images_dir,
            image_col=o.image_col,
            label_col=o.label_col,
            name_col=o.name_col,
            encoding=o.encoding,
            classes=o.classes,
            split_col=o.split_col,
        )
    return scan_class_folders(images_dir, o.classes, exclude=out_dir)


# --------------------------------------------------------------------------- checks
def _check_paths(images_dir: Path, out_dir: Path, labels, overwrite: bool, split_col) -> None:
    if not images_dir.is_dir():
        what = "not found" if not_found(images_dir) else "is not a folder"
        raise InputError(f"image folder {images_dir} {what}", "give the folder holding the images")
    inputs = (images_dir, labels)
    check_replaceable(out_dir, overwrite, "a cnncli dataset", "manifest.json", inputs=inputs)
    if split_col and not labels:
        raise UsageError("--split-col needs a label table", "pass --labels TABLE.csv")


def _check_train(counts, class_names, problems, given) -> None:
    """Every class needs images in the train split (after bad rows were skipped), and so
    does a regression dataset, which has no classes."""
    empty = [c for c in class_names if not counts.get("train", {}).get(c)]
    if empty or "train" not in counts:
        what = f"class {empty[0]!r} has no images in" if empty else "no image is in"
        raise DatasetError(
            f"{what} the train split" + (" after skipping bad rows" if problems else ""),
            f"fix or add images{' for that class' * bool(empty)}"
            + (f", or put some in train in the split {given.split()[0]}" if given else ""),
            problems=problems,
        )


def _counts(plan: Plan, kept: list[int]) -> dict[str, dict[str, int]]:
    ls = plan.labels
    return split_counts(plan.rows, plan.splits, kept, ls.task, ls.class_names)
