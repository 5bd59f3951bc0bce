"""Reliability probe (issue 13): reruns the probe's trials against the real `cnncli` on this
machine, each command in its own process, and prints counts per probe.

    python bench/probe_reliability.py [--quick] [-k TEXT] [--list] [--keep DIR] [--json]

Probes (a list of named sections, PROBES; other probes add theirs there):
  concurrent-builds  two `dataset build` into one -o at once: nothing lost, one refused
  concurrent-trains  two `train` into one run folder at once: one refused, the folder whole
  kill-build         kill -9 of a build (new, or with --overwrite) at a random moment: `ds`
                     whole or absent (never half), what is left, the next build recovers
  kill-train         kill -9 of a training after a random epoch, then --resume: final
                     weights bit-equal to an uninterrupted run's
  rename-gap         the state a kill between the two renames of --overwrite leaves (new
                     version complete, or not): the next command recovers and says so
  bad-inputs         about 60 bad inputs (items 4, 8, 9, 13; bench/bad_inputs_probe.py):
                     each gets one clear line or a named bad row ("lost": not handled)
  fuzz               random label tables, images and model files through their readers
                     (bench/fuzz_probe.py): inputs tried, unexpected exceptions ("lost")
  run-folders        hostile run folders and reports (bench/probe_trials_runs.py): links,
                     FIFOs, /dev/zero, 10^6 history rows, a 200 MiB run.json, deep JSON
  models-*           hostile model files (issue 23; bench/probe_trials_models.py): handled,
                     silent wrong answers, "unexpected" lines; config bombs' memory and time
`--quick` runs fewer trials (about 3 minutes on 2 cores, most of it TensorFlow's import);
the exit code is 1 if a probe found a loss.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


@dataclass
class Context:
    work: Path
    quick: bool
    rng: random.Random = field(default_factory=lambda: random.Random(13))

    def trials(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def fresh(self, name: str) -> Path:
        folder = self.work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder


@dataclass
class Probe:
    name: str
    what: str
    run: Callable[[Context], dict]  # -> {"trials": n, "lost": n, ...counts}; lost 0 = ok


# ------------------------------------------------------------------------------ helpers
def cnncli(*args, cwd: Path, wait: bool = True, **kw):
    command = [sys.executable, "-m", "cnncli", *map(str, args)]
    if not wait:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **kw,
        )
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, **kw)


def make_images(folder: Path, classes: list[str], per_class: int, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
            arr[:, : (k + 1) * size // (len(classes) + 1)] += 120
            Image.fromarray(arr).save(folder / name / f"{i}.png")
    return folder


def classes_of(ds: Path) -> list[str] | None:
    """The dataset's classes if it opens whole (every listed shard there), else None."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cnncli.datasets.store import open_dataset
    from cnncli.errors import CnnError
    from cnncli.notices import listen

    try:
        with listen(lambda line: None):
            return open_dataset(ds).class_names
    except CnnError:
        return None


def leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def refusal(stderr: str) -> str | None:
    text = " ".join(stderr.split())
    if "is being written by" in text or "is in use" in text:
        return "busy"
    if "already exists" in text:
        return "exists"
    return None


# ------------------------------------------------------------------------------- probes
def concurrent_builds(ctx: Context) -> dict:
    images_a = make_images(ctx.work / "inputs" / "a", ["a1", "a2"], 150, 32, 1)
    images_b = make_images(ctx.work / "inputs" / "b", ["b1", "b2", "b3"], 100, 32, 2)
    counts = {"trials": 0, "lost": 0, "refused busy": 0, "refused exists": 0, "both wrote": 0}
    for _ in range(ctx.trials(3, 10)):
        here = ctx.fresh("builds")
        procs = [
            cnncli("dataset", "build", images, "-o", "ds", "--workers", 1, cwd=here, wait=False)
            for images in (images_a, images_b)
        ]
        codes = [p.wait(timeout=300) for p in procs]
        errs = [p.stderr.read() for p in procs]
        counts["trials"] += 1
        winners = [i for i, c in enumerate(codes) if c == 0]
        for code, err in zip(codes, errs, strict=True):
            if code != 0 and (why := refusal(err)):
                counts[f"refused {why}"] += 1
        if len(winners) == 2:  # both said "wrote ds": one of the two results is gone
            counts["both wrote"] += 1
            counts["lost"] += 1
        elif len(winners) == 1:  # the one that wrote must be the one in ds
            expect = ["a1", "a2"] if winners == [0] else ["b1", "b2", "b3"]
            counts["lost"] += classes_of(here / "ds") != expect
        else:
            counts["neither wrote"] = counts.get("neither wrote", 0) + 1
            counts["lost"] += 1
    return counts


def concurrent_trains(ctx: Context) -> dict:
    here = ctx.fresh("trains")
    make_images(here / "img", ["a", "b"], 12, 16, 3)
    cnncli("dataset", "build", "img", "-o", "ds", "--workers", 1, cwd=here, check=True)
    counts = {"trials": 0, "lost": 0, "refused busy": 0, "refused exists": 0, "both ran": 0}
    for t in range(ctx.trials(1, 3)):
        run = f"run{t}"
        procs = [
            cnncli(
                "train",
                "ds",
                "-o",
                run,
                "--arch",
                "tiny",
                "--epochs",
                3,
                "-q",
                "--seed",
                seed,
                cwd=here,
                wait=False,
            )
            for seed in (1, 2)
        ]
        codes = [p.wait(timeout=600) for p in procs]
        errs = [p.stderr.read() for p in procs]
        counts["trials"] += 1
        for code, err in zip(codes, errs, strict=True):
            if code != 0 and (why := refusal(err)):
                counts[f"refused {why}"] += 1
        if codes.count(0) == 2:
            counts["both ran"] += 1
            counts["lost"] += 1
        run_json = json.loads((here / run / "run.json").read_text())
        state = json.loads((here / run / "state" / "state.json").read_text())
        if run_json["status"] != "finished" or state["epoch"] != 3:
            counts["lost"] += 1
    return counts


def kill_build(ctx: Context) -> dict:
    images = make_images(ctx.work / "inputs" / "kill", ["k1", "k2"], 400, 48, 4)
    counts = {
        "trials": 0,
        "lost": 0,
        "ds whole": 0,
        "ds absent": 0,
        "ds half": 0,
        "left debris": 0,
        "next build ok": 0,
        "debris after next": 0,
    }
    for t in range(ctx.trials(6, 20)):
        here = ctx.fresh("killbuild")
        overwrite = t % 2 == 1
        if overwrite:  # an existing dataset, replaced with --overwrite
            cnncli("dataset", "build", images, "-o", "ds", "--val", 0.5, cwd=here, check=True)
        args = ["dataset", "build", images, "-o", "ds"] + (["--overwrite"] if overwrite else [])
        proc = cnncli(*args, cwd=here, wait=False)
        time.sleep(ctx.rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        counts["trials"] += 1
        left = [n for n in leftovers(here, "ds") if n != ".ds.lock"]
        counts["left debris"] += bool(left)
        if (here / "ds").exists():
            whole = classes_of(here / "ds") is not None
            counts["ds whole" if whole else "ds half"] += 1
            counts["lost"] += not whole
        else:
            counts["ds absent"] += 1
            # a dataset that existed must still be there, or come back at the next command
            counts["lost"] += overwrite and classes_of(here / "ds") is None
        again = cnncli(*args[:5], "--overwrite", cwd=here)
        ok = again.returncode == 0 and classes_of(here / "ds") == ["k1", "k2"]
        counts["next build ok"] += ok
        counts["lost"] += not ok
        counts["debris after next"] += bool(leftovers(here, "ds"))
    return counts


def kill_train(ctx: Context) -> dict:
    here = ctx.fresh("killtrain")
    make_images(here / "img", ["a", "b"], 24, 16, 5)
    cnncli("dataset", "build", "img", "-o", "ds", "--workers", 1, cwd=here, check=True)
    epochs = 6
    common = ["--arch", "tiny", "--epochs", epochs, "--batch-size", 8, "--seed", 7, "-q"]
    ref = cnncli("train", "ds", "-o", "full", *common, cwd=here)
    assert ref.returncode == 0, ref.stderr
    counts = {"trials": 0, "lost": 0, "resumed": 0, "bit-equal": 0, "debris after": 0}
    for t in range(ctx.trials(1, 3)):
        run = here / f"cut{t}"
        proc = cnncli("train", "ds", "-o", run.name, *common, cwd=here, wait=False)
        target = ctx.rng.randint(1, epochs - 2)
        state = run / "state" / "state.json"
        start = time.time()
        while time.time() - start < 300 and proc.poll() is None:
            try:
                if json.loads(state.read_text())["epoch"] >= target:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        time.sleep(ctx.rng.uniform(0, 0.3))  # somewhere in the next epoch or its saving
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        counts["trials"] += 1
        resumed = cnncli("train", "--resume", run.name, "-q", cwd=here)
        counts["resumed"] += resumed.returncode == 0
        equal = resumed.returncode == 0 and _same_weights(
            here / "full" / "last.keras", run / "last.keras"
        )
        counts["bit-equal"] += equal
        counts["lost"] += not equal
        counts["debris after"] += any(
            ".tmp-" in p.name or ".scratch-" in p.name for p in run.rglob(".*")
        )
    return counts


def _same_weights(a: Path, b: Path) -> bool:
    code = (
        "import sys, keras, numpy as np\n"
        "wa = keras.models.load_model(sys.argv[1], compile=False).get_weights()\n"
        "wb = keras.models.load_model(sys.argv[2], compile=False).get_weights()\n"
        "sys.exit(0 if all(np.array_equal(x, y) for x, y in zip(wa, wb)) else 1)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(a), str(b)], env=ENV, capture_output=True)
    return run.returncode == 0


def rename_gap(ctx: Context) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cnncli.atomic import HOST_TAG

    old_images = make_images(ctx.work / "inputs" / "gap2", ["g1", "g2"], 6, 8, 6)
    new_images = make_images(ctx.work / "inputs" / "gap3", ["g1", "g2", "g3"], 6, 8, 7)
    counts = {"trials": 0, "lost": 0, "finished": 0, "restored": 0, "said": 0, "debris after": 0}
    for t in range(ctx.trials(4, 8)):
        here = ctx.fresh("gap")
        for images, out in ((old_images, "ds"), (new_images, "new")):
            cnncli("dataset", "build", images, "-o", out, "--workers", 1, cwd=here, check=True)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        complete = t % 2 == 0
        if not complete:
            (here / "new" / "manifest.json").unlink()
        (here / "ds").rename(here / f".ds.old-{dead.pid}-{HOST_TAG}0001")
        (here / "new").rename(here / f".ds.partial-{dead.pid}-{HOST_TAG}0002")
        rebuild = ("dataset", "build", old_images, "-o", "ds", "--overwrite")
        command = ("dataset", "info", "ds") if t % 4 < 2 else rebuild  # each, complete or not
        r = cnncli(*command, cwd=here)
        counts["trials"] += 1
        counts["said"] += "recovered" in r.stderr
        got = classes_of(here / "ds")
        if command[1] == "info":
            expect = ["g1", "g2", "g3"] if complete else ["g1", "g2"]
        else:
            expect = ["g1", "g2"]
        ok = r.returncode == 0 and got == expect
        counts["finished" if complete else "restored"] += ok
        counts["lost"] += not ok
        counts["debris after"] += bool(leftovers(here, "ds"))
    return counts


def bad_inputs(ctx: Context) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bad_inputs_probe import bad_inputs as battery

    tried, handled, rows = battery(
        quick=ctx.quick, keep=ctx.fresh("bad-inputs"), echo=lambda line: None
    )
    missed = [name for _item, name, ok, _what in rows if not ok]
    return {
        "trials": tried,
        "lost": tried - handled,
        "handled": handled,
        **({"not handled": "; ".join(missed)} if missed else {}),
    }


def fuzz_inputs(ctx: Context) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzz_probe import fuzz

    return fuzz(ctx.trials(2_000, 10_000), work=ctx.fresh("fuzz"), echo=lambda line: None)


from probe_trials_models import MODEL_PROBES  # noqa: E402  (issue 23: hostile model files)
from probe_trials_runs import RUN_FOLDER_PROBES  # noqa: E402  (needs Probe, defined above)
from probe_trials_tables import TABLE_PROBES  # noqa: E402  (needs Probe, defined above)

PROBES: list[Probe] = [
    Probe("concurrent-builds", "two `dataset build` into one -o at once", concurrent_builds),
    Probe("concurrent-trains", "two `train` into one run folder at once", concurrent_trains),
    Probe("kill-build", "kill -9 of a build at a random moment, then the next build", kill_build),
    Probe("kill-train", "kill -9 of a training, then --resume, against a whole run", kill_train),
    Probe("rename-gap", "killed between the two renames of --overwrite", rename_gap),
    Probe("bad-inputs", "about 60 bad inputs: one clear line or a named bad row", bad_inputs),
    Probe("fuzz", "random tables, images, model files: only cnncli's own errors", fuzz_inputs),
    *RUN_FOLDER_PROBES,
    *TABLE_PROBES,
    *MODEL_PROBES,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (about 3 minutes)")
    parser.add_argument("-k", dest="keyword", help="only probes whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the probes and exit")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    probes = [p for p in PROBES if not args.keyword or args.keyword in p.name]
    if args.list:
        for p in probes:
            print(f"{p.name}: {p.what}")
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="probe_reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for p in probes:
            start = time.perf_counter()
            try:
                counts = p.run(Context(work, args.quick))
            except Exception as e:  # a probe that breaks is a finding too
                counts = {"trials": 0, "lost": 1, "probe error": f"{type(e).__name__}: {e}"}
            counts["seconds"] = round(time.perf_counter() - start, 1)
            results[p.name] = counts
            shown = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("trials", "lost"))
            verdict = "ok" if not counts.get("lost") else f"LOST {counts['lost']}"
            print(f"{p.name:<18} trials {counts['trials']:>3}  {verdict:<8} {shown}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if all(not r.get("lost") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
