"""`check_dataset`: the whole of `cnncli dataset check` as one call: open the dataset, refuse
bad options and an existing report before any work, read every image once, find duplicates,
label issues and the rest, and write the report folder (cnncli.check.report) atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.atomic import atomic_dir, check_replaceable, write_json, write_text
from cnncli.check import duplicates as dup
from cnncli.check import label_issues as li
from cnncli.check import quality
from cnncli.check.align import SCALES, shift_of
from cnncli.check.page import write_check_page
from cnncli.check.quality import blank_images, class_balance, outlier_images
from cnncli.check.report import ISSUES_HEADER, issue_rows, shown_indices, write_pictures
from cnncli.check.scan import Scanned, scan_dataset
from cnncli.claims import reading_arg
from cnncli.datasets.shards import csv_text
from cnncli.datasets.store import DatasetInfo, dataset_folder, open_dataset
from cnncli.datasets.targets import format_values
from cnncli.progress import Counter, Progress

REPORT_DIR = "check"  # the default report folder, inside the dataset


@dataclass
class CheckResult:
    dataset: Path
    report: Path
    task: str
    images: int
    folds: int
    label_model: str
    duplicates: list[dict] = field(default_factory=list)
    label_issues: list[dict] = field(default_factory=list)
    classes: dict = field(default_factory=dict)
    blank: list[dict] = field(default_factory=list)
    outliers: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        groups = self.duplicates
        return {
            "exact duplicate groups": sum(g["kind"] == "exact" for g in groups),
            "near duplicate groups": sum(g["kind"] == "near" for g in groups),
            "leaks": sum(g["leak"] for g in groups),
            "conflicts": sum(g["conflict"] for g in groups),
            "label issues": len(self.label_issues),
            "blank images": len(self.blank),
            "outliers": len(self.outliers),
        }

    def to_dict(self) -> dict:
        """The JSON contract: `duplicates` and `label_issues` (issue 24), then the rest."""
        return {
            "duplicates": public(self.duplicates),
            "label_issues": public(self.label_issues),
            "dataset": str(self.dataset),
            "report": str(self.report),
            "task": self.task,
            "images": self.images,
            "counts": self.counts,
            "label_model": self.label_model,
            "folds": self.folds,
            "classes": self.classes,
            "blank": public(self.blank),
            "outliers": public(self.outliers),
            "thresholds": self.thresholds,
            "notes": self.notes,
        }


def label_text(info: DatasetInfo, label: Any) -> str:
    """A record's label as a person reads it: the class, the labels joined by ';', or the
    target values ('3.21', 'a=3.21 b=0.5')."""
    if info.task == "classify":
        return info.class_names[int(label)]
    if info.task == "multilabel":
        return ";".join(n for n, v in zip(info.class_names, label, strict=True) if v > 0.5)
    return format_values([t.name for t in info.targets], label)


def check_report_target(info: DatasetInfo, out: str | os.PathLike | None, overwrite: bool) -> Path:
    """The report folder: `out` or DATASET/check; an existing one is refused without
    `overwrite`, and with it anything but an earlier check report."""
    target = Path(out) if out is not None else info.path / REPORT_DIR
    check_replaceable(target, overwrite, "a cnncli check report", "check.json")
    return target


def _smallest_class(info: DatasetInfo) -> tuple[str, int] | None:
    if info.task != "classify":
        return None
    totals = {n: sum(c.get(n, 0) for c in info.counts().values()) for n in info.class_names}
    name = min(totals, key=totals.__getitem__)
    return name, totals[name]


@reading_arg("dataset", "cnncli dataset check", dataset_folder)
def check_dataset(
    dataset: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    folds: int = li.DEFAULT_FOLDS,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    seed: int = 0,
    unsafe: bool = False,
    progress: Progress | None = None,
) -> CheckResult:
    """Check a built dataset (every split) and write its report folder; see the package's
    docstring. Raises DatasetError/UsageError (nothing written) on a folder that is not a
    dataset, bad --folds, an unfit --model or an existing report without `overwrite`."""
    info = open_dataset(dataset)
    n = sum(info.count(s) for s in info.splits)
    li.check_folds(folds, _smallest_class(info), n)
    target = check_report_target(info, out, overwrite)
    opened = None
    if model is not None:
        from cnncli.check.model_features import open_fitting_model

        opened = open_fitting_model(model, info, unsafe)
    counter = Counter(progress, n + folds + (n if opened is not None else 0))
    counter.start()
    scan = scan_dataset(info, counter)
    result = CheckResult(info.path, target, info.task, n, folds, li.PIXEL_MODEL)
    result.thresholds = {
        "near_residual": dup.NEAR_RESIDUAL,
        "near_working_side": int(scan.work.shape[1]),
        "near_shift_pixels": shift_of(int(scan.work.shape[1])),
        "near_zoom": list(SCALES),
        "blank_pixel_std": quality.BLANK_CONTRAST,
        "outlier_robust_z": quality.OUTLIER_Z,
        "regression_robust_z": li.OUTLIER_Z,
    }
    texts = [label_text(info, lab) for lab in scan.labels]
    result.duplicates = find_duplicates(scan, texts)
    features, from_model = scan.features.astype(np.float32) / 255, False
    if opened is not None:
        from cnncli.check.model_features import model_features

        features, result.label_model = model_features(opened, info, counter)
        from_model = True
        result.notes += list(opened.notes)
    if n - n // folds > li.TRAIN_LIMIT:
        result.label_model += f" (each fold model trained on {li.TRAIN_LIMIT:,} sampled images)"
    result.label_issues = find_label_issues(
        info, scan, texts, features, folds, seed, from_model, counter
    )
    _quality(info, scan, texts, result)
    write_report(result, info, target, overwrite)
    return result


def write_report(result: CheckResult, info: DatasetInfo, target: Path, overwrite: bool) -> None:
    """check.json, issues.csv, index.html and its pictures, into `target` at once."""
    with atomic_dir(target, overwrite=overwrite) as tmp:
        write_json(tmp / "check.json", result.to_dict())
        write_text(tmp / "issues.csv", csv_text([ISSUES_HEADER, *issue_rows(result)]))
        write_pictures(info, tmp, shown_indices(result))
        write_check_page(tmp / "index.html", result)


def find_duplicates(scan: Scanned, texts: list[str]) -> list[dict]:
    """Exact groups (same pixel hash), then near groups (found among one image of each
    exact group), each with its images, splits, labels, kind, leak and conflict; the
    groups with a leak or a conflict first."""
    exact = dup.exact_groups(scan.hashes)
    rep_of = {}
    for g in exact:
        for i in g:
            rep_of[i] = g[0]
    reps = [i for i in range(len(scan)) if rep_of.get(i, i) == i]
    members = {g[0]: g for g in exact}
    pairs = dup.near_duplicate_pairs(scan.work[reps]) if len(reps) > 1 else []
    score: dict[int, float] = {}
    for a, b, s in pairs:
        score[reps[a]] = min(score.get(reps[a], s), s)
        score[reps[b]] = min(score.get(reps[b], s), s)
    near = []
    for comp in dup.groups_of(len(reps), [(a, b) for a, b, _ in pairs]):
        near.append(sorted(i for r in comp for i in members.get(reps[r], [reps[r]])))
    out = []
    for kind, groups in (("exact", exact), ("near", near)):
        for g in groups:
            splits = [scan.splits[i] for i in g]
            labels = [texts[i] for i in g]
            entry: dict[str, Any] = {
                "images": [scan.names[i] for i in g],
                "splits": splits,
                "labels": labels,
                "kind": kind,
                "leak": len(set(splits)) > 1,
                "conflict": len(set(labels)) > 1,
            }
            if kind == "near":
                entry["residual"] = round(max(score.get(i, 0.0) for i in g), 4)
            entry["_index"] = g
            out.append(entry)
    out.sort(key=lambda e: (not (e["leak"] or e["conflict"]), e["kind"] != "exact", e["_index"][0]))
    return out


def find_label_issues(
    info: DatasetInfo,
    scan: Scanned,
    texts: list[str],
    features: np.ndarray,
    folds: int,
    seed: int,
    from_model: bool,
    counter: Counter,
) -> list[dict]:
    """Label issues (classify, multilabel) or far rows (regression), most likely wrong first."""
    task = info.task
    if task == "classify":
        y = np.asarray(scan.labels, dtype=np.int64)
    else:
        y = np.stack(scan.labels).astype(np.float32)
    pred = li.out_of_fold(features, y, task, folds, seed, from_model, counter)
    out = []
    if task == "classify":
        for i, s, score, flagged in li.classify_issues(y, pred):
            out.append(
                {
                    "image": scan.names[i],
                    "split": scan.splits[i],
                    "given": texts[i],
                    "suggested": info.class_names[s],
                    "score": round(score, 4),
                    "confident": flagged,
                    "_index": i,
                }
            )
    elif task == "multilabel":
        for i, hot, score, flagged in li.multilabel_issues(y, pred):
            out.append(
                {
                    "image": scan.names[i],
                    "split": scan.splits[i],
                    "given": texts[i],
                    "suggested": label_text(info, hot.astype(np.float32)),
                    "score": round(score, 4),
                    "confident": flagged,
                    "_index": i,
                }
            )
    else:
        for i, values, z in li.regression_issues(y, pred):
            out.append(
                {
                    "image": scan.names[i],
                    "split": scan.splits[i],
                    "given": texts[i],
                    "suggested": label_text(info, values),
                    "score": round(z, 3),
                    "confident": z > 2 * li.OUTLIER_Z,
                    "_index": i,
                }
            )
    return out


def _quality(info: DatasetInfo, scan: Scanned, texts: list[str], result: CheckResult) -> None:
    if info.task == "classify":
        totals = {n: sum(c.get(n, 0) for c in info.counts().values()) for n in info.class_names}
        result.classes = class_balance(totals)
    elif info.task == "multilabel":
        y = np.stack(scan.labels)
        result.classes = class_balance(
            {n: int(v) for n, v in zip(info.class_names, (y > 0.5).sum(0), strict=True)}
        )
    blank = blank_images(scan.contrast)
    result.blank = [
        {
            "image": scan.names[i],
            "split": scan.splits[i],
            "label": texts[i],
            "detail": f"every pixel about {scan.brightness[i]:.0f}",
            "_index": i,
        }
        for i in blank
    ]
    result.outliers = [
        {
            "image": scan.names[i],
            "split": scan.splits[i],
            "label": texts[i],
            "problem": what,
            "detail": detail,
            "_index": i,
        }
        for i, what, detail in outlier_images(scan.brightness, scan.contrast, set(blank))
    ]


def public(entries: list[dict]) -> list[dict]:
    """Entries without their private keys (_index: the scan position)."""
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries]
