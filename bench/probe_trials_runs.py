"""Hostile run folders (issue 23, items 2, 3, 5, 6 and the run parts of 15) against the real
`cnncli runs` and `cnncli report --no-compute`, each command in its own process with a
timeout: symlinked history.csv, run.json, report pictures and activations/, a FIFO and a
/dev/zero link where a file should be, 10^6 history rows, a huge run.json, 5,000 nested
brackets, parts.json naming `../` and absolute paths, links that leave the page, an inf in
history.csv, a UTF-8 BOM.

Each trial counts as handled (a clear line or the right answer), unexpected (a traceback,
"unexpected", an exit code outside 0/1/2, a hang killed by the timeout) or silent wrong (exit
0 with a wrong answer: a secret copied into the report, a file written outside it, a link
out of the page, invalid JSON, a wrong epoch count); peak memory (ru_maxrss of the child)
and time are kept for the bombs. Registered in bench/probe_reliability.py's PROBES:

    python bench/probe_reliability.py -k run-folders [--quick]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

# Probe lives in probe_reliability, which imports this module once Probe is defined: take it
# from the module being run (`python bench/probe_reliability.py`: __main__) or imported.
_home = sys.modules.get("probe_reliability") or sys.modules["__main__"]
Probe = _home.Probe

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"
SECRET = "SECRET-7d1f-do-not-copy"
TIMEOUT = 60.0
MEMORY_CAP = 4 * 2**30  # address space of each command: /dev/zero must not eat a shared machine


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def cnncli(*args, cwd: Path, timeout: float = TIMEOUT) -> dict:
    """Run cnncli; {rc, out, err, seconds, peak_mib, timed_out}."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnncli", *map(str, args)],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_cap_memory,
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    out: dict = {}

    def drain(name, stream):
        out[name] = stream.read().decode("utf-8", "replace")

    readers = [
        threading.Thread(target=drain, args=(n, s))
        for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    timed_out = not timer.is_alive()
    timer.cancel()
    for t in readers:
        t.join()
    return {
        "rc": proc.returncode,
        "out": out["out"],
        "err": out["err"],
        "seconds": time.perf_counter() - start,
        "peak_mib": usage.ru_maxrss / 1024,
        "timed_out": timed_out,
    }


def make_run(folder: Path, rows: int = 2, history: str | None = None, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if history is None:
        history = HEADER + "".join(f"{i + 1},0.5,0.7,0.5,{0.9 - i * 1e-7}\n" for i in range(rows))
    if history:
        (folder / "history.csv").write_text(history, encoding="utf-8")
    record = {
        "format": "cnncli-run",
        "format_version": 1,
        "command": "train",
        "status": "finished",
        "started": "2026-12-01T10:00:00Z",
        "dataset": {"path": "/nonexistent/ds", "sha256": "ab" * 32, "class_names": ["a", "b"]},
        "model": {"source": {"kind": "arch", "value": "tiny"}, "params": 417},
        "options": {"epochs": rows, "monitor": "val_loss"},
        "best": {"epoch": 1, "monitor": "val_loss"},
        **extra,
    }
    (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def unexpected(r: dict) -> bool:
    text = r["err"] + r["out"]
    return (
        r["timed_out"]
        or r["rc"] not in (0, 1, 2)
        or "Traceback" in text
        or "unexpected" in text.lower()
    )


def tree_text(folder: Path) -> str:
    """Every regular file's bytes under `folder` (no link followed), as text."""
    parts = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            if p.is_file() and not p.is_symlink():
                parts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def bad_links(page: Path) -> list[str]:
    if not page.is_file():
        return []
    text = page.read_text(encoding="utf-8", errors="replace")
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    return [
        u
        for u in links
        if u.startswith(("/", "\\")) or ":" in u.split("/")[0] or ".." in u.split("/")
    ]


def outside_files(base: Path, before: set) -> list[str]:
    return sorted(str(p) for p in base.rglob("*") if str(p) not in before)


# ------------------------------------------------------------------------------ trials
def _secret(base: Path) -> Path:
    secret = base / "secret"
    secret.mkdir(exist_ok=True)
    (secret / "id_rsa").write_text(f"{SECRET}\n", encoding="utf-8")
    (secret / "pic.png").write_text(f"{SECRET} picture\n", encoding="utf-8")
    return secret


def _parts(report: Path, **parts) -> None:
    report.mkdir(parents=True, exist_ok=True)
    (report / "index.html").write_text("<p>old</p>", encoding="utf-8")
    data = {
        "computed": True,
        "pictures": {},
        "evaluations": {},
        "activations": [],
        "missing": [],
        **parts,
    }
    (report / "parts.json").write_text(json.dumps(data), encoding="utf-8")


def t_history_symlink(base: Path) -> tuple[str, dict]:
    secret = _secret(base)
    run = make_run(base / "runs" / "train", history="")
    (run / "history.csv").symlink_to(secret / "id_rsa")
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return ("silent" if SECRET in tree_text(base / "out") else "ok"), r


def t_run_json_symlink(base: Path) -> tuple[str, dict]:
    other = make_run(base / "elsewhere" / "run", extra_note=SECRET)
    run = base / "runs" / "train"
    run.mkdir(parents=True)
    (run / "run.json").symlink_to(other / "run.json")
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return ("silent" if SECRET in tree_text(base / "out") else "ok"), r


def t_picture_symlink(base: Path) -> tuple[str, dict]:
    secret = _secret(base)
    run = make_run(base / "runs" / "train")
    _parts(run / "report", pictures={"confusion-val": "confusion-val.png"})
    (run / "report" / "confusion-val.png").symlink_to(secret / "pic.png")
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return ("silent" if SECRET in tree_text(base / "out") else "ok"), r


def t_activations_symlink(base: Path) -> tuple[str, dict]:
    secret = _secret(base)
    run = make_run(base / "runs" / "train")
    act = [
        {
            "image": "x",
            "page": "activations/val-1/index.html",
            "input": "activations/val-1/input.png",
            "predicted": "a",
            "probability": 0.5,
            "gradcam": None,
            "grids": [],
        }
    ]
    _parts(run / "report", activations=act)
    (run / "report" / "activations").symlink_to(secret, target_is_directory=True)
    (run / "report" / "images").mkdir()
    (run / "report" / "images" / "leak.png").symlink_to(secret / "id_rsa")
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return ("silent" if SECRET in tree_text(base / "out") else "ok"), r


def t_parts_dotdot(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    (base / "victim").mkdir()
    (base / "victim" / ".bashrc").write_text("mine\n", encoding="utf-8")
    (run / ".bashrc").write_text("echo pwned\n", encoding="utf-8")
    _parts(
        run / "report",
        pictures={"confusion-val": "../.bashrc", "errors-val": "../../../victim/.bashrc"},
    )
    before = {str(p) for p in base.rglob("*")}
    r = cnncli("report", run, "--no-compute", "-o", base / "victim" / "out", cwd=base)
    changed = (base / "victim" / ".bashrc").read_text(encoding="utf-8") != "mine\n"
    out = str(base / "victim" / "out")
    extra = [p for p in outside_files(base, before) if not p.startswith(out)]
    return ("silent" if changed or extra else "ok"), r


def t_parts_absolute(base: Path) -> tuple[str, dict]:
    secret = _secret(base)
    run = make_run(base / "runs" / "train")
    _parts(run / "report", pictures={"confusion-val": str(secret / "pic.png")})
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return ("silent" if SECRET in tree_text(base / "out") else "ok"), r


def t_page_links(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    act = [
        {
            "image": "x",
            "page": "//evil.example/p.html",
            "input": "/etc/passwd",
            "predicted": "a",
            "probability": 0.5,
            "gradcam": "javascript:alert(1)",
            "grids": [{"name": "c", "type": "Conv2D", "file": "../../up.png"}],
        }
    ]
    _parts(
        run / "report",
        activations=act,
        pictures={"confusion-val": "//evil.example/x.png", "errors-val": "/etc/x.png"},
    )
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return ("silent" if bad_links(base / "out" / "index.html") else "ok"), r


def t_parts_bad_types(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    act = [
        {
            "image": 3,
            "page": 5,
            "input": None,
            "predicted": [],
            "probability": "high",
            "grids": "none",
        }
    ]
    _parts(run / "report", activations=act, pictures=["x"], evaluations={"val": 3})
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return "ok", r


def t_parts_nested(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("x", encoding="utf-8")
    (run / "report" / "parts.json").write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base)
    return "ok", r


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def t_history_fifo(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train", history="")
    _fifo(run / "history.csv")
    return "ok", cnncli("runs", base / "runs", "--json", cwd=base, timeout=20)


def t_history_fifo_report(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train", history="")
    _fifo(run / "history.csv")
    return "ok", cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base, timeout=20)


def t_evaluation_fifo(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    (run / "report").mkdir()
    _fifo(run / "report" / "evaluation-test.json")
    return "ok", cnncli("runs", base / "runs", "--json", cwd=base, timeout=20)


def t_lock_fifo(base: Path) -> tuple[str, dict]:
    make_run(base / "runs" / "train", status="running")
    _fifo(base / "runs" / ".train.lock")
    return "ok", cnncli("runs", base / "runs", "--json", cwd=base, timeout=20)


def t_parts_fifo(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("x", encoding="utf-8")
    _fifo(run / "report" / "parts.json")
    return "ok", cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base, timeout=20)


def t_history_dev_zero(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train", history="")
    (run / "history.csv").symlink_to("/dev/zero")
    return "ok", cnncli("runs", base / "runs", "--json", cwd=base, timeout=60)


def t_run_json_dev_zero(base: Path) -> tuple[str, dict]:
    make_run(base / "runs" / "good")
    run = base / "runs" / "train"
    run.mkdir(parents=True)
    (run / "run.json").symlink_to("/dev/zero")
    r = cnncli("runs", base / "runs", "--json", cwd=base, timeout=60)
    return _listed(r, ["good"]), r


def _big_history(base: Path, rows: int) -> Path:
    run = make_run(base / "runs" / "train", rows=1)
    with open(run / "history.csv", "w", encoding="utf-8") as f:
        f.write(HEADER)
        for start in range(0, rows, 100_000):
            f.write(
                "".join(
                    f"{i + 1},0.5,0.7,0.5,{0.9 - i * 1e-7}\n"
                    for i in range(start, min(rows, start + 100_000))
                )
            )
    return run


def t_huge_history_runs(base: Path, rows: int) -> tuple[str, dict]:
    _big_history(base, rows)
    r = cnncli("runs", base / "runs", "--json", cwd=base, timeout=120)
    return "ok", r


def t_huge_history_report(base: Path, rows: int) -> tuple[str, dict]:
    run = _big_history(base, rows)
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base, timeout=300)
    page = base / "out" / "index.html"
    r["page_mib"] = page.stat().st_size / 2**20 if page.is_file() else 0.0
    return ("silent" if r["page_mib"] > 5 else "ok"), r


def t_long_history_report(base: Path, rows: int) -> tuple[str, dict]:
    """A long history under the size limit: read, every row copied, a bounded page."""
    run = _big_history(base, rows)
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base, timeout=300)
    page, copy = base / "out" / "index.html", base / "out" / "history.csv"
    r["page_mib"] = page.stat().st_size / 2**20 if page.is_file() else 0.0
    whole = copy.is_file() and copy.read_bytes() == (run / "history.csv").read_bytes()
    return ("silent" if r["page_mib"] > 5 or (r["rc"] == 0 and not whole) else "ok"), r


def t_huge_run_json(base: Path, mib: int) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train")
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    record["options"]["note"] = "x" * (mib * 2**20)
    (run / "run.json").write_text(json.dumps(record), encoding="utf-8")
    del record
    r = cnncli("report", run, "--no-compute", "-o", base / "out", cwd=base, timeout=300)
    page = base / "out" / "index.html"
    r["page_mib"] = page.stat().st_size / 2**20 if page.is_file() else 0.0
    return ("silent" if r["page_mib"] > 5 else "ok"), r


def _listed(r: dict, names: list[str]) -> str:
    try:
        got = sorted(x["name"] for x in json.loads(r["out"])["runs"])
    except (ValueError, KeyError, TypeError):
        return "silent" if r["rc"] == 0 else "ok"
    return "ok" if got == sorted(names) else "silent"


def t_nested_run_json(base: Path) -> tuple[str, dict]:
    make_run(base / "runs" / "good")
    (base / "runs" / "bad").mkdir()
    (base / "runs" / "bad" / "run.json").write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    r = cnncli("runs", base / "runs", "--json", cwd=base)
    verdict = _listed(r, ["good"])
    if verdict == "ok" and r["rc"] == 0 and '/bad"' not in r["out"]:
        verdict = "silent"  # the damaged folder must be named
    return verdict, r


def t_nested_options(base: Path) -> tuple[str, dict]:
    make_run(base / "runs" / "good")
    deep = make_run(base / "runs" / "deep")
    text = (deep / "run.json").read_text(encoding="utf-8")
    nest = '{"a":' * 900 + "1" + "}" * 900
    (deep / "run.json").write_text(
        text.replace('"options": {', f'"options": {{"x": {nest}, '), encoding="utf-8"
    )
    r = cnncli("runs", base / "runs", "--json", "--only-changed", cwd=base)
    return ("ok" if r["rc"] in (0, 2) else "silent"), r


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def t_inf_json(base: Path) -> tuple[str, dict]:
    make_run(base / "runs" / "train", history=HEADER + "1,0.5,inf,0.5,0.7\n2,0.6,nan,0.6,-inf\n")
    r = cnncli("runs", base / "runs", "--json", cwd=base)
    try:
        _strict_json(r["out"])
        return "ok", r
    except ValueError:
        return "silent", r


def t_bom(base: Path) -> tuple[str, dict]:
    run = make_run(base / "runs" / "train", rows=2)
    data = (run / "history.csv").read_bytes()
    (run / "history.csv").write_bytes(b"\xef\xbb\xbf" + data)
    r = cnncli("runs", base / "runs", "--json", cwd=base)
    try:
        epochs = json.loads(r["out"])["runs"][0]["epochs_done"]
    except (ValueError, KeyError, IndexError, TypeError):
        epochs = None
    return ("ok" if epochs == 2 else "silent"), r


def t_dotdot_run_name(base: Path) -> tuple[str, dict]:
    make_run(base / "runs" / "a")
    b = make_run(base / "runs" / "b")
    (b / "sub").mkdir()
    before = {str(p) for p in base.rglob("*")}
    r = cnncli(
        "report",
        base / "runs" / "a",
        b / "sub" / "..",
        "--no-compute",
        "-o",
        base / "cmp",
        cwd=base,
    )
    extra = [p for p in outside_files(base, before) if not p.startswith(str(base / "cmp"))]
    return ("silent" if extra else "ok"), r


def trials(quick: bool) -> list[tuple[str, object]]:
    rows = 200_000 if quick else 1_000_000
    mib = 50 if quick else 200
    return [
        ("history.csv symlink to a secret (report)", t_history_symlink),
        ("run.json symlink (report)", t_run_json_symlink),
        ("report picture symlink (report --no-compute)", t_picture_symlink),
        ("activations/ and images/ symlinks (report --no-compute)", t_activations_symlink),
        ("parts.json naming ../ (report --no-compute)", t_parts_dotdot),
        ("parts.json naming an absolute path", t_parts_absolute),
        ("parts.json links //host, /abs, javascript:, ../", t_page_links),
        ("parts.json of wrong types", t_parts_bad_types),
        ("parts.json of 5,000 nested brackets", t_parts_nested),
        ("history.csv FIFO (runs)", t_history_fifo),
        ("history.csv FIFO (report)", t_history_fifo_report),
        ("report/evaluation-test.json FIFO (runs)", t_evaluation_fifo),
        ("claim .train.lock FIFO (runs)", t_lock_fifo),
        ("report/parts.json FIFO (report)", t_parts_fifo),
        ("history.csv -> /dev/zero (runs)", t_history_dev_zero),
        ("run.json -> /dev/zero (runs)", t_run_json_dev_zero),
        (f"{rows:,} history rows (runs)", lambda b: t_huge_history_runs(b, rows)),
        (f"{rows:,} history rows (report)", lambda b: t_huge_history_report(b, rows)),
        ("130,000 history rows (runs)", lambda b: t_huge_history_runs(b, 130_000)),
        ("130,000 history rows (report)", lambda b: t_long_history_report(b, 130_000)),
        (f"{mib} MiB run.json (report)", lambda b: t_huge_run_json(b, mib)),
        ("run.json of 5,000 nested brackets (runs)", t_nested_run_json),
        ("options nested 900 deep (runs --only-changed)", t_nested_options),
        ("inf and nan in history.csv (runs --json)", t_inf_json),
        ("history.csv with a UTF-8 BOM (runs)", t_bom),
        ("a run given as x/.. (report of two)", t_dotdot_run_name),
    ]


def run_folders(ctx) -> dict:
    """The probe: every trial in a fresh folder; counts and the bombs' figures."""
    counts = {"trials": 0, "lost": 0, "handled": 0, "unexpected": 0, "silent wrong": 0}
    for i, (name, trial) in enumerate(trials(ctx.quick)):
        base = ctx.fresh(f"runs-{i:02d}")
        try:
            verdict, r = trial(base)
        except Exception as e:  # the trial's own set-up broke: a finding about the probe
            verdict, r = (
                "silent",
                {
                    "rc": None,
                    "err": f"probe: {type(e).__name__}: {e}",
                    "out": "",
                    "seconds": 0,
                    "peak_mib": 0,
                    "timed_out": False,
                },
            )
        counts["trials"] += 1
        if unexpected(r):
            verdict = "unexpected"
        key = {"ok": "handled", "unexpected": "unexpected", "silent": "silent wrong"}[verdict]
        counts[key] += 1
        counts["lost"] += verdict != "ok"
        last = " ".join((r["err"].strip().splitlines() or [""])[-1].split())[:110]
        line = (
            f"{name}: {key}, exit {r['rc']}{' (timed out)' if r['timed_out'] else ''}, "
            f"{r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB"
            + (f", page {r['page_mib']:.2f} MiB" if "page_mib" in r else "")
            + (f" | {last}" if last else "")
        )
        print("   ", line, flush=True)
    return counts


RUN_FOLDER_PROBES = [
    Probe(
        "run-folders", "hostile run folders and reports: links, FIFOs, bombs, names", run_folders
    ),
]
