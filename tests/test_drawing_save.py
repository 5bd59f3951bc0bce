"""drawing.save: every picture cnncli draws is written atomically through one saver, and
matplotlib is set up in one place."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnncli.drawing import plots
from cnncli.drawing.save import save_png


def broken_write(self, fp, *args, **kwargs):
    """A save that writes half a file, then fails (a full disk, an interrupt)."""
    Path(fp).write_bytes(b"half")
    raise OSError("disk full")


def test_interrupted_figure_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", broken_write)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_projection(np.eye(2), ["a", "b"], [0, 1], "t", tmp_path / "p.png")
    with pytest.raises(OSError, match="disk full"):
        plots.plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_png_keeps_the_old_file(tmp_path, monkeypatch):
    out = save_png(np.zeros((4, 5, 1), np.uint8), tmp_path / "a.png", compress_level=1)
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (5, 4)
    before = out.read_bytes()
    monkeypatch.setattr(Image.Image, "save", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_png(np.full((4, 5, 3), 9, np.uint8), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


DRAWING_MODULES = ["drawing", "inference", "datasets/preview.py", "filters/gallery.py"]


def test_pictures_and_figures_have_one_saver_and_one_setup(repo):
    """matplotlib.use only in drawing/figures.py, savefig only in drawing/save.py, and no
    Pillow save in the modules that draw pictures (they call drawing.save.save_png)."""
    pkg = repo / "cnncli"
    drawing = [p for d in DRAWING_MODULES for p in sorted((pkg / d).rglob("*.py")) or [pkg / d]]
    assert len(drawing) > 6
    found = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if "matplotlib.use(" in code and rel != "drawing/figures.py":
                found.append(f"{rel}:{n}: {line.strip()}")
            if ".savefig(" in code and rel != "drawing/save.py":
                found.append(f"{rel}:{n}: {line.strip()}")
            if path in drawing and rel != "drawing/save.py" and re.search(r"(?<!np)\.save\(", code):
                if rel == "drawing/html.py" and "font.save(buf)" in code:
                    continue  # the font subset a page embeds (in memory), not a picture
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []
