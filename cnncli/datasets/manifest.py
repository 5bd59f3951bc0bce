"""The dataset manifest a build writes (docs/FORMAT.md, "manifest.json")."""

from __future__ import annotations

from cnncli import __version__
from cnncli.datasets.plan import Plan
from cnncli.datasets.shards import SPLITS

FORMAT_VERSION = 1  # classify; multilabel and regression: cnncli.datasets.tasks


def dataset_manifest(
    plan: Plan,
    record_format: str,
    counts: dict[str, dict],
    shard_names: dict[str, list[str]],
    options: dict,
    changed: list[str],
) -> dict:
    """The manifest.json of a build (docs/FORMAT.md); the task's part is added by
    cnncli.datasets.tasks.task_manifest."""
    return {
        "format": "cnncli-dataset",
        "format_version": FORMAT_VERSION,
        "cnncli_version": __version__,
        "classes": [{"index": i, "name": n} for i, n in enumerate(plan.labels.class_names)],
        "image": plan.spec.to_dict(),
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
        "labels_sha256": plan.labels.sha256,
        "skipped": len(plan.problems),
        "conversions": changed,
        "options": options,
    }
