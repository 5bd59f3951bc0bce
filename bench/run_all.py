"""Run every benchmark in bench/ (bench_*.py), one after another, each in its own process.

    python bench/run_all.py [--quick] [-k TEXT] [--list] [--timeout SECONDS]

Each script's output is printed as it comes; a summary (script, exit code, wall time) ends
the run, and the exit code is 1 if any benchmark failed. `--quick` is passed through to every
script (a short run); `-k` keeps only the scripts whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def discover(keyword: str | None = None) -> list[Path]:
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    return [s for s in scripts if not keyword or keyword in s.stem]


def summary_line(script: Path) -> str:
    """The first line of a script's docstring, read without running it."""
    import ast

    try:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    except SyntaxError:
        return "(does not parse)"
    return " ".join(doc.split("\n\n")[0].split())


def run_one(script: Path, quick: bool, timeout: float | None) -> tuple[int | str, float]:
    command = [sys.executable, str(script)] + (["--quick"] if quick else [])
    print(f"\n=== {script.name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    try:
        code: int | str = subprocess.run(command, cwd=BENCH_DIR.parent, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    return code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (passed to each script)")
    parser.add_argument("-k", dest="keyword", help="only scripts whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--timeout", type=float, help="stop a benchmark after this many seconds")
    args = parser.parse_args(argv)

    scripts = discover(args.keyword)
    if args.list:
        for script in scripts:
            print(f"{script.name}: {summary_line(script)}")
        return 0
    if not scripts:
        print(f"no bench_*.py in {BENCH_DIR} matching {args.keyword!r}", file=sys.stderr)
        return 2
    results = []
    try:
        for script in scripts:
            results.append((script.name, *run_one(script, args.quick, args.timeout)))
    except KeyboardInterrupt:  # the child got the Ctrl-C too; summarise what ran
        results.append(("(interrupted)", 130, 0.0))

    width = max(len(name) for name, _, _ in results)
    print(f"\n=== summary ({'quick' if args.quick else 'full'} run)")
    for name, code, seconds in results:
        status = "ok" if code == 0 else f"FAILED ({code})"
        print(f"{name:<{width}}  {seconds:8.1f} s  {status}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
