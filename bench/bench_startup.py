"""Start-up time: `cnncli --help`, `cnncli --version` and `cnncli dataset --help` against
`python -c "import tensorflow"`, in one run (issue 2 §1; goal: help under 0.5 s).

    python bench/bench_startup.py [--quick] [--repeat N] [--profile]

Each command runs as a fresh process (the installed `cnncli` script beside this Python),
several times; the median and the fastest wall time are printed, with each command's time as
a fraction of importing TensorFlow. `python -c pass` shows the interpreter's own start-up.
When a help command is over the goal (or with --profile), `python -X importtime` shows which
imports dominate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_SECONDS = 0.5


def cnncli_script() -> list[str]:
    """The console script installed for this interpreter (not a pyenv shim), else -m cnncli."""
    beside = Path(sys.executable).with_name("cnncli")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cnncli")
    return [found] if found else [sys.executable, "-m", "cnncli"]


def wall_times(command: list[str], repeat: int) -> list[float]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-500:]!r}"
            )
    return times


def import_profile(command: list[str], top: int = 12, depth: int = 1) -> list[tuple[float, str]]:
    """The slowest imports (cumulative seconds) of `command` under -X importtime, down to
    `depth` levels of nesting (0: top-level only); nested names keep their indentation."""
    if command[0] != sys.executable:
        command = [sys.executable, *command]
    err = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True
    ).stderr
    rows, total = [], 0.0
    for line in err.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        try:
            cumulative = int(parts[1]) / 1e6
        except ValueError:
            continue
        level = (len(parts[2]) - len(parts[2].lstrip()) - 1) // 2
        if level == 0:
            total += cumulative
        if level <= depth:
            rows.append((cumulative, "  " * level + parts[2].strip()))
    rows.sort(key=lambda r: -r[0])
    return [(total, "(all imports)")] + rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="cnncli start-up time against importing TensorFlow"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--repeat", type=int, help="runs per cnncli command (default 9, quick 3)")
    parser.add_argument("--profile", action="store_true", help="always show the import profile")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 9)
    tf_repeat = 1 if args.quick else 3

    cnncli = cnncli_script()
    commands = [
        ("python -c pass", [sys.executable, "-c", "pass"], repeat),
        ("cnncli --help", [*cnncli, "--help"], repeat),
        ("cnncli --version", [*cnncli, "--version"], repeat),
        ("cnncli dataset --help", [*cnncli, "dataset", "--help"], repeat),
        ('python -c "import tensorflow"', [sys.executable, "-c", "import tensorflow"], tf_repeat),
    ]
    on_path = shutil.which("cnncli")
    if not args.quick and on_path and Path(on_path).resolve() != Path(cnncli[0]).resolve():
        commands.insert(4, (f"cnncli --help via PATH ({on_path})", [on_path, "--help"], repeat))

    print(f"script: {' '.join(cnncli)}; Python {sys.version.split()[0]}; {os.cpu_count()} cores")
    results = {}
    for label, command, n in commands:
        times = wall_times(command, n)
        results[label] = (statistics.median(times), min(times), n)

    tf_median = results['python -c "import tensorflow"'][0]
    width = max(len(label) for label in results)
    print(f"\n{'command':<{width}}  {'median s':>9}  {'min s':>7}  runs  {'x import tf':>11}  goal")
    for label, (median, fastest, n) in results.items():
        goal = ""
        if label.startswith("cnncli"):
            goal = "ok (<0.5 s)" if median < GOAL_SECONDS else "OVER 0.5 s"
        ratio = median / tf_median
        print(f"{label:<{width}}  {median:9.3f}  {fastest:7.3f}  {n:4d}  {ratio:11.2f}  {goal}")

    help_median = results["cnncli --help"][0]
    print(
        f"\ncnncli --help takes {help_median:.3f} s, {help_median / tf_median:.2f} of "
        f"`import tensorflow` ({tf_median:.3f} s); goal under {GOAL_SECONDS} s: "
        f"{'met' if help_median < GOAL_SECONDS else 'NOT met'}"
    )
    slow_help = any(
        results[k][0] >= GOAL_SECONDS for k in ("cnncli --help", "cnncli dataset --help")
    )
    if args.profile or slow_help:
        for sub in (["--help"], ["dataset", "--help"]):
            print(f"\nimport profile of `cnncli {' '.join(sub)}` (cumulative s, two levels):")
            for seconds, name in import_profile([*cnncli, *sub]):
                print(f"  {seconds:7.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
