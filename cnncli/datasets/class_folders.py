"""Labels from class folders: one subfolder per class (`image_dataset_from_directory`'s
convention), in natural order, hidden files and folders ignored."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cnncli.datasets.image_paths import inside, list_image_files, shown_name
from cnncli.datasets.labels import LabelRow, LabelSet
from cnncli.datasets.tables import nfc
from cnncli.errors import CnnError, DatasetError, UsageError
from cnncli.images import is_image_file, natural_key


def scan_class_folders(
    images_dir: str | os.PathLike,
    classes: Sequence[str] | None = None,
    exclude: str | os.PathLike | None = None,
) -> LabelSet:
    """One subfolder per class: natural order (or `classes`), hidden files and folders
    ignored, and `exclude` (the dataset being written, when it sits inside IMAGES_DIR)."""
    images_dir = Path(images_dir)
    skip = os.path.realpath(exclude) if exclude is not None else None
    found = {
        nfc(p.name): p.name
        for p in images_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and os.path.realpath(p) != skip
    }
    if classes:
        missing = [c for c in classes if nfc(c) not in found]
        if missing:
            raise UsageError(
                f"no folder for class {missing[0]!r} in {images_dir}",
                f"the class folders are {', '.join(sorted(found, key=natural_key)) or 'none'}",
            )
        names = [nfc(c) for c in classes]
    else:
        names = sorted(found, key=natural_key)
    if not names:
        raise DatasetError(
            f"{images_dir} has no class folders and no --labels table was given",
            "put each class's images in its own subfolder, or pass --labels TABLE.csv",
        )
    rows, listing, others = [], [], 0
    root_real = os.path.realpath(images_dir)
    problems: list[tuple[str, str]] = []
    blockers: list[tuple[str, CnnError]] = []
    for idx, cname in enumerate(names):
        sub = found[cname]
        if shown_name(cname) != cname:  # its files could not be named in the dataset
            blockers.append(
                (
                    shown_name(cname),
                    DatasetError(
                        f"class folder name {shown_name(cname)!r} is not valid UTF-8",
                        "rename the folder (its files were not checked)",
                    ),
                )
            )
            continue
        for key, on_disk in list_image_files(images_dir / sub).items():  # find_images' order
            rel = os.path.join(sub, on_disk)
            name = f"{cname}/{key}"
            if shown_name(name) != name:
                problems.append((shown_name(name), "file name is not valid UTF-8: rename it"))
                continue
            if not inside(images_dir / rel, root_real):
                problems.append((name, "symlink points outside IMAGES_DIR and is refused"))
                continue
            rows.append(LabelRow(rel, name, idx, cname, None, 0))
            listing.append(f"{idx}\t{name}")
        for _root, dirs, fs in os.walk(images_dir / sub):  # only counts what find_images skips
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            others += sum(1 for f in fs if not f.startswith(".") and not is_image_file(f))
    notes = [f"class folders: {len(names)} ({', '.join(map(shown_name, names))})"]
    if others:
        notes.append(f"{others} files without an image extension ignored")
    unused = [shown_name(k) for k in list_image_files(images_dir) if "/" not in k]
    extra = sorted(set(found) - set(names), key=natural_key)
    if extra:
        notes.append(f"folders not in --classes left out: {', '.join(map(shown_name, extra))}")
    return LabelSet(
        rows=rows,
        class_names=[shown_name(n) for n in names],
        problems=problems,
        unused=unused,
        notes=notes,
        sha256=hashlib.sha256("\n".join(listing).encode("utf-8")).hexdigest(),
        columns={},
        blockers=blockers,
    )
