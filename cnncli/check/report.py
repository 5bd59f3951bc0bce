"""The report folder of `cnncli dataset check`: check.json (what --json prints), issues.csv
(image, problem, detail, suggestion: one row per image to look at, the file `dataset build
--exclude` and `--relabel` read), index.html (cnncli.check.page) and the pictures it shows,
written by cnncli.check.run into a temporary folder renamed into place at the end
(cnncli.atomic), so an interrupted check leaves no half report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnncli.check.scan import record_order
from cnncli.datasets.store import DatasetInfo, iter_records
from cnncli.drawing.grids import display_factor, enlarge
from cnncli.drawing.save import save_png

ISSUES_HEADER = ("image", "problem", "detail", "suggestion")
EXCLUDE = "exclude"  # the suggestion of a row `dataset build --exclude` leaves out
LABEL_PROBLEM = "label issue"  # the rows whose suggestion `dataset build --relabel` applies
SHOWN_GROUPS = 100  # duplicate groups drawn on the page (all are in check.json)
SHOWN_ISSUES = 100  # label issues drawn
SHOWN_OTHERS = 50  # blank and outlier images drawn
PICTURE_MIN = 96  # small images are enlarged (nearest neighbour) to at least this
PICTURE_MAX = 192  # large ones reduced to at most this


def keeper(group: dict) -> int:
    """The position in a duplicate group of the image kept: the first in train, else the first."""
    return group["splits"].index("train") if "train" in group["splits"] else 0


def issue_rows(result: Any) -> list[tuple[str, str, str, str]]:
    """issues.csv's rows: duplicates (all but the kept image of each group: exclude; the
    kept image of a conflicting group: its label to check), label issues (the suggested
    label), blank images (exclude), outliers (to look at)."""
    rows = []
    for g in result.duplicates:
        k = keeper(g)
        kept = f"{g['images'][k]} ({g['splits'][k]}, {g['labels'][k]})"
        flags = []
        if g["leak"]:
            flags.append("leak across " + "/".join(sorted(set(g["splits"]))))
        if g["conflict"]:
            flags.append("conflicting labels " + ", ".join(sorted(set(g["labels"]))))
        tail = "".join(f"; {f}" for f in flags)
        for j, name in enumerate(g["images"]):
            if j != k:
                rows.append(
                    (
                        name,
                        f"{g['kind']} duplicate",
                        f"same picture as {kept}; this one {g['splits'][j]}, "
                        f"{g['labels'][j]}{tail}",
                        EXCLUDE,
                    )
                )
        if g["conflict"]:
            rows.append(
                (
                    g["images"][k],
                    "duplicate label conflict",
                    f"kept copy of a group with labels {', '.join(sorted(set(g['labels'])))}",
                    "",
                )
            )
    regression = result.task == "regression"
    for e in result.label_issues:
        how = "confident learning" if e["confident"] else "out-of-fold prediction"
        if regression:
            rows.append(
                (
                    e["image"],
                    "target far from prediction",
                    f"given {e['given']}, out-of-fold prediction {e['suggested']} "
                    f"({e['score']:.1f} robust std away)",
                    "",
                )
            )
        else:
            rows.append(
                (
                    e["image"],
                    LABEL_PROBLEM,
                    f"given {e['given']}, suggested {e['suggested']} (score "
                    f"{e['score']:.3f}, {how})",
                    e["suggested"],
                )
            )
    for e in result.blank:
        rows.append((e["image"], "blank image", e["detail"], EXCLUDE))
    for e in result.outliers:
        rows.append((e["image"], e["problem"], e["detail"], ""))
    return rows


def _picture(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) > PICTURE_MAX:
        from PIL import Image

        from cnncli.drawing.save import to_pil

        pic = to_pil(image)
        pic.thumbnail((PICTURE_MAX, PICTURE_MAX), Image.Resampling.BOX)
        return np.asarray(pic)
    return enlarge(
        image[:, :, 0] if image.shape[2] == 1 else image, display_factor(h, w, PICTURE_MIN)
    )


def shown_indices(result: Any) -> set[int]:
    """The scan positions of the images the page draws."""
    shown = set()
    for g in result.duplicates[:SHOWN_GROUPS]:
        shown.update(g["_index"])
    shown.update(e["_index"] for e in result.label_issues[:SHOWN_ISSUES])
    shown.update(e["_index"] for e in (result.blank + result.outliers)[:SHOWN_OTHERS])
    return shown


def picture_name(index: int) -> str:
    return f"images/{index:06d}.png"


def write_pictures(info: DatasetInfo, folder: Path, shown: set[int]) -> None:
    """Read the dataset again, saving the pictures the page shows (record order, as the scan)."""
    if not shown:
        return
    (folder / "images").mkdir()
    i, last = 0, max(shown)
    for split in record_order(info):
        for r in iter_records(info, split):
            if i in shown:
                save_png(_picture(r.image), folder / picture_name(i), compress_level=1)
            i += 1
            if i > last:
                return
