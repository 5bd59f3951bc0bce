"""`build_dataset`: image folder (+ label table) -> dataset folder (manifest, index, shards).

The steps, and why in this order:
1. labels: read the table or the class folders (cnncli.datasets.labels); every row-level problem
   is collected, none is raised alone.
2. probe: open each image's header only (size, mode, orientation) to choose the default
   colour mode (the one most inputs have) and size (kept when all share it).
3. split: stratified by class, seeded per class, so the same inputs and seed give the same
   split (and a byte-identical manifest and index).
4. convert: a process pool (spawn-safe, no TensorFlow in the workers) opens and fully checks
   each image (cnncli.images.open_image), converts it (cnncli.images.convert_image), encodes
   the TFRecord and hashes the source; the main process writes records in a fixed order,
   streaming into shards inside a temporary folder beside OUT_DIR (bounded in-flight work,
   so memory stays flat). Checking reuses this single decode pass.
5. if anything was wrong and --skip-bad was not given: list every problem, write nothing.
   Otherwise index.csv, skipped.csv and manifest.json are written and the folder renamed.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnncli import __version__
from cnncli.atomic import atomic_dir, write_json, write_text
from cnncli.datasets.labels import LabelRow, LabelSet, load_label_table, scan_class_folders
from cnncli.datasets.tfrecord import encode_example, frame
from cnncli.errors import DatasetError, ImageError, InputError, OutputExistsError, UsageError
from cnncli.images import COLORS, FITS, ImageSpec, _open_formats, natural_color, parse_size

FORMAT_VERSION = 1
RECORD_FORMATS = ("raw", "png")
DEFAULT_RECORD_FORMAT = "raw"  # measured: see docs/FORMAT.md ("Record encoding")
DEFAULT_SHARD_SIZE = "64MB"
PNG_COMPRESS_LEVEL = 1  # measured: level 6 is 2.2x slower to write for 9% smaller files
SPLITS = ("train", "val", "test")
# Below this many pixels in total, starting worker processes costs more than it saves
# (measured: spawning 2 workers takes about 0.3 s of wall time and 0.6 s of CPU; one
# 500x500 RGBA PNG takes about 20 ms to check and convert, so the pool wins from ~30 such).
POOL_MIN_PIXELS = 8_000_000

Progress = Callable[[int, int], None]  # progress(done, total)


@dataclass
class BuildResult:
    manifest: dict
    out_dir: Path
    counts: dict[str, dict[str, int]]  # split -> class name -> images
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "classes": [c["name"] for c in self.manifest["classes"]],
            "image": self.manifest["image"],
            "encoding": self.manifest["encoding"],
            "counts": self.counts,
            "total": sum(sum(c.values()) for c in self.counts.values()),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "unused_files": len(self.unused),
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- options
def parse_shard_size(value) -> tuple[str, int]:
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


def _check_options(val, test, color, fit, record_format):
    for name, v in (("--val", val), ("--test", test)):
        if not 0 <= v < 1:
            raise UsageError(f"{name} must be a fraction from 0 to below 1, got {v}")
    if val + test >= 1:
        raise UsageError(f"--val {val} and --test {test} leave nothing to train on")
    if color is not None and color not in COLORS:
        raise UsageError(f"unknown colour {color!r}", f"use one of {', '.join(COLORS)}")
    if fit not in FITS:
        raise UsageError(f"unknown fit {fit!r}", f"use one of {', '.join(FITS)}")
    if record_format not in RECORD_FORMATS:
        raise UsageError(
            f"unknown record format {record_format!r}", f"use one of {', '.join(RECORD_FORMATS)}"
        )


# --------------------------------------------------------------------------- workers
def probe(path: str) -> tuple[int, int, str]:
    """(height, width, natural colour) from the header only (orientation applied)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_open_formats()) as img:
                w, h = img.size
                limit = Image.MAX_IMAGE_PIXELS
                if limit and w * h > limit:
                    raise ImageError(
                        path,
                        f"{w}x{h} = {w * h:,} pixels is over the decompression-bomb limit "
                        f"of {limit:,}; refused without decoding",
                    )
                if _orientation(img) in (5, 6, 7, 8):  # rotated by 90 degrees
                    w, h = h, w
                return h, w, natural_color(img)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(path, f"refused as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image, or a format cnncli cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(path, f"truncated or corrupt image data ({e})") from None


def _orientation(img) -> int | None:
    """EXIF orientation from the header. PNG's getexif() would decode the whole image to
    look for an eXIf chunk after the pixels (measured: 22 ms per 500x500 PNG), so for PNG
    only a chunk before the pixels counts, which is where writers put it."""
    from PIL import Image

    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return None
            exif = Image.Exif()
            exif.load(raw)
            return exif.get(0x0112)
        return img.getexif().get(0x0112)
    except Exception:  # a broken EXIF block: the full decode will say if the file is bad
        return None


def convert_record(task: tuple) -> tuple:
    """Worker: (path, spec dict, encoding, index, label, name) -> ('ok', record, sha256)
    or ('bad', reason, sha256). Opens and checks the image fully (one decode)."""
    from cnncli.images import convert_image, open_image

    path, spec_d, encoding, index, label, name = task
    try:
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        return ("bad", f"cannot read ({e.strerror or e})", "")
    try:
        img = open_image(path)
        arr = convert_image(img, ImageSpec.from_dict(spec_d))
    except ImageError as e:
        return ("bad", e.reason, sha)
    if encoding == "raw":
        data = np.ascontiguousarray(arr).tobytes()
    else:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(
            buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL
        )
        data = buf.getvalue()
    record = frame(encode_example({"image": data, "label": label, "index": index, "path": name}))
    return ("ok", record, sha)


def _run_chunk(fn_name: str, chunk: list) -> list:
    return [globals()[fn_name](t) for t in chunk]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def ordered_map(fn: Callable, items: Iterable, workers: int, chunksize: int = 4) -> Iterator:
    """fn over items, results in order, in a spawn-safe process pool with at most
    2 chunks per worker in flight (memory stays flat however many items there are)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_ignore_sigint,
    )
    pending: deque = deque()
    it = iter(items)
    try:
        while True:
            while len(pending) < 2 * workers:
                chunk = [t for _, t in zip(range(chunksize), it, strict=False)]
                if not chunk:
                    break
                pending.append(pool.submit(_run_chunk, fn.__name__, chunk))
            if not pending:
                return
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- splits
def _split_count(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, math.floor(fraction * n + 0.5))


def assign_splits(rows: list[LabelRow], class_names: list[str], val: float, test: float,
                  seed: int) -> list[str]:  # fmt: skip
    """Stratified, reproducible split: each class shuffled with its own seeded generator."""
    splits = ["train"] * len(rows)
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_class.setdefault(r.label, []).append(i)
    too_small = []
    for label, members in sorted(by_class.items()):
        n = len(members)
        n_val, n_test = _split_count(val, n), _split_count(test, n)
        if n - n_val - n_test < 1:
            too_small.append((class_names[label], n, n_val + n_test + 1))
            continue
        order = np.random.default_rng([seed, label]).permutation(n)
        for k, pos in enumerate(order):
            if k < n_test:
                splits[members[pos]] = "test"
            elif k < n_test + n_val:
                splits[members[pos]] = "val"
    if too_small:
        name, n, need = too_small[0]
        more = f" (and {len(too_small) - 1} more classes)" if len(too_small) > 1 else ""
        raise DatasetError(
            f"class {name!r} has {n} image{'s' * (n != 1)}, too few for --val {val} and "
            f"--test {test}: it needs at least {need}{more}",
            "add images, lower --val/--test, or give a split column with --split-col",
        )
    return splits


# --------------------------------------------------------------------------- shards
class ShardWriter:
    """Writes one split's records into shards, starting a new shard when one is full."""

    def __init__(self, folder: Path, split: str, limit: tuple[str, int]):
        self.folder, self.split, (self.kind, self.limit) = folder, split, limit
        self.parts: list[Path] = []
        self._f = None
        self._bytes = self._count = 0

    def write(self, record: bytes) -> None:
        if self._f is None:
            part = self.folder / f".{self.split}-{len(self.parts):05d}.part"
            self.parts.append(part)
            self._f = open(part, "wb")  # noqa: SIM115 - closed in close()/roll
            self._bytes = self._count = 0
        self._f.write(record)
        self._bytes += len(record)
        self._count += 1
        if (self._bytes if self.kind == "bytes" else self._count) >= self.limit:
            self._f.close()
            self._f = None

    def abort(self) -> None:
        """Close an open shard file (the temporary folder is removed by the caller)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def close(self) -> list[str]:
        """Close and rename the shards to their final names; return those names."""
        if self._f is not None:
            self._f.close()
            self._f = None
        names = []
        for i, part in enumerate(self.parts):
            name = f"{self.split}-{i:05d}-of-{len(self.parts):05d}.tfrecord"
            os.replace(part, self.folder / name)
            names.append(name)
        return names


# --------------------------------------------------------------------------- build
def build_dataset(
    images_dir,
    out_dir,
    *,
    labels=None,
    image_col: str | None = None,
    label_col: str | None = None,
    name_col: str | None = None,
    encoding: str | None = None,
    classes=None,
    color: str | None = None,
    size=None,
    fit: str = "stretch",
    val: float = 0.2,
    test: float = 0.0,
    seed: int = 0,
    split_col: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    record_format: str = DEFAULT_RECORD_FORMAT,
    shard_size=DEFAULT_SHARD_SIZE,
    progress: Progress | None = None,
) -> BuildResult:
    """Build a dataset folder (docs/FORMAT.md) from IMAGES_DIR and an optional label table.

    Raises DatasetError (with `.problems`, every (file, reason) found) when inputs are bad
    and `skip_bad` is false; nothing is written then. `progress(done, total)` is called as
    images are converted.
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    _check_options(val, test, color, fit, record_format)
    shard_limit = parse_shard_size(shard_size)
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if isinstance(size, str):
        size = parse_size(size)
    if not images_dir.is_dir():
        what = "is not a folder" if images_dir.exists() else "not found"
        raise InputError(f"image folder {images_dir} {what}", "give the folder holding the images")
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(out_dir)
    if out_dir.exists():
        _check_replaceable(out_dir, images_dir, labels)
    if split_col and not labels:
        raise UsageError("--split-col needs a label table", "pass --labels TABLE.csv")

    if labels is not None:
        ls = load_label_table(labels, images_dir, image_col=image_col, label_col=label_col,
                              name_col=name_col, encoding=encoding, classes=classes,
                              split_col=split_col)  # fmt: skip
    else:
        ls = scan_class_folders(images_dir, classes, exclude=out_dir)
    notes = list(ls.notes)
    problems: list[tuple[str, str]] = list(ls.problems)
    rows = list(ls.rows)
    if ls.unused:
        shown = ", ".join(ls.unused[:5]) + (", ..." if len(ls.unused) > 5 else "")
        notes.append(f"{len(ls.unused)} image files in the folder are not in the table: {shown}")

    spec, rows, source_pixels = _choose_spec(rows, images_dir, color, size, fit, problems, notes)
    _check_classes(rows, ls, problems)
    if split_col:
        splits = [r.split for r in rows]
        notes.append(f"splits from column {split_col!r} (--val/--test not used)")
    else:
        try:
            splits = assign_splits(rows, ls.class_names, val, test, seed)
        except DatasetError as e:
            e.problems = problems + e.problems
            raise

    workers = workers or default_workers()
    if source_pixels < POOL_MIN_PIXELS:  # decoding the sources is most of the work
        workers = 1
    order = np.random.default_rng([seed, 7919]).permutation(len(rows)) if rows else []
    tasks = (
        (str(images_dir / rows[i].path), spec.to_dict(), record_format, int(i),
         rows[i].label, rows[i].name)
        for i in order
    )  # fmt: skip
    options = {
        "labels": Path(labels).name if labels is not None else None,
        "columns": {k: v for k, v in ls.columns.items() if k != "ignored"} or None,
        "classes": classes,
        "color": spec.color,
        "size": [spec.height, spec.width],
        "fit": spec.fit,
        "val": val if not split_col else None,
        "test": test if not split_col else None,
        "seed": seed,
        "split_col": split_col,
        "skip_bad": skip_bad,
        "record_format": record_format,
        "shard_size": shard_size if isinstance(shard_size, int) else str(shard_size),
    }
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        writers = {s: ShardWriter(tmp, s, shard_limit) for s in SPLITS}
        sha: dict[int, str] = {}
        bad_rows: set[int] = set()
        writing = skip_bad or not problems  # otherwise only check, to list every problem
        total = len(rows)
        if progress:
            progress(0, total)
        # closing(): the pool stops at once on an error or Ctrl-C, not when garbage collected
        with ExitStack() as stack:
            for w in writers.values():
                stack.callback(w.abort)
            results = stack.enter_context(closing(ordered_map(convert_record, tasks, workers)))
            for done, (i, result) in enumerate(zip(order, results, strict=True), 1):
                status, payload, sha[int(i)] = result
                if status == "ok":
                    if writing:
                        writers[splits[i]].write(payload)
                else:
                    problems.append((rows[i].name, payload))
                    bad_rows.add(int(i))
                    writing = skip_bad
                if progress:
                    progress(done, total)
        if problems and not skip_bad:
            n = len(problems)
            raise DatasetError(
                f"{n} problem{'s' * (n != 1)} in the inputs; nothing was written"
                + (f" ({problems[0][0]}: {problems[0][1]})" if n == 1 else ""),
                "fix them, or pass --skip-bad to build from the good rows",
                problems=problems,
            )
        kept = [i for i in range(len(rows)) if i not in bad_rows]
        counts = _counts(rows, splits, kept, ls.class_names)
        if not counts.get("train") or any(counts["train"][c] == 0 for c in ls.class_names):
            empty = [c for c in ls.class_names if not counts.get("train", {}).get(c)]
            raise DatasetError(
                f"class {empty[0]!r} has no images in the train split"
                + (" after skipping bad rows" if problems else ""),
                "fix or add images for that class"
                + (", or put some in train in the split column" if split_col else ""),
                problems=problems,
            )
        shard_names = {s: w.close() for s, w in writers.items()}
        _write_index(tmp, rows, splits, kept, sha)
        if problems:
            write_text(tmp / "skipped.csv", _csv([("path", "reason"), *problems]))
            notes.append(f"{len(problems)} bad rows skipped (listed in skipped.csv)")
        manifest = {
            "format": "cnncli-dataset",
            "format_version": FORMAT_VERSION,
            "cnncli_version": __version__,
            "classes": [{"index": i, "name": n} for i, n in enumerate(ls.class_names)],
            "image": spec.to_dict(),
            "encoding": record_format,
            "splits": {
                s: {
                    "count": sum(counts[s].values()),
                    "per_class": counts[s],
                    "shards": shard_names[s],
                }
                for s in SPLITS
                if s in counts
            },
            "labels_sha256": ls.sha256,
            "skipped": len(problems),
            "options": options,
        }
        n_shards = sum(len(v) for v in shard_names.values())
        notes.append(
            f"records: {record_format} pixels, {n_shards} shard{'s' * (n_shards != 1)}"
            f" ({workers} worker process{'es' * (workers != 1)})"
        )
        write_json(tmp / "manifest.json", manifest)
    return BuildResult(manifest, out_dir, counts, problems, notes, ls.unused)


def _check_replaceable(out_dir: Path, images_dir: Path, labels) -> None:
    """--overwrite replaces an earlier dataset, never the inputs or some other folder."""
    out_real = os.path.realpath(out_dir)
    for source in (images_dir, labels):
        if source is None:
            continue
        real = os.path.realpath(source)
        if real == out_real or real.startswith(out_real.rstrip(os.sep) + os.sep):
            raise UsageError(
                f"{out_dir} holds the inputs ({source}); --overwrite would delete them",
                "choose another output folder",
            )
    if not (out_dir / "manifest.json").is_file():
        raise UsageError(
            f"{out_dir} exists and is not a cnncli dataset; --overwrite only replaces datasets",
            "choose another output folder, or remove it yourself",
        )


def _choose_spec(rows, images_dir, color, size, fit, problems, notes):
    """(ImageSpec, rows whose header opened, total source pixels): given colour/size, else
    the majority colour and the common size. Every header is probed (0.3 ms per PNG), which
    also refuses empty files, non-images and bombs before any decoding."""
    kept, colors, sizes = [], Counter(), Counter()
    for r in rows:
        try:
            h, w, c = probe(str(images_dir / r.path))
        except ImageError as e:
            problems.append((r.name, e.reason))
            continue
        kept.append(r)
        colors[c] += 1
        sizes[(h, w)] += 1
    pixels = sum(h * w * n for (h, w), n in sizes.items())
    if color is None or size is None:
        if color is None:
            rank = {"rgba": 0, "rgb": 1, "grayscale": 2}  # ties: keep the richer mode
            color = min(colors, key=lambda c: (-colors[c], rank[c])) if colors else "rgb"
            shown = ", ".join(f"{c} {n}" for c, n in colors.most_common())
            notes.append(f"colour: {color} (the mode most images have: {shown}; --color to choose)")
        if size is None:
            if len(sizes) > 1:
                shown = ", ".join(f"{h}x{w}: {n}" for (h, w), n in sizes.most_common(4))
                more = ", ..." if len(sizes) > 4 else ""
                msg = f"the images differ in size ({shown}{more})"
                hint = "choose one with --size HxW (and --fit stretch|crop|pad)"
                if problems:
                    raise DatasetError(f"{len(problems)} problems in the inputs, and {msg}",
                                       hint, problems=problems)  # fmt: skip
                raise UsageError(msg, hint)
            size = next(iter(sizes)) if sizes else (1, 1)
            notes.append(f"size: {size[0]}x{size[1]} (every image has it; --size to change)")
    spec = ImageSpec(height=size[0], width=size[1], color=color, fit=fit)
    return spec, kept, pixels


def _check_classes(rows, ls: LabelSet, problems):
    present = Counter(r.label for r in rows)
    if len(ls.class_names) < 2:
        raise DatasetError(
            f"only one class ({ls.class_names[0] if ls.class_names else 'none'}): "
            "a classifier needs two or more",
            "add images of another class",
            problems=problems,
        )
    missing = [ls.class_names[i] for i in range(len(ls.class_names)) if not present[i]]
    if missing:
        raise DatasetError(
            f"class {missing[0]!r} has no usable images",
            "add images for it or leave it out with --classes",
            problems=problems,
        )


def _counts(rows, splits, kept, class_names) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for i in kept:
        per = counts.setdefault(splits[i], dict.fromkeys(class_names, 0))
        per[rows[i].class_name] += 1
    return {s: counts[s] for s in SPLITS if s in counts}


def _csv(rows) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _write_index(folder: Path, rows, splits, kept, sha) -> None:
    table = [("index", "path", "label", "class_name", "split", "sha256")]
    table += [(i, rows[i].name, rows[i].label, rows[i].class_name, splits[i], sha[i]) for i in kept]
    write_text(folder / "index.csv", _csv(table))
