"""The reliability probe's trials for tables, options and paths (issue 23, items 10, 14 and
15): each trial runs the real `cnncli` in its own process and is judged as the user sees it.

  extreme-targets    regression targets beyond float32 (3.5e38, 1e308, ±1e300, 1e39) and
                     below its normal range (1e-40, 1e-46): a bad row naming its line, or a
                     note naming the lines (and the manifest's count); plain values build
  duplicate-headers  a header naming a column twice ('y,y', 'y, y', each task): refused in
                     one line; headers that only look alike ('y,Y', 'y,y.1') still build
  duplicate-options  --target-col y --target-col y, --label-cols a,a,b, --label-cols ',' ...:
                     refused in one line; 'a,,b' and a plain list build
  long-paths         a name over NAME_MAX, a path over PATH_MAX or a symlink loop as an input
                     or output of every command: one usage line naming it, exit 2
  short-find-lr      --find-lr on 3 images: the suggestion comes with a warning (imports
                     TensorFlow: about 20 s)

Every trial counts as handled, "unexpected" (an "unexpected ..." line, a traceback, an exit
code outside 0/1/2, or no one-line error), a silent wrong answer (exit 0 where the input
had to be refused or noted), or another miss; "lost" is every trial not handled.
Registered in bench/probe_reliability.py's PROBES (as TABLE_PROBES); `python
bench/probe_reliability.py -k tables` (or -k paths, -k lr) runs them alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# Probe lives in probe_reliability, which imports this module once Probe is defined: take it
# from the module being run (`python bench/probe_reliability.py`: __main__) or imported.
_home = sys.modules.get("probe_reliability") or sys.modules["__main__"]
Probe, cnncli = _home.Probe, _home.cnncli

IMAGES = 12


# ------------------------------------------------------------------------------ helpers
def _images(folder: Path) -> Path:
    """IMAGES flat 8x8 PNGs 0.png ... (made once per work folder)."""
    if not folder.is_dir():
        folder.mkdir(parents=True)
        rng = np.random.default_rng(23)
        for i in range(IMAGES):
            arr = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def _table(path: Path, header: str, column) -> Path:
    """A table: HEADER, then a row per image whose cells are column(i, name)."""
    names = header.split(",")
    rows = [
        ",".join(f"{i}.png" if n == "image" else column(i, n) for n in names) for i in range(IMAGES)
    ]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def answer(rc: int, err: str) -> str:
    """'unexpected' when cnncli's answer breaks the rules for every command (an
    "unexpected ..." line, a traceback, an exit code outside 0/1/2, a failure without one
    "error:" line at the end); else 'ok'."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "unexpected" in err or "Traceback" in err or rc not in (0, 1, 2):
        return "unexpected"
    if rc and not (lines and lines[-1].startswith("error: ")):
        return "unexpected"
    return "ok"


class Tally:
    """Counts of a probe's trials; `missed` names the first few not handled."""

    def __init__(self):
        self.counts = {
            "trials": 0,
            "lost": 0,
            "handled": 0,
            "unexpected": 0,
            "silent wrong": 0,
            "other miss": 0,
        }
        self.missed: list[str] = []

    def add(self, name: str, how: str, said: str = "") -> None:
        self.counts["trials"] += 1
        self.counts[how] += 1
        if how != "handled":
            self.counts["lost"] += 1
            if len(self.missed) < 6:
                last = ([ln for ln in said.splitlines() if ln.strip()][-1:] or [""])[0]
                self.missed.append(f"{name} ({how}: {' '.join(last.split())[:90]})")

    def result(self) -> dict:
        return {**self.counts, **({"not handled": "; ".join(self.missed)} if self.missed else {})}


def _judge(rc: int, err: str, *, refused_with: tuple[str, ...] = (), ok: bool = False) -> str:
    """handled: exit 2 with every text of `refused_with` in its last line, or (`ok`) exit 0."""
    if answer(rc, err) == "unexpected":
        return "unexpected"
    last = " ".join(([ln for ln in err.splitlines() if ln.strip()][-1:] or [""])[0].split())
    if ok:
        return "handled" if rc == 0 else "other miss"
    if rc == 0:
        return "silent wrong"
    return "handled" if rc == 2 and all(t in last for t in refused_with) else "other miss"


# ------------------------------------------------------------------------------- trials
OVER = ["3.5e38", "1e308", "-1e300", "1e300", "1e39", "-3.5e38"]
UNDER = ["1e-40", "1e-46", "-2e-39", "1.1e-38"]
PLAIN = ["3.4e38", "-3.4e38", "1.2e-38", "0", "1e-30"]


def extreme_targets(ctx) -> dict:
    work = ctx.fresh("tables-targets")
    images = _images(ctx.work / "tables-images")
    tally = Tally()
    values = OVER + UNDER + PLAIN if not ctx.quick else OVER[:3] + UNDER[:2] + PLAIN[:2]
    for k, value in enumerate(values):
        table = _table(
            work / f"t{k}.csv", "image,y", lambda i, _n, v=value: v if i == 3 else str(i % 5)
        )
        out = work / f"ds{k}"
        p = cnncli(
            "dataset",
            "build",
            images,
            "--labels",
            table,
            "--task",
            "regression",
            "--target-col",
            "y",
            "-o",
            out,
            cwd=work,
        )
        err = " ".join(p.stderr.split())
        if value in OVER:
            how = _judge(p.returncode, p.stderr, refused_with=("nothing was written",))
            if how == "handled" and not ("line 5" in err and "float32" in err):
                how = "other miss"  # refused, but the row and the reason not named
        elif value in UNDER:
            how = _judge(p.returncode, p.stderr, ok=True)
            manifest = out / "manifest.json"
            noted = "line 5" in err and "float32" in err
            counted = (
                manifest.is_file()
                and json.loads(manifest.read_text())["targets"][0].get("below_float32_normal") == 1
            )
            if how == "handled" and not (noted and counted):
                how = "silent wrong"  # stored as a subnormal or 0 without a word
        else:
            how = _judge(p.returncode, p.stderr, ok=True)
            if how == "handled" and "float32" in err:
                how = "other miss"  # a value float32 holds, noted for nothing
        tally.add(f"y={value}", how, p.stderr)
    return tally.result()


HEADER_CASES = [  # (header, task options, a duplicate?)
    ("image,y,y", [], True),
    ("image,y, y", [], True),
    ("y,image,y", [], True),
    ("image,y,y", ["--task", "regression", "--target-col", "y"], True),
    ("image,y,b,y", ["--task", "regression", "--target-col", "b"], True),
    ("image,a,b,a", ["--task", "multilabel", "--label-cols", "a,b"], True),
    ("image,tags,tags", ["--task", "multilabel", "--label-col", "tags"], True),
    ("image,y,Y", ["--label-col", "y"], False),
    ("image,y,y.1", ["--label-col", "y"], False),
    ("image,a,b", ["--task", "multilabel", "--label-cols", "a,b"], False),
]
CELLS = {
    "y": lambda i: str(i % 2),
    "Y": lambda i: str(1 - i % 2),
    "y.1": lambda i: str(i % 3),
    "a": lambda i: str(i % 2),
    "b": lambda i: str((i // 2) % 2),
    "tags": lambda i: ("a;b", "a", "b")[i % 3],
}


def duplicate_headers(ctx) -> dict:
    work = ctx.fresh("tables-headers")
    images = _images(ctx.work / "tables-images")
    tally = Tally()
    cases = HEADER_CASES if not ctx.quick else HEADER_CASES[::2]
    for k, (header, options, duplicate) in enumerate(cases):
        table = _table(work / f"t{k}.csv", header, lambda i, n: CELLS[n.strip()](i))
        p = cnncli(
            "dataset", "build", images, "--labels", table, *options, "-o", work / f"ds{k}", cwd=work
        )
        if duplicate:
            how = _judge(p.returncode, p.stderr, refused_with=("twice",))
        else:
            how = _judge(p.returncode, p.stderr, ok=True)
        tally.add(f"{header!r} {' '.join(options)}".strip(), how, p.stderr)
    return tally.result()


OPTION_CASES = [  # (options, refused with, or None: builds)
    (["--task", "regression", "--target-col", "y", "--target-col", "y"], "--target-col"),
    (["--task", "regression", "--target-col", "y,y"], "--target-col"),
    (["--task", "regression", "--target-col", "y", "--target-col", " y"], "--target-col"),
    (["--task", "regression", "--target-col", ","], "--target-col"),
    (["--task", "multilabel", "--label-cols", "a,a,b"], "--label-cols"),
    (["--task", "multilabel", "--label-cols", ","], "--label-cols"),
    (["--task", "multilabel", "--label-cols", " , ,"], "--label-cols"),
    (["--task", "multilabel", "--label-cols", "a,b,A"], "--label-cols"),  # no column 'A'
    (["--task", "multilabel", "--label-cols", "a,,b"], None),
    (["--task", "multilabel", "--label-cols", "a,b"], None),
    (["--task", "regression", "--target-col", "y", "--target-col", "b"], None),
]


def duplicate_options(ctx) -> dict:
    work = ctx.fresh("tables-options")
    images = _images(ctx.work / "tables-images")
    table = _table(work / "t.csv", "image,y,a,b", lambda i, n: CELLS[n](i))
    tally = Tally()
    cases = OPTION_CASES if not ctx.quick else OPTION_CASES[::2]
    for k, (options, flag) in enumerate(cases):
        p = cnncli(
            "dataset", "build", images, "--labels", table, *options, "-o", work / f"ds{k}", cwd=work
        )
        if flag is None:
            how = _judge(p.returncode, p.stderr, ok=True)
        else:
            how = _judge(p.returncode, p.stderr, refused_with=(flag,))
        tally.add(" ".join(options), how, p.stderr)
    return tally.result()


def _path_inputs(ctx, work: Path) -> dict:
    """A dataset, an .h5 model (the test fixture's: no TensorFlow needed to make it), an
    image and a run folder the path trials name beside their long paths."""
    images = _images(ctx.work / "tables-images")
    classes = work / "classes"
    for k, name in enumerate(("a", "b")):
        (classes / name).mkdir(parents=True)
        for i in range(4):
            Image.open(images / f"{4 * k + i}.png").save(classes / name / f"{i}.png")
    cnncli("dataset", "build", classes, "-o", work / "ds", cwd=work)
    model = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tf2_facade_small.h5"
    run = work / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (work / "loop.png").symlink_to("loop.png")
    return {"ds": work / "ds", "m": model, "img": images / "0.png", "run": run}


def path_cases(x: dict) -> list[tuple[str, list]]:
    """(what it shows, arguments): every command, a long name as input and as output."""
    long, deep = "a" * 300, "/".join(["c" * 200] * 25)
    m, ds, img, run = x["m"], x["ds"], x["img"], x["run"]
    return [
        ("too long", ["dataset", "build", long, "-o", "d1"]),
        ("too long", ["dataset", "build", x["ds"].parent / "classes", "-o", "b" * 250]),
        (
            "too long",
            ["dataset", "build", x["ds"].parent / "classes", "--labels", f"{long}.csv", "-o", "d2"],
        ),
        ("too long", ["dataset", "info", long]),
        ("too long", ["dataset", "info", deep]),
        ("too long", ["dataset", "preview", long, "-o", "p.png"]),
        ("too long", ["dataset", "preview", ds, "-o", f"{long}.png"]),
        ("too long", ["train", long, "--arch", "tiny"]),
        ("too long", ["train", ds, "--arch", "tiny", "-o", long]),
        ("too long", ["train", ds, "--from", f"{long}.keras"]),
        ("too long", ["evaluate", f"{long}.keras", ds]),
        ("too long", ["evaluate", m, long]),
        ("too long", ["evaluate", m, ds, "--confusion", f"{long}.png"]),
        ("too long", ["predict", m, f"{long}.png"]),
        ("too long", ["predict", m, img, "-o", f"{long}.csv"]),
        ("too long", ["summary", f"{long}.keras"]),
        ("too long", ["summary", "--arch", "tiny", "--export", f"{long}.yaml"]),
        ("too long", ["activations", m, f"{long}.png"]),
        ("too long", ["activations", m, img, "-o", long]),
        ("too long", ["embed", m, long, "-o", "e.csv"]),
        ("too long", ["embed", m, ds, "-o", f"{long}.csv"]),
        ("too long", ["filter", f"{long}.png", "-k", "sobel-x"]),
        ("too long", ["filter", img, "-k", "sobel-x", "-o", f"{long}.png"]),
        ("too long", ["pool", f"{long}.png"]),
        ("too long", ["pool", img, "-o", f"{long}.png"]),
        ("too long", ["export", f"{long}.keras", "-f", "onnx"]),
        ("too long", ["export", m, "-f", "onnx", "-o", f"{long}.onnx"]),
        ("too long", ["runs", long]),
        ("too long", ["runs", deep]),
        ("too long", ["report", long]),
        ("too long", ["report", run, "-o", long]),
        ("symbolic links", ["predict", m, "loop.png"]),
        ("symbolic links", ["filter", "loop.png", "-k", "sobel-x"]),
        ("symbolic links", ["dataset", "info", "loop.png"]),
        ("symbolic links", ["embed", m, "loop.png", "-o", "e.csv"]),
    ]


def long_paths(ctx) -> dict:
    work = ctx.fresh("paths")
    cases = path_cases(_path_inputs(ctx, work))
    tally = Tally()
    for k, (said, args) in enumerate(cases if not ctx.quick else cases[::2]):
        p = cnncli(*args, cwd=work)
        how = _judge(p.returncode, p.stderr, refused_with=(said,))
        shown = " ".join(str(a) if len(str(a)) < 40 else f"<{len(str(a))} chars>" for a in args)
        tally.add(f"#{k} {shown}", how, p.stderr)
    return tally.result()


def short_find_lr(ctx) -> dict:
    work = ctx.fresh("find-lr")
    images = _images(ctx.work / "tables-images")
    classes = work / "classes"
    for k, name in enumerate(("a", "b")):
        (classes / name).mkdir(parents=True)
        for i in range(3 if k else 2):
            Image.open(images / f"{3 * k + i}.png").save(classes / name / f"{i}.png")
    cnncli("dataset", "build", classes, "-o", work / "ds", "--val", "0", cwd=work)
    p = cnncli("train", work / "ds", "--arch", "tiny", "--find-lr", "-o", work / "lr.png", cwd=work)
    tally = Tally()
    how = _judge(p.returncode, p.stderr, ok=True)
    if how == "handled" and "warning: the sweep had only" not in p.stderr:
        how = "silent wrong"  # a rate suggested from a handful of steps, without a word
    tally.add("--find-lr on 5 images", how, p.stderr)
    return tally.result()


TABLE_PROBES: list = [
    Probe("tables-targets", "regression targets beyond and below float32", extreme_targets),
    Probe("tables-headers", "a header naming a column twice, per task", duplicate_headers),
    Probe(
        "tables-options",
        "--target-col/--label-cols naming a column twice, or none",
        duplicate_options,
    ),
    Probe("paths", "names too long, paths too long, symlink loops in every command", long_paths),
    Probe("short-find-lr", "--find-lr on 5 images: a warning with its suggestion", short_find_lr),
]
