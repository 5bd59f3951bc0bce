"""Benchmark `cnncli tune` (issue 25) against the README's hand-picked recipe.

On sklearn's 1,797 digits as 28x28 grayscale PNG class folders (bench_evaluate.make_digits;
built as bench_backbones.recipe builds them: 65/15/20 train/val/test, stratified, seed 0):

1. the README's recipe, trained as `cnncli train` trains it: mnist, --augment --rotation 10
   --shift 0.1 --zoom 0.1 --shear 0 --no-flip --lr-schedule cosine --warmup 1, 20 epochs,
   batch 64; test accuracy of best.keras (cnncli evaluate's code) and the wall time;
2. `cnncli tune` in its own process (start-up included): --trials N (default 12) of the
   mnist model, each at most --epochs (default 8) epochs, the median pruner, searching
   lr=1e-4..1e-2:log, batch-size=32,64,128, lr-schedule=constant,cosine, rotation=0..15,
   zoom=0..0.15; the best trial's test accuracy, the total time, the pruned fraction;
3. the best trial's `cnncli train` command (from study.json) run again on its own: the same
   best val accuracy and test accuracy (same seed, deterministic ops)?
4. the tuner's own cost: the tune process's wall time less the time inside each trial's
   training (start-up, Optuna's storage, the study page), per trial.

    python bench/bench_tune.py [--trials 12] [--epochs 8] [--keep DIR]

The machine is shared: the times are for comparing the rows of one run, not absolute.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's cnncli
sys.path.insert(0, str(ROOT / "bench"))

SPACE = [
    "lr=1e-4..1e-2:log",
    "batch-size=32,64,128",
    "lr-schedule=constant,cosine",
    "rotation=0..15",
    "zoom=0..0.15",
]


def cnncli(*args, env=None) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cnncli", *map(str, args)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"cnncli {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc, seconds


def test_accuracy(model: Path, ds: Path) -> float:
    from cnncli.inference.evaluate import evaluate

    return evaluate(model, ds, split="test").accuracy


def storage_cost(folder: Path, epochs: int, trials: int = 12) -> float:
    """Seconds per trial of what Optuna's storage does in a trial of cnncli tune, alone."""
    import optuna

    from cnncli.tune.space import parse_param
    from cnncli.tune.study import STUDY_NAME, open_storage

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    storage = open_storage(folder, "sqlite")
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
    )
    dims = [parse_param(p) for p in SPACE]

    def objective(trial):
        for d in dims:
            d.suggest(trial)
        for key in ("host", "pid", "stopped", "run_dir", "seed", "command", "seconds", "epochs"):
            trial.set_user_attr(key, key)
        for step in range(1, epochs + 1):
            trial.report(0.5 + 0.01 * step, step)
            trial.should_prune()
        return 0.9

    t = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return (time.perf_counter() - t) / trials


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=8, help="each trial's most epochs")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    from bench_evaluate import make_digits

    from cnncli.datasets.build import build_dataset

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ds = work / "digits-ds"
        if not ds.exists():
            make_digits(work / "digits")
            build_dataset(
                work / "digits", ds, size=(28, 28), color="grayscale", val=0.15, test=0.2, seed=0
            )
        recipe = [
            "--arch",
            "mnist",
            "--batch-size",
            "64",
            "--augment",
            "--rotation",
            "10",
            "--shift",
            "0.1",
            "--zoom",
            "0.1",
            "--shear",
            "0",
            "--no-flip",
            "--lr-schedule",
            "cosine",
            "--warmup",
            "1",
            "--epochs",
            "20",
        ]
        shutil.rmtree(work / "recipe", ignore_errors=True)
        _, recipe_s = cnncli("train", ds, *recipe, "-o", work / "recipe", "-q")
        recipe_run = json.loads((work / "recipe/run.json").read_text())
        recipe_test = test_accuracy(work / "recipe/best.keras", ds)
        print(
            f"1. README recipe (20 epochs): test accuracy {recipe_test:.4f}, {recipe_s:.0f} s",
            flush=True,
        )

        study = work / "study"
        shutil.rmtree(study, ignore_errors=True)
        params = [a for p in SPACE for a in ("--param", p)]
        proc, tune_s = cnncli(
            "tune",
            ds,
            "--study",
            study,
            "--trials",
            args.trials,
            "--arch",
            "mnist",
            "--epochs",
            args.epochs,
            *params,
            "--json",
            "-q",
        )
        result = json.loads(proc.stdout)
        rows = result["rows"]
        best = result["best"]
        inside = sum(r["seconds"] or 0 for r in rows)
        epochs = sum(r["epochs"] or 0 for r in rows)
        best_test = test_accuracy(study / best["run_dir"] / "best.keras", ds)
        pruned = result["counts"]["pruned"] / max(1, len(rows))
        print(
            f"2. tune, {args.trials} trials of at most {args.epochs} epochs "
            f"({epochs} epochs trained in all): best val_accuracy {best['value']:.4f} "
            f"(trial {best['number']}), test accuracy {best_test:.4f}, {tune_s:.0f} s; "
            f"pruned {result['counts']['pruned']} of {len(rows)} ({pruned:.0%})",
            flush=True,
        )

        command = shlex.split(best["command"])
        out = work / "rerun"
        shutil.rmtree(out, ignore_errors=True)
        _, rerun_s = cnncli(*command[1:], "-o", out, "-q")
        rerun = json.loads((out / "run.json").read_text())
        rerun_test = test_accuracy(out / "best.keras", ds)
        same = rerun["best"]["value"] == best["value"] and rerun_test == best_test
        print(
            f"3. the best command alone: val_accuracy {rerun['best']['value']:.4f}, test "
            f"accuracy {rerun_test:.4f} ({rerun_s:.0f} s): "
            f"{'the same' if same else 'DIFFERENT'}",
            flush=True,
        )
        print(f"   {best['command']}")

        overhead = tune_s - inside
        print(
            f"4. tuner overhead: {overhead:.1f} s of {tune_s:.0f} s outside the trials' "
            f"training ({overhead / max(1, len(rows)):.2f} s per trial; a trial took "
            f"{inside / max(1, len(rows)):.1f} s on average), of which:",
            flush=True,
        )
        _, fixed_s = cnncli("tune", "--resume", study, "--json")
        print(
            f"   {fixed_s:.1f} s: cnncli tune on the finished study (process start-up, "
            "Optuna and its storage, the importance, the study page)",
            flush=True,
        )
        per_trial = storage_cost(work / "storage-probe", args.epochs)
        print(
            f"   {per_trial * 1000:.0f} ms per trial: the storage's own work (SQLite with "
            f"the heartbeat: ask, {len(SPACE)} suggestions, 8 user attributes, "
            f"{args.epochs} reports and pruner calls, tell)",
            flush=True,
        )

        print("\n| | test accuracy | time |\n|---|---|---|")
        print(f"| README recipe, 20 epochs | {recipe_test:.4f} | {recipe_s:.0f} s |")
        print(
            f"| cnncli tune, {args.trials} trials x <= {args.epochs} epochs, best | "
            f"{best_test:.4f} | {tune_s:.0f} s |"
        )
        print(
            f"\nrecipe ran {recipe_run['epochs_finished']} epochs; tune's best trial: "
            f"{json.dumps(best['params'])}"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
