"""Hostile run folders and reports (issue 23, items 2, 3, 5, 6, 15): what `cnncli runs` and
`cnncli report --no-compute` read and copy stays inside the folder, is a regular file and is
bounded; names from parts.json and links on the pages stay inside their folder. Tiny run
folders made in tmp_path; the FIFO and /dev/zero trials run in a subprocess with a timeout
and a memory cap, so old code cannot hang or swamp the suite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from cnncli.runs.record import read_run
from cnncli.runs.report import write_report
from cnncli.runs.table import list_runs

HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"
SECRET = "SECRET-do-not-copy"


def make_run(folder, rows=2, history=None, **extra):
    folder.mkdir(parents=True)
    if history is None:
        history = HEADER + "".join(
            f"{i + 1},0.5,0.7,0.5,{0.9 - i * 0.01:.4f}\n" for i in range(rows)
        )
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


def old_report(run, **parts):
    """An earlier report in RUN/report/ whose parts.json holds `parts`."""
    report = run / "report"
    report.mkdir()
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
    return report


def every_file_text(folder) -> str:
    out = []
    for root, _dirs, files in os.walk(folder):  # os.walk follows no link into a folder
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
    return "\n".join(out)


def page_links(page) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- item 2: names and links
def test_parts_json_naming_files_outside_the_report_copies_nothing_out(cli, tmp_path):
    run = make_run(tmp_path / "runs" / "train")
    (run / ".bashrc").write_text("echo pwned\n", encoding="utf-8")
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / ".bashrc").write_text("mine\n", encoding="utf-8")
    (tmp_path / "secret.png").write_text(SECRET, encoding="utf-8")
    old_report(
        run,
        pictures={
            "confusion-val": "../.bashrc",
            "errors-val": str(tmp_path / "secret.png"),
            "scatter-val": "../../../victim/.bashrc",
        },
    )
    out = tmp_path / "victim" / "out"
    r = cli("report", run, "--no-compute", "-o", out)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "victim" / ".bashrc").read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in (tmp_path / "victim").iterdir()) == [".bashrc", "out"]
    assert SECRET not in every_file_text(out)
    assert "picture 'confusion-val' names '../.bashrc', not a .png inside the report" in r.stderr
    assert "Traceback" not in r.output and "unexpected" not in r.output


def test_links_written_into_a_page_stay_inside_its_folder(tmp_path):
    run = make_run(tmp_path / "train")
    report = old_report(
        run,
        pictures={
            "confusion-val": "//evil.example/x.png",
            "errors-val": "/etc/x.png",
            "scatter-val": "javascript:alert(1).png",
            "residuals-val": "ok-val.png",
        },
        activations=[
            {
                "image": "x",
                "page": "//evil.example/p.html",
                "input": "a/in.png",
                "predicted": "a",
                "probability": 0.5,
                "gradcam": "javascript:x.png",
                "grids": [{"name": "c", "type": "Conv2D", "file": "../../up.png"}],
            }
        ],
        evaluations={"val": {"count": 2, "accuracy": 0.5}},
    )
    (report / "ok-val.png").write_bytes(b"\x89PNG fake")
    result = write_report([run], tmp_path / "out", compute=False)
    links = page_links(result.page)
    assert "ok-val.png" in links  # the one plain name is still shown
    for link in links:  # relative, no scheme, no `..`
        assert not link.startswith(("/", "\\")) and ":" not in link, link
        assert ".." not in link.split("/"), link
    assert any("not a .png inside the report" in n for n in result.notes)
    assert any("activation entry" in n for n in result.notes)


def test_parts_json_of_wrong_types_or_too_deep_is_left_out_not_a_traceback(cli, tmp_path):
    run = make_run(tmp_path / "a")
    old_report(
        run,
        pictures=["x"],
        evaluations={"val": 3, "../x": {}},
        activations=[{"image": 3, "page": 5, "probability": "high", "grids": "no"}],
        summary={"total_params": "many"},
        missing="no",
    )
    r = cli("report", run, "--no-compute", "-o", tmp_path / "out")
    assert r.exit_code == 0 and "unexpected" not in r.output, r.output
    assert "the model summary is not a summary: left out" in r.stderr
    deep = make_run(tmp_path / "b")
    old_report(deep)
    (deep / "report" / "parts.json").write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    r = cli("report", deep, "--no-compute", "-o", tmp_path / "out2")
    assert r.exit_code == 0 and "unexpected" not in r.output, r.output
    assert "is not valid JSON (nested deeper than 64 levels)" in r.stderr


def test_a_run_given_as_x_dotdot_keeps_its_own_name_inside_the_report(tmp_path):
    a = make_run(tmp_path / "runs" / "a")
    b = make_run(tmp_path / "runs" / "b")
    (b / "sub").mkdir()
    result = write_report([a, b / "sub" / ".."], tmp_path / "cmp", compute=False)
    assert sorted(p.name for p in (tmp_path / "cmp" / "runs").iterdir()) == ["a", "b"]
    assert 'href="runs/b/index.html"' in result.page.read_text(encoding="utf-8")


# ---------------------------------------------------------------- item 3: symbolic links
def test_report_copies_no_link_target_and_says_what_it_skipped(cli, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text(SECRET, encoding="utf-8")
    run = make_run(tmp_path / "runs" / "train", history="")
    (run / "history.csv").symlink_to(secret / "id_rsa")
    report = old_report(
        run,
        pictures={"confusion-val": "confusion-val.png"},
        activations=[
            {
                "image": "x",
                "page": "activations/v/index.html",
                "input": "activations/v/input.png",
                "predicted": "a",
                "probability": 0.5,
                "grids": [],
            }
        ],
    )
    (report / "confusion-val.png").symlink_to(secret / "id_rsa")
    (report / "activations").symlink_to(secret, target_is_directory=True)
    (report / "images").mkdir()
    (report / "images" / "leak.png").symlink_to(secret / "id_rsa")
    (report / "images" / "real.png").write_bytes(b"\x89PNG real")
    out = tmp_path / "out"
    r = cli("report", run, "--no-compute", "-o", out)
    assert r.exit_code == 0, r.output
    assert SECRET not in every_file_text(out)
    assert (out / "images" / "real.png").read_bytes() == b"\x89PNG real"
    for name in ("history.csv", "confusion-val.png", "activations", "leak.png"):
        assert re.search(rf"{name}\S* is a symbolic link", r.stderr), name
    assert 'href="history.csv"' not in (out / "index.html").read_text(encoding="utf-8")


def test_a_run_json_that_is_a_link_is_refused(cli, tmp_path):
    other = make_run(tmp_path / "elsewhere")
    run = tmp_path / "runs" / "train"
    run.mkdir(parents=True)
    (run / "run.json").symlink_to(other / "run.json")
    r = cli("report", run, "--no-compute", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "run.json is a symbolic link, not a regular file" in r.stderr
    table = list_runs([tmp_path / "runs"])
    assert table.runs == [] and "symbolic link" in table.skipped[0].reason


# ---------------------------------------------------------------- item 5: FIFOs, bombs, sizes
PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
from cnncli.runs.table import list_runs
t = list_runs([sys.argv[1]])
print(json.dumps({"runs": {r.name: r.notes for r in t.runs},
                  "skipped": [s.reason for s in t.skipped]}))
"""


def test_fifos_and_dev_zero_in_run_folders_neither_hang_nor_fill_memory(tmp_path, repo):
    root = tmp_path / "runs"
    os.mkfifo(make_run(root / "fifo", history="") / "history.csv")
    make_run(root / "zero", history="")
    (root / "zero" / "history.csv").symlink_to("/dev/zero")
    (make_run(root / "evaluated") / "report").mkdir()
    os.mkfifo(root / "evaluated" / "report" / "evaluation-test.json")
    make_run(root / "locked", status="running")
    os.mkfifo(root / ".locked.lock")  # the claim beside a run folder
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert sorted(seen["runs"]) == ["evaluated", "fifo", "locked", "zero"]
    notes = seen["runs"]
    assert any("history.csv is a FIFO (named pipe), not a regular file" in n for n in notes["fifo"])
    assert any("history.csv is a symbolic link" in n for n in notes["zero"])
    assert any("evaluation-test.json is a FIFO" in n for n in notes["evaluated"])
    assert any("no process holds the run folder" in n for n in notes["locked"])


def test_oversized_run_json_and_history_are_refused_by_their_size(cli, tmp_path):
    root = tmp_path / "runs"
    big = make_run(root / "big")
    record = json.loads((big / "run.json").read_text(encoding="utf-8"))
    record["options"]["note"] = "x" * (5 * 2**20)
    (big / "run.json").write_text(json.dumps(record), encoding="utf-8")
    long = make_run(root / "long", history=HEADER + "1,0.5,0.7,0.5,0.9\n" * 300_000)
    table = list_runs([root])
    assert "over the 4.0 MB cnncli reads from it" in table.skipped[0].reason
    (row,) = table.runs
    assert row.name == "long" and row.epochs_done == 0
    assert any("history.csv is 5.1 MB, over the 4.0 MB" in n for n in row.notes)
    r = cli("report", big, "--no-compute")
    assert r.exit_code == 2 and "run.json is 5.0 MB, over the 4.0 MB" in r.stderr
    assert not (big / "report").exists()
    assert long.is_dir()


def test_a_long_history_is_thinned_on_the_page_and_whole_in_the_csv(tmp_path):
    rows = 5000
    run = make_run(
        tmp_path / "train",
        history=HEADER + "".join(f"{i + 1},0.5,0.7,0.5,{1 - i / rows:.6f}\n" for i in range(rows)),
    )
    result = write_report([run], tmp_path / "out", compute=False)
    text = result.page.read_text(encoding="utf-8")
    table = text[text.index('id="history"') :]
    shown = table[: table.index("</table>")].count("<tr>") - 1
    assert 100 <= shown <= 202  # a bounded number, the best and the last among them
    assert f"of {rows:,} epochs shown" in text and f'<td class="num">{rows:,}</td>' in table
    copy = (tmp_path / "out" / "history.csv").read_bytes()
    assert copy == (run / "history.csv").read_bytes()  # every epoch stays in the CSV
    assert len(text) < 200_000


def test_long_values_from_run_json_are_clipped_on_the_page(tmp_path):
    run = make_run(tmp_path / "train", options={"epochs": 2, "note": "y" * 1_000_000})
    result = write_report([run], tmp_path / "out", compute=False)
    text = result.page.read_text(encoding="utf-8")
    assert "(1,000,000 characters)" in text and len(text) < 200_000


# ---------------------------------------------------------------- item 6: nested JSON
def test_a_run_json_of_nested_brackets_is_skipped_and_counted(cli, tmp_path):
    make_run(tmp_path / "runs" / "good")
    (tmp_path / "runs" / "bad").mkdir()
    (tmp_path / "runs" / "bad" / "run.json").write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    r = cli("runs", tmp_path / "runs", "--json")
    assert r.exit_code == 0 and "unexpected" not in r.output, r.output
    data = json.loads(r.stdout)
    assert [x["name"] for x in data["runs"]] == ["good"]
    assert "nested deeper than 64 levels" in data["skipped"][0]["reason"]
    assert "1 folder(s) skipped" in r.stderr


# ---------------------------------------------------------------- item 15: inf, BOM
def test_runs_json_is_valid_json_with_inf_and_nan_as_null(cli, tmp_path):
    history = HEADER + "1,0.5,inf,0.5,0.8\n2,0.6,nan,0.6,-inf\n"
    make_run(tmp_path / "runs" / "train", history=history)

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    r = cli("runs", tmp_path / "runs", "--json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout, parse_constant=refuse)["runs"][0]
    assert run["final"] == {"accuracy": 0.6, "loss": None, "val_accuracy": 0.6, "val_loss": None}
    assert run["best"]["epoch"] == 1 and run["best"]["value"] == 0.8  # -inf is no best loss


def test_a_history_with_a_byte_order_mark_reads_every_epoch(tmp_path):
    from cnncli.training.rundir import read_history

    run = make_run(tmp_path / "train", rows=3)
    (run / "history.csv").write_bytes(b"\xef\xbb\xbf" + (run / "history.csv").read_bytes())
    r = read_run(run)
    assert r.epochs_done == 3 and r.notes == [] and r.status == "finished"
    assert [row["epoch"] for row in read_history(run / "history.csv")] == [1, 2, 3]


# ---------------------------------------------------------------- the one reader
@pytest.mark.parametrize(
    "name,ok",
    [
        ("a.png", True),
        ("activations/val-1/input.png", True),
        ("../x.png", False),
        ("a/../../x", False),
        ("/etc/passwd", False),
        ("//host/x.png", False),
        ("javascript:alert(1)", False),
        ("C:\\x", False),
        ("a\\..\\b", False),
        ("", False),
        (".", False),
        ("a//b", False),
        ("a\nb", False),
        (3, False),
        (None, False),
    ],
)
def test_plain_names(name, ok):
    from cnncli.safe_files import plain_name

    assert plain_name(name) is ok


def test_read_regular_file_refuses_links_fifos_folders_and_size(tmp_path):
    from cnncli.safe_files import (
        MAX_JSON_DEPTH,
        RefusedFile,
        inside,
        read_json_file,
        read_regular_file,
    )

    (tmp_path / "f").write_bytes(b"12345")
    assert read_regular_file(tmp_path / "f", 5) == b"12345"
    (tmp_path / "link").symlink_to(tmp_path / "f")
    os.mkfifo(tmp_path / "fifo")
    cases = {"link": "is a symbolic link", "fifo": "is a FIFO", ".": "is a folder"}
    for name, why in cases.items():
        with pytest.raises(RefusedFile, match=why):
            read_regular_file(tmp_path / name, 100)
    with pytest.raises(RefusedFile, match="is 5 bytes, over the 4 bytes"):
        read_regular_file(tmp_path / "f", 4)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "none", 4)
    (tmp_path / "deep.json").write_text("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(RefusedFile, match="nested deeper than 64 levels"):
        read_json_file(tmp_path / "deep.json", 1000)
    (tmp_path / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(RefusedFile, match="sub is a symbolic link"):
        inside(tmp_path, "sub/f")


def test_copy_regular_tree_copies_only_regular_files(tmp_path):
    from cnncli.safe_files import copy_regular_tree

    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.png").write_bytes(b"x")
    (src / "a" / "big.png").write_bytes(b"y" * 100)
    (src / "a" / "link.png").symlink_to(src / "a" / "x.png")
    (src / "up").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(src / "pipe")
    skipped = copy_regular_tree(src, tmp_path / "dst", limit=10)
    assert sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("*")) == [
        "a",
        "a/x.png",
    ]
    assert len(skipped) == 4 and any("over the 10 bytes" in s for s in skipped)
