"""Stable-shard builds and `--update` on a Ray cluster: one Ray task per bucket written,
the same bytes as on this machine (cnncli.datasets.buckets decides, before any work is sent
out, which buckets are written and which are kept; each task writes one bucket with
`write_bucket`, as the local engine does; the driver merges the tasks' outcomes in bucket
order and links the kept shards). A task reads the records it keeps from the old dataset's
shard, so every node must see the dataset updated as well as the images: the node check
looks for both.
"""

from __future__ import annotations

from pathlib import Path

from cnncli.datasets.buckets import (
    BucketPlan,
    Key,
    StableLayout,
    described,
    finish_buckets,
    merge_outcomes,
    plan_buckets,
    write_bucket,
)
from cnncli.datasets.convert import Converted, ConvertJob
from cnncli.datasets.ray_engine import TASK_RETRIES, RayEngine, check_nodes, gather
from cnncli.datasets.workers import convert_record
from cnncli.images import Conversions
from cnncli.progress import Counter as ProgressCounter


class RayBuckets:
    """Writes a stable-shard build on the Ray cluster `engine` is connected to."""

    name = "ray"

    def __init__(self, engine: RayEngine, layout: StableLayout):
        self.engine, self.layout = engine, layout
        self.written = self.kept = 0

    def convert(self, job: ConvertJob) -> Converted:
        import ray

        try:
            bp = plan_buckets(job.plan, self.layout)
            rows = job.plan.rows
            paths: list = [job.images_dir]
            paths += [job.images_dir / rows[i].path for i in sorted({0, len(rows) - 1}) if rows]
            inputs = f"the images in {job.images_dir}"
            prev = self.layout.previous
            if prev is not None:
                paths.append(prev.info.path / "manifest.json")
                inputs += f" and the dataset {prev.info.path}"
            nodes = check_nodes(paths, inputs, job.folder)
            return self._run(job, bp, nodes)
        finally:
            if self.engine.owned:
                ray.shutdown()

    def _run(self, job: ConvertJob, bp: BucketPlan, nodes: int) -> Converted:
        import ray

        plan = job.plan
        prev = self.layout.previous
        writing = job.writing()
        stop_on_bad = not job.skip_bad or bool(plan.blockers)
        task = ray.remote(bucket_task).options(max_retries=TASK_RETRIES, num_cpus=1)
        counter = ProgressCounter(job.progress, len(bp.need()))
        counter.start()
        refs = []
        for key in bp.dirty:
            members = bp.members[key]
            old = bp.old_shard(key)
            refs.append(
                task.remote(
                    str(job.folder),
                    key,
                    bp.n(key[0]),
                    [(i, plan.rows[i].name, i in bp.reuse) for i in members],
                    (str(old) if old else None, bp.old_members.get(key, [])),
                    {i: bp.task(job, i) for i in members if i not in bp.reuse},
                    writing,
                    stop_on_bad,
                )
            )
        sha: dict[int, str] = {}
        if prev is not None:
            sha = {i: prev.current[plan.rows[i].name] or "" for i in bp.reuse}
        bad: set[int] = set()
        changed = Conversions()
        written: set[Key] = set()
        hosts: set[str] = set()
        for key, summary in zip(bp.dirty, gather(refs, counter, first=True), strict=True):
            merge_outcomes(plan, summary["rows"], sha, bad, changed)
            hosts.add(summary["node"])
            if summary["name"]:
                written.add(key)
        for stray in job.folder.glob(".*.part"):  # left by tasks killed and retried
            stray.unlink(missing_ok=True)
        writing = writing and (job.skip_bad and not plan.blockers or not bad)
        names, self.kept = finish_buckets(bp, job, written, writing)
        self.written = len(written) if writing else 0
        n = len(refs)
        engine = (
            f"Ray: {n} task{'s' * (n != 1)} on {len(hosts)} of {nodes} node{'s' * (nodes != 1)}"
        )
        return Converted(sha, bad, changed, names, described(bp, self.written, self.kept, engine))


def bucket_task(
    folder: str,
    key: Key,
    n: int,
    rows: list[tuple[int, str, bool]],
    old: tuple[str | None, list[str]],
    tasks: dict[int, tuple],
    write: bool,
    stop_on_bad: bool,
) -> dict:
    """The Ray task: write bucket `key` (cnncli.datasets.buckets.write_bucket), converting
    the rows of `tasks` here. -> {"rows": the converted rows' outcomes, "name": the shard
    written or None, "node": this node's id}."""
    import ray

    outcomes, name = write_bucket(
        Path(folder), key, n, rows, old, lambda i: convert_record(tasks[i]), write, stop_on_bad
    )
    return {"rows": outcomes, "name": name, "node": ray.get_runtime_context().get_node_id()}
