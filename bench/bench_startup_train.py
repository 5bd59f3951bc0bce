"""The whole `cnncli train DATASET` (the default recipe on the digits class folders, as
bench_recipe.py builds them: sklearn's load_digits as 28x28 PNGs, a stratified 20% test
split, seed 0) against what importing TensorFlow and Keras alone costs at the same moment
(issue 26: the train command in <= 10 s on an idle machine).

Per round, interleaved: `python -c "import tensorflow"`, `python -c "import keras"`, the
same `import keras` as a cnncli command loads it (cnncli.cli.tf_load.prepare first), and
`python -m cnncli train DS -o RUN --json-log` (its stdout read as it comes: the first and
last epoch lines time the start-up, the epochs and the end). Medians over the rounds,
the ratio train / import tensorflow, and the 1-minute load average at each round (the
machine is shared: report it with every figure). `--importtime`: also cnncli's own
modules' import time before TensorFlow (python -X importtime).

    python bench/bench_startup_train.py [--rounds N] [--importtime]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

from bench_evaluate import make_digits  # noqa: E402

# TensorFlow and Keras as a cnncli command loads them (cnncli.cli.tf_load: without Keras'
# optional extras, without the garbage collector)
LEAN_KERAS = "from cnncli.cli.tf_load import prepare; prepare(False); import keras"


def timed(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=ENV, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def train(ds: Path, run: Path) -> dict:
    """Wall times of one `cnncli train`: to the first epoch's line, to the last's, to exit."""
    command = [sys.executable, "-m", "cnncli", "train", str(ds), "-o", str(run)]
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [*command, "--overwrite", "--json-log"],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert p.stdout is not None
    epochs = []
    for line in p.stdout:
        if line.startswith("{") and '"epoch"' in line:
            epochs.append((time.perf_counter() - t0, json.loads(line)))
    if p.wait() != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    total = time.perf_counter() - t0
    return {
        "total": total,
        "first": epochs[0][0],
        "last": epochs[-1][0],
        "after": total - epochs[-1][0],
        "epochs": len(epochs),
    }


def own_imports() -> list[tuple[float, str]]:
    """(seconds, module) of cnncli's modules imported before TensorFlow by `cnncli train`
    (the cumulative time of the top-level ones, python -X importtime), largest first."""
    code = "import cnncli.cli.main, cnncli.cli.train, cnncli.training.fit, cnncli.cli.console"
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line.split(":", 1)[1].split("|")
        if not name.startswith("  "):  # top level
            rows.append((int(cumulative) / 1e6, name.strip()))
    return sorted(rows, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_train-"))
    try:
        digits = make_digits(work / "digits")
        ds = work / "ds"
        build = ["dataset", "build", str(digits), "-o", str(ds), "--val", "0", "--test", "0.2"]
        timed("-m", "cnncli", *build, "--seed", "0")
        rows: dict[str, list[float]] = {}
        loads = []
        for r in range(args.rounds):
            loads.append(os.getloadavg()[0])
            rows.setdefault("import tensorflow", []).append(timed("-c", "import tensorflow"))
            rows.setdefault("import keras", []).append(timed("-c", "import keras"))
            rows.setdefault("import keras as cnncli loads it", []).append(timed("-c", LEAN_KERAS))
            got = train(ds, work / "run")
            for key, label in (
                ("total", "cnncli train (whole command)"),
                ("first", "  to the first epoch's end"),
                ("last", "  to the last epoch's end"),
                ("after", "  after the last epoch"),
            ):
                rows.setdefault(label, []).append(got[key])
            print(
                f"round {r + 1}: load {loads[-1]:.1f}; import tensorflow "
                f"{rows['import tensorflow'][-1]:.1f} s, train {got['total']:.1f} s "
                f"({got['epochs']} epochs)",
                flush=True,
            )
        print(f"\n{args.rounds} rounds, load average {min(loads):.1f}-{max(loads):.1f}")
        for label, values in rows.items():
            print(
                f"{label:32} median {statistics.median(values):6.2f} s   "
                + " ".join(f"{v:.2f}" for v in values)
            )
        ratio = statistics.median(
            t / i
            for t, i in zip(
                rows["cnncli train (whole command)"], rows["import tensorflow"], strict=True
            )
        )
        print(f"train / import tensorflow: {ratio:.2f} (median of the rounds' ratios)")
        if args.importtime:
            print("\ncnncli's imports before TensorFlow (python -X importtime, cumulative):")
            for seconds, name in own_imports()[:12]:
                print(f"  {seconds:6.3f} s  {name}")
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
