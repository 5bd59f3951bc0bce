"""One rule for "may I replace this output folder" (cnncli.atomic.check_replaceable), used by
every command that writes a folder: train's run folder, dataset build, activations, report,
check and demo. An earlier output of the same command is replaced (with --overwrite; the
demo replaces its own without), any other folder or a file is refused with the same kind of
line, and nothing another process writes is touched. And every rename goes through atomic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnncli import atomic, claims
from cnncli.errors import BusyError, OutputExistsError, UsageError

ROOT = Path(__file__).resolve().parent.parent

_HOLD = """
import sys, time, pathlib
from cnncli import claims
target, ready, release = sys.argv[1:4]
with claims.claim(target, "cnncli other"):
    pathlib.Path(ready).write_text("ok")
    t = time.time()
    while not pathlib.Path(release).exists() and time.time() - t < 60:
        time.sleep(0.02)
"""


def _callers(tmp_path, tiny):
    """Each command's check, as a function of (folder, overwrite), and the marker its own
    earlier output holds."""
    from cnncli.datasets.build import build_dataset
    from cnncli.demo.run import MARKER, check_demo_dir
    from cnncli.inference.activations import activations
    from cnncli.runs.report import check_output
    from cnncli.training.rundir import check_run_dir

    images = tiny.make_images(tmp_path / "imgs", ["a", "b"], per_class=2)
    image = next(images.rglob("*.png"))
    demo_marker = json.dumps({"written_by": "cnncli demo", "status": "finished"})
    return {
        "train": (check_run_dir, "a cnncli run folder (no run.json), so --overwrite", "run.json"),
        "dataset build": (
            lambda folder, overwrite: build_dataset(images, folder, overwrite=overwrite),
            "a cnncli dataset (no manifest.json), so --overwrite",
            "manifest.json",
        ),
        "activations": (
            # the folder is checked before the model is opened: no model is needed
            lambda folder, overwrite: activations(
                tmp_path / "none.keras", [image], folder, overwrite=overwrite
            ),
            "an activations folder (no index.html), so --overwrite",
            "index.html",
        ),
        "report": (check_output, "a cnncli report (no index.html), so --overwrite", "index.html"),
        "demo": (
            lambda folder, overwrite: check_demo_dir(folder),
            "a cnncli demo folder (no .cnncli-demo.json), so cnncli demo",
            (MARKER, demo_marker),
        ),
    }


def _own_output(folder: Path, marker) -> Path:
    name, text = marker if isinstance(marker, tuple) else (marker, "{}")
    folder.mkdir()
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_every_command_refuses_a_folder_it_did_not_write_in_the_same_words(tmp_path, tiny):
    for command, (check, words, marker) in _callers(tmp_path, tiny).items():
        foreign = tmp_path / f"mine-{command.replace(' ', '-')}"
        foreign.mkdir()
        (foreign / "notes.txt").write_text("keep me")
        with pytest.raises(UsageError) as refused:
            check(foreign, True)
        assert refused.value.one_line() == (
            f"{foreign} is not {words} will not replace it: "
            + (
                "choose another folder with -o DIR"
                if command == "demo"
                else "choose another output folder"
            )
        ), command
        assert (foreign / "notes.txt").read_text() == "keep me"
        a_file = tmp_path / f"file-{command.replace(' ', '-')}"
        a_file.write_text("x")
        with pytest.raises(UsageError, match=re.escape(f"{a_file} exists and is not a folder")):
            check(a_file, True)
        if command != "demo":  # the demo replaces its own output without --overwrite
            own = _own_output(tmp_path / f"own-{command.replace(' ', '-')}", marker)
            with pytest.raises(OutputExistsError):
                check(own, False)


def test_nothing_another_process_writes_is_replaced(tmp_path, tiny):
    """Each command refuses, before any work, an earlier output of its own while another
    process holds its claim (was: train and dataset build only; activations, report and
    the demo went ahead)."""
    for command, (check, _, marker) in _callers(tmp_path, tiny).items():
        own = _own_output(tmp_path / f"own-{command.replace(' ', '-')}", marker)
        before = sorted(p.name for p in own.iterdir())
        ready, release = tmp_path / f".ready-{own.name}", tmp_path / f".release-{own.name}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD, own, ready, release],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            t = time.time()
            while not ready.exists():
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() - t < 60
                time.sleep(0.02)
            with pytest.raises(BusyError) as busy:
                check(own, True)
            assert busy.value.one_line() == (
                f"{own} is being written by cnncli other (pid {proc.pid} on "
                f"{atomic.HOST}, since {busy.value.one_line().split(', since ')[1]}"
            ), command
        finally:
            release.write_text("go")
            proc.wait(timeout=60)
        assert sorted(p.name for p in own.iterdir()) == before, command
        claims.check_free(own)  # released: free to replace again


def test_an_empty_folder_is_used_and_inputs_are_never_replaced(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    atomic.check_replaceable(empty, True, "x", "x.json")  # nothing to lose
    atomic.check_replaceable(empty, False, "x", "x.json", empty_is_free=True)
    with pytest.raises(OutputExistsError):
        atomic.check_replaceable(empty, False, "x", "x.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UsageError, match="holds the inputs .*--overwrite would delete them"):
        atomic.check_replaceable(tmp_path, True, "x", "x.json", inputs=[empty])


def test_renames_go_through_atomic():
    """os.replace, os.rename and Path.rename appear in cnncli/atomic.py only."""
    found = set()
    for path in sorted((ROOT / "cnncli").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if name != "cnncli/atomic.py" and re.search(r"os\.(replace|rename)\(|\.rename\(", text):
            found.add(name)
    assert not found, f"rename through cnncli.atomic.rename: {sorted(found)}"
