"""What a dataset's task adds to its manifest (docs/FORMAT.md, format version 2) and shows in
`dataset info`: label counts, unlabeled rows and co-occurrence (multilabel); each target's
mean, std, min, max and histogram (regression). Classify datasets stay format version 1
(with "task": "classify"), so that a cnncli from before tasks still reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

from cnncli.datasets.shards import SPLITS
from cnncli.datasets.targets import FLOAT32_TINY, below_float32_normal

if TYPE_CHECKING:
    from cnncli.datasets.labels import LabelRow

TASK_FORMAT_VERSION = 2
HISTOGRAM_BINS = 10
BAR = 30  # characters of the longest histogram bar


def split_counts(
    rows: list[LabelRow], splits: list[str], kept: list[int], task: str, class_names: list[str]
) -> dict[str, dict[str, int]]:
    """{split: {class or label: images}} of the kept rows; regression: {split: {}}."""
    counts: dict[str, dict[str, int]] = {}
    for i in kept:
        per = counts.setdefault(splits[i], dict.fromkeys(class_names, 0))
        if task == "classify":
            per[rows[i].class_name] += 1
        elif task == "multilabel":
            label = rows[i].label
            assert isinstance(label, list)  # multilabel: 0/1 per label
            for name, v in zip(class_names, label, strict=True):
                per[name] += v
    return {s: counts[s] for s in SPLITS if s in counts}


def index_label(label: int | list) -> str | int:
    """The label column of index.csv: the class index, or values joined by ';'."""
    if isinstance(label, list):
        return ";".join(f"{v:.9g}" if isinstance(v, float) else str(v) for v in label)
    return label


def task_manifest(
    manifest: dict,
    rows: list[LabelRow],
    splits: list[str],
    kept: list[int],
    task: str,
    class_names: list[str],
    target_names: list[str],
) -> tuple[dict, list[str]]:
    """(the manifest with the task's fields, notes): "task" always; multilabel and
    regression also format_version 2, images per split, and their statistics."""
    manifest = {**manifest, "task": task}
    notes: list[str] = []
    if task == "classify":
        return manifest, notes
    manifest["format_version"] = TASK_FORMAT_VERSION
    by_split = {s: [i for i in kept if splits[i] == s] for s in manifest["splits"]}
    for s, members in by_split.items():
        manifest["splits"][s]["count"] = len(members)
    if task == "multilabel":
        hot = {
            s: np.array([rows[i].label for i in m], dtype=np.int64).reshape(-1, len(class_names))
            for s, m in by_split.items()
        }
        manifest["label_counts"] = {
            s: dict(zip(class_names, map(int, h.sum(0)), strict=True)) for s, h in hot.items()
        }
        manifest["unlabeled"] = {s: int((h.sum(1) == 0).sum()) for s, h in hot.items()}
        train = hot.get("train", np.zeros((0, len(class_names)), np.int64))
        manifest["cooccurrence"] = (train.T @ train).tolist()
        return manifest, notes
    values = np.array([rows[i].label for i in kept], dtype=np.float64).reshape(
        -1, len(target_names)
    )
    train = np.array([rows[i].label for i in by_split.get("train", [])], dtype=np.float64)
    train = train.reshape(-1, len(target_names))
    targets, histograms = [], {}
    for k, name in enumerate(target_names):
        std = float(train[:, k].std()) if len(train) else 0.0
        if std == 0.0:
            notes.append(
                f"warning: target {name!r} has one value in the train split (std 0): std "
                "stored as 1.0, so training sees it as it is less its mean"
            )
            std = 1.0
        col = values[:, k]
        targets.append(
            {
                "name": name,
                "mean": float(train[:, k].mean()) if len(train) else 0.0,
                "std": std,
                "min": float(col.min()),
                "max": float(col.max()),
            }
        )
        tiny = [rows[i].line for i in kept if below_float32_normal(cast(list, rows[i].label)[k])]
        if tiny:  # the records hold float32: such a value keeps fewer digits, or becomes 0
            targets[-1]["below_float32_normal"] = len(tiny)
            notes.append(_tiny_note(name, tiny))
        counts, edges = np.histogram(col, bins=HISTOGRAM_BINS)
        histograms[name] = {"edges": [float(e) for e in edges], "counts": counts.tolist()}
    manifest["targets"] = targets
    manifest["target_histograms"] = histograms
    return manifest, notes


def _tiny_note(name: str, lines: list[int]) -> str:
    many = len(lines) > 1
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return (
        f"note: {len(lines)} value{'s' * many} of target {name!r} (line{'s' * many} {shown}) "
        f"{'are' if many else 'is'} nearer 0 than float32's smallest normal number "
        f"({FLOAT32_TINY:.2g}): stored with fewer digits or as 0, and TensorFlow computes "
        "with such values as 0; rescale the column if they matter"
    )


def histogram_lines(hist: dict) -> list[str]:
    """A text histogram, one line per bin: '  0.12 to   0.20 │██████         12'."""
    edges, counts = hist["edges"], hist["counts"]
    top = max(counts, default=0) or 1
    width = max(len(f"{e:.4g}") for e in edges)
    lines = []
    for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True):
        bar = "█" * round(BAR * n / top)
        lines.append(f"{lo:>{width}.4g} to {hi:>{width}.4g} │{bar:<{BAR}} {n}")
    return lines
