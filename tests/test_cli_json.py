"""JSON is printed one way by every command (cnncli.cli.console.print_json): --json on
stdout, predict's -o FILE.json, and train's --json-log lines are the same text."""

from __future__ import annotations

import io
import re
from pathlib import Path

from cnncli.cli.console import print_json

ROOT = Path(__file__).resolve().parent.parent
DATA = {"class": "대리석", "path": Path("runs/x"), "p": 0.5, "top": [["벽돌", 0.25]]}


def test_one_json_text_for_stdout_files_and_lines(capsys):
    print_json(DATA)
    assert capsys.readouterr().out == (
        '{\n  "class": "대리석",\n  "path": "runs/x",\n  "p": 0.5,\n'
        '  "top": [\n    [\n      "벽돌",\n      0.25\n    ]\n  ]\n}\n'
    )
    file = io.StringIO()
    print_json(DATA, file=file)  # predict -o FILE.json: the same bytes as on stdout
    assert capsys.readouterr().out == ""
    print_json(DATA)
    assert file.getvalue() == capsys.readouterr().out
    print_json(DATA, one_line=True)  # train --json-log: one record a line
    assert capsys.readouterr().out == (
        '{"class": "대리석", "path": "runs/x", "p": 0.5, "top": [["벽돌", 0.25]]}\n'
    )


def test_no_command_writes_json_by_itself():
    found = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "cnncli" / "cli").glob("*.py"))
        if path.name != "console.py" and re.search(r"json\.dumps?\(", path.read_text("utf-8"))
    ]
    assert found == [], f"print JSON with cnncli.cli.console.print_json: {found}"
