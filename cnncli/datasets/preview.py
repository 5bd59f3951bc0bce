"""`preview_sheet`: the first images of each class of a dataset split as one contact sheet,
captioned with class names (cnncli.drawing.sheets; Korean legible with the bundled font, or indices
plus a legend when the font cannot draw a name)."""

from __future__ import annotations

from pathlib import Path

from cnncli.datasets.store import iter_records, open_dataset
from cnncli.errors import OutputExistsError, UsageError


def preview_sheet(dataset_dir, out, *, split: str = "train", per_class: int = 8,
                  overwrite: bool = False, cell: int = 128) -> dict:  # fmt: skip
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
    names = ds.class_names
    picked: dict[int, list] = {i: [] for i in range(len(names))}
    wanted = {i: min(per_class, ds.per_class(split).get(n, 0)) for i, n in enumerate(names)}
    for rec in iter_records(ds, split):
        if len(picked[rec.label]) < per_class:
            picked[rec.label].append(rec)
        if all(len(picked[i]) >= wanted[i] for i in picked):
            break
    items = []
    for i in range(len(names)):
        recs = sorted(picked[i], key=lambda r: r.index)
        items += [(r.image, names[i]) for r in recs]
        items += [(_blank(ds.image.shape), None)] * (per_class - len(recs))
    sheet = contact_sheet(items, per_row=per_class, cell=cell, title=f"{ds.path.name}: {split}")
    save_png(sheet, out, overwrite=overwrite)
    mode = sheet.info.get("caption_mode", "text")
    legend = list(sheet.info.get("legend", []))
    notes = [f"{len(names)} classes x up to {per_class} images from split {split!r}"]
    if mode == "text":
        notes.append("captions: class names, drawn with the bundled Hangul font")
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


def _blank(shape):
    import numpy as np

    return np.full(shape, 255, dtype=np.uint8)
