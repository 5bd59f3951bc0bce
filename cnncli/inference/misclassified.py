"""The images evaluate gets wrong, in the order worth looking at, and the two files that
show them: the error sheet (PNG) and the error list (CSV).

Order: the most confidently wrong first, as fastai's `plot_top_losses` does: the lowest
probability given to the actual class (the highest loss) first, then the highest
probability of the predicted class, then dataset order. When nothing is wrong, the sheet
shows the correct images the model was least sure of instead (the smallest margin between
its two most likely classes first), titled as such, so a sheet is never empty.

Captions follow the course ("실제 : 대리석 // 예측 : 벽돌" when the class names are Korean,
"actual: 4 //  predicted: 9" otherwise, for every task), then "#1 · p(actual)=0.01 · p=0.97"
over the file name: the rank (the CSV's row), the probability of the actual class (what the
order is by) and of the predicted one. A multi-label model's sheet shows the images with
the most wrong labels ("actual: big, prime //  predicted: (no label)"), a regression
model's the largest errors ("true 3.2 // pred 4.1"); `write_sheet` draws any of them.
"""

from __future__ import annotations

import csv
import heapq
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.atomic import atomic_file
from cnncli.drawing.fonts import has_hangul
from cnncli.inference.answers import NO_LABEL

SHEET_MAX = 100  # images drawn in the errors sheet (the CSV lists them all)
CLOSE_CALLS = 16  # correct images drawn when nothing is wrong
SHEET_CELL = 200


@dataclass
class Misclassified:
    """One image of the split: its actual and predicted class (they differ for the
    misclassified; they agree for the close calls drawn when nothing is wrong)."""

    path: str
    actual: str
    predicted: str
    probability: float  # the model's probability for the predicted class
    actual_index: int
    predicted_index: int
    index: int = -1  # position in the split (dataset order)
    actual_probability: float = math.nan  # the model's probability for the actual class


def wrong_key(probs: np.ndarray, actual: int, predicted: int, index: int) -> tuple:
    """Sort key, most confidently wrong first: p(actual) up, p(predicted) down, index."""
    return (float(probs[actual]), -float(probs[predicted]), index)


def margin_key(probs: np.ndarray, index: int | np.integer) -> tuple:
    """Sort key, least certain first: the gap between the two most likely classes, index."""
    top = np.sort(probs)[::-1]
    return (float(top[0] - top[1]) if len(top) > 1 else 1.0, index)


class Smallest:
    """The `n` items with the smallest keys seen so far (with their images), in memory
    bounded by `n` whatever the size of the split."""

    def __init__(self, n: int):
        self.n = n
        self._heap: list = []  # (negated key, index, image): the largest kept key on top

    def offer(self, key: tuple, index: int, image) -> None:
        neg = tuple(-k for k in key)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, (neg, index, image))
        elif neg > self._heap[0][0]:
            heapq.heapreplace(self._heap, (neg, index, image))

    def images(self) -> dict[int, np.ndarray]:
        return {index: image for _, index, image in self._heap}


def rows(
    indices: Iterable[int | np.integer],
    labels: np.ndarray,
    predicted: np.ndarray,
    probs: np.ndarray,
    paths: Sequence[str],
    names: Sequence[str],
    key: Callable[[Misclassified], Any],
) -> list[Misclassified]:
    """Misclassified rows for `indices` of the split, sorted by `key(row)`."""
    out = [
        Misclassified(
            path=paths[int(i)],
            actual=names[int(labels[i])],
            predicted=names[int(predicted[i])],
            probability=float(probs[i, int(predicted[i])]),
            actual_index=int(labels[i]),
            predicted_index=int(predicted[i]),
            index=int(i),
            actual_probability=float(probs[i, int(labels[i])]),
        )
        for i in indices
    ]
    return sorted(out, key=key)


def korean(names: Sequence[str]) -> bool:
    """Whether captions use the course's Korean wording: the class names are Korean."""
    return any(has_hangul(str(n)) for n in names)


def error_title(actual: str, predicted: str, names: Sequence[str] | None = None) -> str:
    """The course's title for a misclassified image: Korean when the class names (`names`,
    every class or label name; by default the two given) are Korean, for every task.
    The English one has two spaces after "//": the bundled font's slash leans into the
    next letter, and with one space the caption reads "//predicted"."""
    if korean((actual, predicted) if names is None else names):
        return f"실제 : {actual} // 예측 : {predicted}"
    return f"actual: {actual} //  predicted: {predicted}"


def caption(rank: int, m: Misclassified, names: Sequence[str] | None = None) -> str:
    """The course's title, then what the sheet is sorted by: a misclassified image's
    "#rank · p(actual)=0.01 · p=0.99" (the probability of the actual class, lowest first:
    the highest loss) over its file name; a close call's "#rank · p=0.55 · file name"."""
    title = error_title(m.actual, m.predicted, names)
    file = Path(m.path).name
    if m.actual_index != m.predicted_index:
        actual = (
            "p(실제)"
            if korean((m.actual, m.predicted) if names is None else names)
            else "p(actual)"
        )
        return (
            f"{title}\n#{rank} · {actual}={m.actual_probability:.2f} · "
            f"p={m.probability:.2f}\n{file}"
        )
    return f"{title}\n#{rank} · p={m.probability:.2f} · {file}"


def write_errors_csv(
    misclassified: list[Misclassified], path: str | os.PathLike, overwrite: bool = True
) -> Path:
    """path, actual, predicted, probability (of the predicted class), actual_probability
    (of the actual class: what the list is sorted by, lowest first): one row per
    misclassified image, in order."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "actual", "predicted", "probability", "actual_probability"])
    for m in misclassified:
        w.writerow(
            [m.path, m.actual, m.predicted, f"{m.probability:.6f}", f"{m.actual_probability:.6f}"]
        )
    with atomic_file(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8")
    return Path(path)


def sheet_title(count: int, split: str, wrong: int, shown: int) -> str:
    """The sheet's title: what it shows, and in which order."""
    if wrong:
        first = f", first {shown} shown" if wrong > shown else ""
        return f"{wrong} misclassified of {count} ({split}{first})\nmost confidently wrong first"
    return (
        f"no misclassified images of {count} ({split})\n"
        f"the {shown} least certain correct ones, smallest margin first"
    )


def write_errors_sheet(
    shown: list[Misclassified],
    images: dict[int, np.ndarray],
    title: str,
    path: str | os.PathLike,
    overwrite: bool = True,
    names: Sequence[str] | None = None,
) -> Path:
    """A contact sheet of `shown` (in order), each captioned by `caption` (`names`: the
    class names, which choose the wording)."""
    items = [(images[m.index], caption(rank, m, names)) for rank, m in enumerate(shown, 1)]
    return write_sheet(items, title, path, overwrite)


def multilabel_caption(
    rank: int,
    actual: list[str],
    predicted: list[str],
    file: str,
    wrong: int,
    names: Sequence[str] | None = None,
) -> str:
    """ "실제 : 대리석, 벽돌 // 예측 : (없음)" when the label names (`names`; by default
    those shown) are Korean, else "actual: big, prime //  predicted: (no label)"; then
    "#1 · 1 wrong · photo.png"."""
    names = [*actual, *predicted] if names is None else names
    none = "(없음)" if korean(names) else NO_LABEL
    title = error_title(", ".join(actual) or none, ", ".join(predicted) or none, names)
    return f"{title}\n#{rank} · {wrong} wrong · {Path(file).name}"


def regression_caption(rank: int, true: list[float], pred: list[float], file: str) -> str:
    """ "true 3.2 // pred 4.1" (several targets: comma-separated; 3 significant digits),
    then "#1 · photo.png"."""
    t = ", ".join(f"{v:.3g}" for v in true)
    p = ", ".join(f"{v:.3g}" for v in pred)
    return f"true {t} //  pred {p}\n#{rank} · {Path(file).name}"


def write_sheet(
    items: list, title: str, path: str | os.PathLike, overwrite: bool = True, cell: int = SHEET_CELL
) -> Path:
    """A contact sheet of (image, caption) items, in order, written atomically."""
    from cnncli.drawing.save import save_png
    from cnncli.drawing.sheets import contact_sheet

    sheet = contact_sheet(
        items,
        per_row=min(8, max(1, math.ceil(math.sqrt(len(items))))),
        cell=cell,
        title=title,
        font_size=12,
    )
    return save_png(sheet, path, overwrite=overwrite)
