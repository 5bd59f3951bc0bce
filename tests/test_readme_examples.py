"""The documentation's examples leave the bundled sample_data as it was: a `filter` example
that wrote `...0012.sharpen.png` into sample_data/facade was then picked up by the `predict`
example on that folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from docs_pages import example_commands

REPO = Path(__file__).resolve().parents[1]


def test_filter_examples_write_outside_the_sample_folder(cli, tmp_path, monkeypatch):
    examples = [w for w in example_commands("filter") if any("sample_data/" in a for a in w)]
    assert len(examples) >= 3
    for words in examples:
        for arg in words:
            if arg.startswith("sample_data/"):
                (tmp_path / arg).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / arg, tmp_path / arg)
    before = sorted((tmp_path / "sample_data").rglob("*"))
    monkeypatch.chdir(tmp_path)
    for words in examples:
        result = cli(*words)
        assert result.exit_code == 0, (words, result.output)
    assert sorted((tmp_path / "sample_data").rglob("*")) == before
