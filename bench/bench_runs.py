"""`cnncli runs` on 100 run folders against a hand-written pandas loop over the same files,
and `cnncli report` on one run with and without a fresh evaluation (issue 16; goal: runs
under 0.5 s, no TensorFlow import).

    python bench/bench_runs.py [--quick] [--runs N] [--repeat N] [--no-report]

The run folders are synthetic (run.json and a 30-epoch history.csv each, as cnncli train
writes them); both sides run as fresh processes, so interpreter and import time count, as
a user sees them. The peer is what a user writes without cnncli: DVC and MLflow are not
installed here, and tracking servers read their own stores, not run folders. The report
part trains a tiny run (8x8 images, 2 epochs) first, then times `cnncli report RUN` (model
summary, evaluation on val and test, activations: TensorFlow) and `cnncli report RUN
--no-compute --overwrite` (reusing that evaluation, no TensorFlow), and prints the weight
of the page folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 0.5
PANDAS_LOOP = """
import json, sys
from pathlib import Path
import pandas as pd
rows = []
for folder in sorted(Path(sys.argv[1]).iterdir()):
    if not (folder / "run.json").is_file():
        continue
    run = json.loads((folder / "run.json").read_text())
    h = pd.read_csv(folder / "history.csv")
    best = h.loc[h["val_loss"].idxmin()]
    rows.append({"name": folder.name, "status": run["status"], "model": run["model"]["name"],
                 "epochs": len(h), "best_epoch": int(best["epoch"]),
                 "val_loss": best["val_loss"], **h.iloc[-1].to_dict(), **run["options"]})
table = pd.DataFrame(rows).sort_values("val_loss")
print(table.to_string(max_cols=12))
"""
HEAVY = """
import sys
from typer.testing import CliRunner
from cnncli.cli.main import app
r = CliRunner().invoke(app, ["runs", sys.argv[1], "--json"])
print(r.exit_code, ",".join(m for m in ("tensorflow", "keras") if m in sys.modules) or "none")
"""


def make_runs(root: Path, n: int, epochs: int = 30) -> None:
    for i in range(n):
        folder = root / f"train{i + 1}"
        folder.mkdir(parents=True)
        lines = ["epoch,accuracy,loss,val_accuracy,val_loss"]
        for e in range(1, epochs + 1):
            v = 1.0 / (e + i % 7) + 0.01 * (i % 5)
            lines.append(f"{e},{1 - v / 2!r},{v!r},{1 - v / 1.8!r},{v * 1.1!r}")
        (folder / "history.csv").write_text("\n".join(lines) + "\n")
        run = {
            "format": "cnncli-run",
            "format_version": 1,
            "command": "train",
            "status": "finished",
            "started": f"2026-12-01T10:{i % 60:02d}:00Z",
            "dataset": {"path": "/data/facade", "sha256": "ab" * 32, "class_names": ["a", "b"]},
            "model": {"source": {"kind": "arch", "value": "tiny"}, "name": "tiny", "params": 417},
            "options": {
                "epochs": epochs,
                "batch_size": 8 << (i % 3),
                "lr": 0.001 * (1 + i % 4),
                "optimizer": "adam",
                "seed": i,
                "monitor": "val_loss",
            },
            "epoch_seconds": [1.0 + (i % 3) / 10] * epochs,
            "epochs_finished": epochs,
            "best": {"epoch": epochs, "monitor": "val_loss", "value": 0.1},
        }
        (folder / "run.json").write_text(json.dumps(run, indent=2))


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="160")


def cnncli() -> list[str]:
    """The installed `cnncli` script beside this Python when it has `cnncli runs`, else
    this tree's (`python -m cnncli`; an installed copy may predate the command)."""
    beside = Path(sys.executable).with_name("cnncli")
    if beside.exists():
        done = subprocess.run([str(beside), "runs", "--help"], capture_output=True, env=env())
        if done.returncode == 0:
            return [str(beside)]
    return [sys.executable, "-m", "cnncli"]


def wall(command: list[str], repeat: int) -> tuple[float, float]:
    """(median, fastest) wall seconds of `command` in fresh processes."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env(), cwd=REPO)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-800:]!r}")
    return statistics.median(times), min(times)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bench_table(n: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        make_runs(root, n)
        code, heavy = subprocess.run(
            [sys.executable, "-c", HEAVY, str(root)], env=env(), capture_output=True, text=True
        ).stdout.split()
        print(f"cnncli runs on {n} run folders (median / fastest of {repeat}, fresh processes)")
        print(f"  TensorFlow or Keras imported by `cnncli runs`: {heavy} (exit {code})")
        print(f"  command: {' '.join(cnncli())}")
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("cnncli --help (start-up alone)", [*cnncli(), "--help"]),
            ("cnncli runs", [*cnncli(), "runs", str(root)]),
            (
                "cnncli runs --only-changed --json",
                [*cnncli(), "runs", str(root), "--only-changed", "--json"],
            ),
            ("pandas loop (peer)", [sys.executable, "-c", PANDAS_LOOP, str(root)]),
        ]
        results = {name: wall(cmd, repeat) for name, cmd in rows}
        peer = results["pandas loop (peer)"][0]
        for name, (median, fastest) in results.items():
            print(
                f"  {name:36s} {median:6.3f} s  (fastest {fastest:.3f} s)  "
                f"{median / peer:5.2f}x the pandas loop"
            )
        sys.path.insert(0, str(REPO))
        from cnncli.runs.table import list_runs

        start = time.perf_counter()
        for _ in range(repeat):
            list_runs([root], only_changed=True)
        inside = (time.perf_counter() - start) / repeat
        print(f"  library alone (list_runs, in process): {inside * 1000:.1f} ms")
        verdict = "met" if results["cnncli runs"][0] < GOAL_SECONDS else "NOT met"
        print(f"  goal: under {GOAL_SECONDS} s: {verdict}")


def bench_report(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        setup = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from pathlib import Path
from conftest import TinyKit as tiny
from cnncli.training.fit import train
from cnncli.training.options import TrainOptions
root = Path({str(tmp)!r})
ds = tiny.build(tiny.make_images(root / "images", tiny.FACADE), root / "ds")
train(ds, root / "runs" / "train", arch="tiny", options=TrainOptions(epochs=2, batch_size=8))
"""
        subprocess.run([sys.executable, "-c", setup], env=env(), check=True, capture_output=True)
        run = tmp / "runs" / "train"
        fresh = wall([*cnncli(), "report", str(run), "--overwrite"], repeat)
        reuse = wall([*cnncli(), "report", str(run), "--overwrite", "--no-compute"], repeat)
        page = run / "report" / "index.html"
        print(f"cnncli report on one run (8x8 images, tiny model; median / fastest of {repeat})")
        for name, (median, fastest) in (
            ("with a fresh evaluation (TensorFlow)", fresh),
            ("reusing it (--no-compute)", reuse),
        ):
            print(f"  {name:38s} {median:6.2f} s  (fastest {fastest:.2f} s)")
        print(
            f"  page weight: index.html {page.stat().st_size / 1024:.1f} kB, whole folder "
            f"{folder_bytes(run / 'report') / 1024:.0f} kB "
            f"({sum(1 for p in (run / 'report').rglob('*') if p.is_file())} files)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--runs", type=int, default=100, help="run folders (default 100)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 7)")
    parser.add_argument("--no-report", action="store_true", help="time only `cnncli runs`")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    bench_table(args.runs, repeat)
    if not args.no_report:
        bench_report(1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
