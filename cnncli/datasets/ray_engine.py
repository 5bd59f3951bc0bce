"""The Ray engine of `dataset build --engine ray`: each shard written by one Ray task on
whichever node is free, the same bytes as a local build.

The driver (this process) decides everything before sending work out: the rows' seeded
order (cnncli.datasets.convert.record_order) and where each split's shards are cut, which
for raw records is known from their sizes before any image is decoded
(cnncli.datasets.workers.raw_record_size). Each task converts its group of rows and writes
them as `.SPLIT-NNNNN.part` in the build's temporary folder (a temporary name, then a
rename, so a task killed half way and retried leaves nothing half-written); the driver
merges the tasks' summaries in the seeded order and gives the shards their final names.
Nothing depends on which node finished first. A bad image (--skip-bad) moves the cuts
after it: the groups that changed are written again, as a local build would have cut them.

Before any work, one tiny task per node checks that it sees the image folder and the
build's temporary folder at the same paths, and runs the same cnncli version.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path

from cnncli import __version__
from cnncli.atomic import rename
from cnncli.datasets.buckets import merge_outcomes
from cnncli.datasets.convert import Converted, ConvertJob, record_order
from cnncli.datasets.shards import SPLITS
from cnncli.datasets.workers import convert_record, raw_record_size
from cnncli.errors import CnnError, InputError
from cnncli.images import Conversions
from cnncli.progress import Counter as ProgressCounter

TASK_RETRIES = 3  # a task whose worker or node died is run again, elsewhere, this often
CONNECT_SECONDS = 5.0
CHECK_SECONDS = 60.0
CLUSTER_DOC = "see docs/multi-machine.md"


class RayEngine:
    """Converts on a Ray cluster: connects on creation (InputError when it cannot)."""

    name = "ray"

    def __init__(self, address: str | None = None):
        import ray

        self.owned = not ray.is_initialized()
        if self.owned:
            connect(address)

    def convert(self, job: ConvertJob) -> Converted:
        import ray

        try:
            rows = job.plan.rows
            samples = [job.images_dir / rows[i].path for i in sorted({0, len(rows) - 1}) if rows]
            nodes = check_nodes(
                [job.images_dir, *samples], f"the images in {job.images_dir}", job.folder
            )
            return _run(job, nodes)
        finally:
            if self.owned:
                ray.shutdown()


def connect(address: str | None) -> None:
    """ray.init for the driver; an address that does not answer is one line, at once
    (Ray itself would retry for minutes)."""
    import ray

    if address not in (None, "auto", "local"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(
                f"bad Ray address {address!r}",
                "give HOST:PORT (ray start --head prints it) or auto",
            )
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
        except OSError as e:
            raise InputError(
                f"no Ray cluster answers at {address} ({e.strerror or e})",
                f"start one with ray start --head, or check the address; {CLUSTER_DOC}",
            ) from None
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except (ConnectionError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"cannot reach the Ray cluster ({first})",
            f"start one with ray start --head; {CLUSTER_DOC}",
        ) from None


# ------------------------------------------------------------------ the check of each node
def node_view(paths: list[str], probe: str | None) -> dict:
    """What a node sees (run there by a tiny task): its host name, cnncli version, whether
    `paths` (the image folder, sample images, a model) are there, and the probe file's text
    (the build's temporary folder, on a shared folder, holds it)."""
    import cnncli

    try:
        token = Path(probe).read_text() if probe else None
    except OSError:
        token = None
    return {
        "host": socket.gethostname(),
        "version": cnncli.__version__,
        "inputs": all(os.path.exists(p) for p in paths),
        "probe": token,
    }


def compare_views(
    views: dict[str, dict],
    inputs: str,
    out_parent: Path | None = None,
    token: str | None = None,
    version: str = __version__,
) -> None:
    """Refuse, naming the node, when one does not see what this machine sees. `views`:
    {node address: node_view(...)}; `inputs`: what the paths are, in words."""
    for where, v in views.items():
        name = f"node {where} ({v['host']})"
        if v["version"] != version:
            raise InputError(
                f"{name} runs cnncli {v['version']}, this machine {version}",
                "install the same cnncli version on every node",
            )
        if not v["inputs"]:
            raise InputError(
                f"{name} does not see {inputs}",
                f"put them on a folder shared at the same path on every node; {CLUSTER_DOC}",
            )
        if token is not None and v["probe"] != token:
            raise InputError(
                f"{name} does not see the output folder {out_parent}",
                f"write the dataset to a folder shared at the same path on every "
                f"node; {CLUSTER_DOC}",
            )


def check_nodes(paths: list, inputs: str, out_folder: Path | None = None) -> int:
    """Run node_view on every live node and compare (`inputs`: `paths` in words; a probe
    file is written into `out_folder`, when given, for each node to read back); -> the
    number of nodes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token: str | None = None
    probe: Path | None = None
    if out_folder is not None:
        token = uuid.uuid4().hex
        probe = out_folder / f".ray-probe-{token[:8]}"
        probe.write_text(token)
    view = ray.remote(node_view)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {
            n["NodeManagerAddress"] + f" [{n['NodeID'][:8]}]": view.options(
                num_cpus=0,
                max_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote([str(p) for p in paths], str(probe) if probe else None)
            for n in nodes
        }
        views = {}
        for where, ref in refs.items():
            try:
                views[where] = ray.get(ref, timeout=CHECK_SECONDS)
            except ray.exceptions.GetTimeoutError:
                raise InputError(
                    f"node {where} did not answer within {CHECK_SECONDS:.0f} s",
                    "check the node (ray status), or stop it",
                ) from None
            except (ray.exceptions.TaskUnschedulableError, ray.exceptions.NodeDiedError):
                # listed alive, gone since (Ray marks a node dead only after missed
                # heartbeats): it takes no work, so there is nothing of it to check
                continue
        if not views:
            raise InputError("no node of the Ray cluster is alive", "start the cluster again")
        compare_views(
            views, inputs, out_folder.parent if out_folder else None, token, version=__version__
        )
    finally:
        if probe is not None:
            probe.unlink(missing_ok=True)
    return len(views)


# ------------------------------------------------------------------ the shards
def shard_groups(job: ConvertJob, order: list[int], bad: set[int]) -> list[tuple[str, list[int]]]:
    """[(split, rows)]: each split's rows in the seeded order, cut where a local build cuts
    its shards (a number of images, or the bytes of raw records); `bad` rows left out."""
    kind, limit = job.shard_limit
    plan, spec = job.plan, job.plan.spec
    groups: list[tuple[str, list[int]]] = []
    for split in SPLITS:
        current: list[int] = []
        filled = 0
        for i in order:
            if plan.splits[i] != split or i in bad:
                continue
            current.append(i)
            row = plan.rows[i]
            filled += raw_record_size(spec, i, row.name, row.label) if kind == "bytes" else 1
            if filled >= limit:
                groups.append((split, current))
                current, filled = [], 0
        if current:
            groups.append((split, current))
    return groups


def part_name(split: str, k: int) -> str:
    return f".{split}-{k:05d}.part"


def write_shard(folder: str, split: str, k: int, tasks: list[tuple], write: bool) -> dict:
    """The Ray task: convert `tasks` (cnncli.datasets.convert.ConvertJob.task) and, when
    `write`, write the good records as shard k of `split` (temporary name, then a rename).
    -> {"rows": [(row, status, reason, sha256, conversions, warnings)], "node": its id}."""
    out = []
    tmp = Path(folder) / f"{part_name(split, k)}.{uuid.uuid4().hex[:8]}.tmp"
    f = open(tmp, "wb") if write else None  # noqa: SIM115 - closed below
    try:
        for t in tasks:
            status, payload, sha, kinds, said = convert_record(t)
            if status == "ok" and f is not None:
                f.write(payload)
            out.append((t[3], status, None if status == "ok" else payload, sha, kinds, said))
    finally:
        if f is not None:
            f.close()
    if f is not None:
        rename(tmp, Path(folder) / part_name(split, k))
    import ray

    return {"rows": out, "node": ray.get_runtime_context().get_node_id()}


def _run(job: ConvertJob, nodes: int) -> Converted:
    import ray

    plan = job.plan
    order = record_order(len(plan.rows), job.seed)
    writing = job.writing()
    task = ray.remote(write_shard).options(max_retries=TASK_RETRIES, num_cpus=1)
    counter = ProgressCounter(job.progress, len(plan.rows))
    counter.start()
    results: dict[int, tuple] = {}
    written: dict[tuple[str, int], list[int]] = {}
    bad: set[int] = set()
    hosts: set[str] = set()
    tasks_run = 0
    while True:
        groups = _numbered(shard_groups(job, order, bad))
        todo = [(key, rows) for key, rows in groups.items() if written.get(key) != rows]
        refs = [
            task.remote(str(job.folder), split, k, [job.task(i) for i in rows], writing)
            for (split, k), rows in todo
        ]
        tasks_run += len(refs)
        for (key, rows), summary in zip(
            todo, gather(refs, counter, first=not results), strict=True
        ):
            written[key] = rows
            hosts.add(summary["node"])
            for r in summary["rows"]:
                results[r[0]] = r
        new_bad = {i for i, r in results.items() if r[1] != "ok"} - bad
        bad |= new_bad
        if not new_bad or not (writing and job.skip_bad):
            break
    for key in set(written) - set(groups):  # shards a bad row made unneeded
        (job.folder / part_name(*key)).unlink(missing_ok=True)
    for stray in job.folder.glob(".*.part.*.tmp"):  # left by tasks killed and retried
        stray.unlink(missing_ok=True)
    sha, changed = _merge(job, order, results)
    names = _final_names(job.folder, groups) if writing else {s: [] for s in SPLITS}
    described = (
        f"Ray: {tasks_run} task{'s' * (tasks_run != 1)} on {len(hosts)} of "
        f"{nodes} node{'s' * (nodes != 1)}"
    )
    return Converted(sha, bad, changed, names, described)


def _numbered(groups: list[tuple[str, list[int]]]) -> dict[tuple[str, int], list[int]]:
    out: dict[tuple[str, int], list[int]] = {}
    counts: dict[str, int] = {}
    for split, rows in groups:
        k = counts.get(split, 0)
        counts[split] = k + 1
        out[(split, k)] = rows
    return out


def gather(refs: list, counter: ProgressCounter, first: bool) -> list[dict]:
    """The tasks' summaries in the order sent, the progress counted as each one ends; on a
    failure, the others are cancelled (and waited for) before one line is raised."""
    import ray

    pending = list(refs)
    index = {ref: k for k, ref in enumerate(refs)}
    done: dict[int, dict] = {}
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done[index[ref]] = ray.get(ref)
                if first:
                    counter.add(len(done[index[ref]]["rows"]))
    except BaseException as e:  # Ctrl-C too: no task may write once the folder is removed
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=30)
        if not isinstance(e, ray.exceptions.RayError):
            raise
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CnnError(
            f"a shard task failed on the Ray cluster after {TASK_RETRIES} retries "
            f"({first_line[:200]}); nothing was written",
            "check the nodes (ray status) and build again",
        ) from None
    return [done[k] for k in range(len(refs))]


def _merge(job: ConvertJob, order: list[int], results: dict[int, tuple]):
    """The rows' summaries in the seeded order, as a local build gathers them."""
    sha: dict[int, str] = {}
    changed = Conversions()
    merge_outcomes(job.plan, [results[i] for i in order], sha, set(), changed)
    return sha, changed


def _final_names(folder: Path, groups: dict[tuple[str, int], list[int]]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        n = sum(1 for s, _ in groups if s == split)
        for k in range(n):
            name = f"{split}-{k:05d}-of-{n:05d}.tfrecord"
            rename(folder / part_name(split, k), folder / name)
            names[split].append(name)
    return names
