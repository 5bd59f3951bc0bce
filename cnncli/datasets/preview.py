"""`preview_sheet`: the first images of each class of a dataset split as one contact sheet,
captioned with class names (cnncli.drawing.sheets; Korean legible with the bundled font, or indices
plus a legend when the font cannot draw a name). A multilabel dataset has a row per label (and
one for images without a label), each image captioned with all its labels ("대리석;벽돌"); a
regression dataset a row per quarter of the first target's range, captioned with the values."""

from __future__ import annotations

import os
from pathlib import Path

from cnncli.datasets.store import iter_records, open_dataset
from cnncli.datasets.targets import format_values
from cnncli.errors import OutputExistsError, UsageError


def preview_sheet(
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    per_class: int = 8,
    overwrite: bool = False,
    cell: int = 128,
) -> dict:
    """Write a PNG of up to `per_class` images per class (one row per class).

    Returns {"path", "caption_mode" ("text" | "legend" | "none"), "legend", "counts", "notes"}.
    Reads records until every class has enough, so large datasets are not read in full.
    """
    from cnncli.drawing.save import save_png
    from cnncli.drawing.sheets import contact_sheet

    if per_class < 1:
        raise UsageError(f"--per-class must be at least 1, got {per_class}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    ds = open_dataset(dataset_dir)
    ds.shard_paths(split)  # a clear DatasetError for a split the dataset does not have
    names, groups, caption, wanted = _rows(ds, split, per_class)
    picked: dict[int, list] = {i: [] for i in range(len(names))}
    for rec in iter_records(ds, split):
        for i in groups(rec):
            if len(picked[i]) < per_class:
                picked[i].append(rec)
        if all(len(picked[i]) >= wanted[i] for i in picked):
            break
    items = []
    for i in range(len(names)):
        recs = sorted(picked[i], key=lambda r: r.index)
        items += [(r.image, caption(r)) for r in recs]
        items += [(_blank(ds.image.shape), None)] * (per_class - len(recs))
    sheet = contact_sheet(items, per_row=per_class, cell=cell, title=f"{ds.path.name}: {split}")
    save_png(sheet, out, overwrite=overwrite)
    mode = sheet.info.get("caption_mode", "text")
    legend = list(sheet.info.get("legend", []))
    rows = {"classify": "classes", "multilabel": "labels", "regression": "ranges of the target"}
    notes = [f"{len(names)} {rows[ds.task]} x up to {per_class} images from split {split!r}"]
    if mode == "text":
        what = {"classify": "class names", "multilabel": "each image's labels"}
        notes.append(
            f"captions: {what.get(ds.task, 'target values')}, drawn with the bundled Hangul font"
        )
    elif mode == "legend":
        notes.append(
            "the font cannot draw every class name: cells show indices; " + "; ".join(legend)
        )
    return {
        "path": str(out),
        "caption_mode": mode,
        "legend": legend,
        "counts": {names[i]: len(picked[i]) for i in picked},
        "notes": notes,
    }


def _rows(ds, split: str, per_class: int):
    """(row names, record -> the rows it belongs in, record -> its caption, {row: images
    to wait for}) for the dataset's task."""
    if ds.task == "classify":
        names = ds.class_names
        wanted = {i: min(per_class, ds.per_class(split).get(n, 0)) for i, n in enumerate(names)}
        return names, lambda r: [r.label], lambda r: names[r.label], wanted
    if ds.task == "multilabel":
        labels = ds.class_names
        names = [*labels, "(no label)"]
        counts = [
            *(ds.per_class(split).get(n, 0) for n in labels),
            ds.manifest.get("unlabeled", {}).get(split, 0),
        ]

        def rows_of(r):
            on = [k for k, v in enumerate(r.label) if v]
            return on or [len(labels)]

        def caption(r):
            return ";".join(n for n, v in zip(labels, r.label, strict=True) if v) or "(no label)"

        return names, rows_of, caption, {i: min(per_class, n) for i, n in enumerate(counts)}
    first, targets = ds.targets[0], [t.name for t in ds.targets]
    step = (first.max - first.min) / 4 or 1.0
    names = [
        f"{first.name} {first.min + k * step:.4g}..{first.min + (k + 1) * step:.4g}"
        for k in range(4)
    ]

    def bin_of(r):
        return [min(3, max(0, int((float(r.label[0]) - first.min) / step)))]

    def values(r):
        return format_values(targets, [float(v) for v in r.label], sep="\n")

    return names, bin_of, values, {i: per_class for i in range(4)}  # read until each is full


def _blank(shape):
    import numpy as np

    return np.full(shape, 255, dtype=np.uint8)
