"""The plan of a build (cnncli.datasets.build): probe every image's header, choose the image
spec, check the classes and the split, and the rule that stops a build once every check has
run. A problem that stops the whole build, --skip-bad or not (class indices with a gap,
images of several sizes and no --size, a class too small for the split), is kept as a
"blocker" (where, error) while the other checks, the decode of every image among them, go
on; `stop_if_bad` then reports everything at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cnncli.datasets.labels import LabelRow, LabelSet
from cnncli.datasets.splits import assign_splits
from cnncli.datasets.stratify import multilabel_splits, regression_splits
from cnncli.errors import CnnError, DatasetError, ImageError, UsageError
from cnncli.images import ImageSpec, probe_image
from cnncli.images.decoder_warnings import image_warnings


@dataclass
class Plan:
    """What will be built: the rows whose header opened, their splits, the image spec, and
    the problems, blockers (where, error: they stop the build whatever --skip-bad says),
    decoder warnings (file, message) and notes found so far."""

    labels: LabelSet
    rows: list[LabelRow]
    spec: ImageSpec
    splits: list[str]
    source_pixels: int
    problems: list[tuple[str, str]]
    notes: list[str]
    blockers: list[tuple[str, CnnError]] = field(default_factory=list)
    warned: list[tuple[str, str]] = field(default_factory=list)


def plan_build(
    ls: LabelSet,
    images_dir: Path,
    color: str | None,
    size: tuple[int, int] | None,
    fit: str,
    val: float,
    test: float,
    seed: int,
    given: str | None,
    carve: float = 0.0,
) -> Plan:
    """Probe every image's header, choose the image spec, check the classes and split
    (`given`: where the rows' own splits came from, "column 'part'"; else --val/--test;
    `carve`: with `given`, the fraction of the train rows that becomes val, stratified)."""
    notes, problems, blockers = list(ls.notes), list(ls.problems), list(ls.blockers)
    if ls.unused:
        shown = ", ".join(ls.unused[:5]) + (", ..." if len(ls.unused) > 5 else "")
        notes.append(f"{len(ls.unused)} image files in the folder are not in the table: {shown}")
    warned: list[tuple[str, str]] = []
    spec, rows, pixels = choose_spec(
        ls.rows, images_dir, color, size, fit, problems, notes, blockers, warned
    )
    if ls.task == "classify":
        check_classes(rows, ls, blockers)
    if given:
        splits = [r.split for r in rows]
        if carve:
            try:
                splits = carve_val(rows, splits, ls, carve, seed)
            except DatasetError as e:
                blockers.append(("(split)", e))
            notes.append(f"splits from {given}; val: --val {carve} of the train list, stratified")
        else:
            notes.append(f"splits from {given} (--val/--test not used)")
    else:
        try:
            if ls.task == "multilabel":
                splits, said = multilabel_splits(rows, ls.class_names, val, test, seed)
                notes += said
            elif ls.task == "regression":
                splits = regression_splits(rows, val, test, seed)
            else:
                splits = assign_splits(rows, ls.class_names, val, test, seed)
        except DatasetError as e:  # the images are still checked, to list every problem
            blockers.append(("(split)", e))
            splits = ["train"] * len(rows)
    return Plan(ls, rows, spec, splits, pixels, problems, notes, blockers, warned)


def carve_val(
    rows: list[LabelRow], splits: list[str], ls: LabelSet, val: float, seed: int
) -> list[str]:
    """`splits` with the fraction `val` of its train rows made val, stratified as a
    --val split of the task is (by class, label or target bin) and seeded."""
    train = [i for i, s in enumerate(splits) if s == "train"]
    sub = [rows[i] for i in train]
    if ls.task == "multilabel":
        picked, _ = multilabel_splits(sub, ls.class_names, val, 0.0, seed)
    elif ls.task == "regression":
        picked = regression_splits(sub, val, 0.0, seed)
    else:
        picked = assign_splits(sub, ls.class_names, val, 0.0, seed)
    out = list(splits)
    for i, s in zip(train, picked, strict=True):
        out[i] = s
    return out


def stop_if_bad(problems: list, blockers: list, skip_bad: bool) -> None:
    """Raise when the build must stop: any blocker, or bad rows without --skip-bad. A lone
    blocker is raised as it is; otherwise one DatasetError whose `.problems` lists the
    blockers (where, message) first, then the bad rows."""
    if not blockers and (skip_bad or not problems):
        return
    if not blockers:
        n = len(problems)
        raise DatasetError(
            f"{n:,} problem{'s' * (n != 1)} in the inputs; nothing was written"
            + (f" ({problems[0][0]}: {problems[0][1]})" if n == 1 else ""),
            "fix them, or pass --skip-bad to build from the good rows",
            problems=problems,
        )
    first = blockers[0][1]
    if len(blockers) == 1 and not problems:
        raise first
    listed = [(where, e.message) for where, e in blockers] + list(problems)
    others = len(listed) - 1
    rest = "; then fix the other problems" + (
        ", or pass --skip-bad to leave those rows out" if problems else ""
    )
    raise DatasetError(
        f"{first.message}; {others:,} other problem{'s' * (others != 1)} in the inputs; "
        "nothing was written",
        (first.hint or "fix it") + rest,
        problems=listed,
    )


def kept_warnings(warned: list[tuple[str, str]], problems: list) -> list[tuple[str, str]]:
    """The decoder warnings (file, message) of the images kept, each once (the header probe
    and the decode can say the same thing; a file that failed has them in its reason)."""
    bad = {name for name, _ in problems}
    return [w for w in dict.fromkeys(warned) if w[0] not in bad]


def warning_notes(warned: list[tuple[str, str]]) -> list[str]:
    if not warned:
        return []
    files = len({f for f, _ in warned})
    shown = "; ".join(f"{f}: {m}" for f, m in warned[:3]) + ("; ..." if len(warned) > 3 else "")
    return [f"{files} image{'s' * (files != 1)} decoded with warnings (kept): {shown}"]


def check_classes(rows: list[LabelRow], ls: LabelSet, blockers: list[tuple[str, CnnError]]) -> None:
    present = Counter(r.label for r in rows)
    if len(ls.class_names) < 2:
        blockers.append(
            (
                "(classes)",
                DatasetError(
                    f"only one class ({ls.class_names[0] if ls.class_names else 'none'}): "
                    "a classifier needs two or more",
                    "add images of another class",
                ),
            )
        )
        return
    missing = [ls.class_names[i] for i in range(len(ls.class_names)) if not present[i]]
    if missing:
        more = f" (and {len(missing) - 1} more classes)" if len(missing) > 1 else ""
        blockers.append(
            (
                "(classes)",
                DatasetError(
                    f"class {missing[0]!r} has no usable images{more}",
                    "add images for it or leave it out with --classes",
                ),
            )
        )


def choose_spec(
    rows: list[LabelRow],
    images_dir: Path,
    color: str | None,
    size: tuple[int, int] | None,
    fit: str,
    problems: list[tuple[str, str]],
    notes: list[str],
    blockers: list[tuple[str, CnnError]],
    warned: list[tuple[str, str]],
) -> tuple[ImageSpec, list, int]:
    """(ImageSpec, rows whose header opened, total source pixels): given colour/size, else
    the majority colour and the common size (several sizes and no --size: a blocker, and
    the commonest size is used to check the images). Every header is probed (0.3 ms per
    PNG), which also refuses empty files, non-images and bombs before any decoding."""
    kept: list = []
    colors: Counter[str] = Counter()
    sizes: Counter[tuple[int, int]] = Counter()
    first: dict[tuple[int, int], str] = {}
    for r in rows:
        said: list[str] = []
        try:
            with image_warnings() as said:
                h, w, c = probe_image(images_dir / r.path)
        except ImageError as e:
            problems.append((r.name, with_warnings(e.reason, said)))
            continue
        warned += [(r.name, m) for m in said]
        kept.append(r)
        colors[c] += 1
        sizes[(h, w)] += 1
        first.setdefault((h, w), r.name)
    pixels = sum(h * w * n for (h, w), n in sizes.items())
    if color is None:
        rank = {"rgba": 0, "rgb": 1, "grayscale": 2}  # ties: keep the richer mode
        color = min(colors, key=lambda c: (-colors[c], rank[c])) if colors else "rgb"
        shown = ", ".join(f"{c} {n}" for c, n in colors.most_common())
        notes.append(f"colour: {color} (the mode most images have: {shown}; --color to choose)")
    if size is None:
        if len(sizes) > 1:
            blockers.append(
                (
                    "(sizes)",
                    UsageError(
                        f"the images differ in size: {_sizes_shown(sizes, first)}",
                        "choose one with --size HxW (and --fit stretch|crop|pad)",
                    ),
                )
            )
        size = sizes.most_common(1)[0][0] if sizes else (1, 1)
        if len(sizes) == 1:
            notes.append(f"size: {size[0]}x{size[1]} (every image has it; --size to change)")
    spec = ImageSpec(height=size[0], width=size[1], color=color, fit=fit)
    return spec, kept, pixels


def _sizes_shown(sizes: Counter, first: dict) -> str:
    """'500x500 in 40 images (first a/1.png), 480x640 in 1 (b/odd.png)': each size with
    the first file that has it, the commonest first (4 at most)."""
    parts = []
    for k, ((h, w), n) in enumerate(sizes.most_common(4)):
        what = f"{n} image{'s' * (n != 1)}" if k == 0 else str(n)
        parts.append(f"{h}x{w} in {what} ({'first ' if n > 1 else ''}{first[(h, w)]})")
    more = f", and {len(sizes) - 4} more sizes" if len(sizes) > 4 else ""
    return ", ".join(parts) + more


def with_warnings(reason: str, said: list[str]) -> str:
    """A bad row's reason with what the decoder said about that file."""
    return reason + "".join(f"; {m}" for m in said if m not in reason)
