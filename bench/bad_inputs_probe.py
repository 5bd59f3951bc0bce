"""Bad inputs probe (issue 13, items 4, 8, 9 and 13): a battery of about 60 bad inputs, each
given to the real `cnncli` in its own process; prints tried / handled.

    python bench/bad_inputs_probe.py [--quick] [-k TEXT] [--keep DIR]

Handled means: no traceback and no "unexpected" error; exit 0, 1 or 2; when not 0, the last
stderr line is one "error: ..." line; the bad file (or table line) is named where the case
says it must be (a file damaged at random that still decodes, exit 0, need not be); and no
decoder message reached stderr without its file (a bare Pillow warning or libtiff line).
`--quick` leaves out the model cases (they import TensorFlow); `-k` keeps the cases whose
name contains TEXT; `--keep` leaves the inputs in DIR.
`bad_inputs(...)` returns (tried, handled, rows) for another probe to include as a section;
the cases themselves are in bench/bad_inputs_battery.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bad_inputs_battery import Case, battery  # beside this script

BARE_DECODER_LINE = re.compile(r"UserWarning|warnings\.warn|tempfile\.tif|^_?TIFF\w*:")


# ------------------------------------------------------------------------------ running
def judge(rc: int, out: str, err: str, named: list[str], case: Case, took: float) -> list[str]:
    """What is wrong with how cnncli answered (empty: handled)."""
    why = []
    text = out + err
    if "Traceback" in text:
        why.append("traceback")
    if "unexpected" in err.lower():
        why.append("'unexpected'")
    if rc not in (0, 1, 2):
        why.append(f"exit {rc}")
    last = [ln for ln in err.splitlines() if ln.strip()][-1:] or [""]
    if rc != 0 and not last[0].startswith("error: "):
        why.append("no one-line error")
    missing = [n for n in named if n not in err and not (rc == 0 and case.may_decode)]
    if missing:
        why.append("not named: " + ", ".join(m[:30] for m in missing))
    bare = [ln for ln in err.splitlines() if BARE_DECODER_LINE.search(ln)]
    if bare:
        why.append(f"bare decoder line: {bare[0][:60]}")
    if case.max_seconds and took > case.max_seconds:
        why.append(f"took {took:.1f} s")
    if case.max_lines and len(err.splitlines()) > case.max_lines:
        why.append(f"{len(err.splitlines())} stderr lines")
    return why


def run_case(case: Case, root: Path) -> tuple[bool, str]:
    root.mkdir(parents=True)
    try:
        args, named = case.setup(root)
    except Exception as e:  # the probe's own failure to make the input
        return False, f"setup failed: {type(e).__name__}: {e}"
    env = {**os.environ, "COLUMNS": "400", "TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1"}
    start = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, "-m", "cnncli", *args],
            cwd=root,
            env=env,
            capture_output=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        return False, "timed out"
    took = time.perf_counter() - start
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    why = judge(p.returncode, out, err, named, case, took)
    last = ([ln for ln in err.splitlines() if ln.strip()][-1:] or [""])[0]
    timed = f"{took:.1f} s, {len(err.splitlines())} lines; " if case.max_seconds else ""
    return not why, (f"exit {p.returncode}: {timed}" + ("; ".join(why) or last))[:160]


def bad_inputs(
    quick: bool = False,
    keyword: str | None = None,
    keep: Path | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[int, int, list]:
    """Run the battery -> (tried, handled, [(item, case, handled, what happened)])."""
    cases = [c for c in battery() if not (quick and c.model)]
    cases = [c for c in cases if not keyword or keyword in c.name]
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cnncli-bad-inputs-"))
    rows = []
    try:
        for k, case in enumerate(cases):
            ok, what = run_case(case, base / f"case{k:02d}")
            rows.append((case.item, case.name, ok, what))
            echo(f"{case.item:>3}  {'handled' if ok else 'NOT    '}  {case.name:<34} {what}")
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    return len(rows), sum(ok for _, _, ok, _ in rows), rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="leave out the model cases")
    ap.add_argument("-k", dest="keyword", help="only cases whose name contains TEXT")
    ap.add_argument("--keep", type=Path, help="leave the inputs in this folder")
    a = ap.parse_args()
    print("== bad inputs (issue 13: items 4, 8, 9, 13)")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("   (running as root: a file without read permission cannot be tried)")
    tried, handled, _ = bad_inputs(a.quick, a.keyword, a.keep)
    print(f"bad inputs: tried {tried}, handled {handled}, not handled {tried - handled}")
    return 0 if tried == handled else 1


if __name__ == "__main__":
    sys.exit(main())
