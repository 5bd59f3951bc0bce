"""Make the documentation's pictures (docs/img/*.png) from real outputs of `cnncli demo`.

    python docs/make_pictures.py            # needs cnncli installed; chromium for the page shot

Runs `cnncli demo` into a temporary folder, copies the history plot, the filter gallery,
one activation grid and a cluster sheet (downscaled and palette-quantised to keep the
repository small), and screenshots activations/index.html with headless Chromium when
one is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

IMG = Path(__file__).resolve().parent / "img"
WIDTH = 900  # pixels: wide enough to read on GitHub


def _small(src: Path, dst: Path, width: int = WIDTH, colors: int = 128) -> None:
    img = Image.open(src).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
    print(f"wrote {dst.relative_to(IMG.parent.parent)} ({dst.stat().st_size // 1024} kB)")


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        subprocess.run(
            [sys.executable, "-m", "cnncli", "demo", "-o", str(demo), "--quiet"], check=True
        )
        _small(demo / "run" / "history.png", IMG / "history.png")
        _small(demo / "filters" / "gallery.png", IMG / "filter-gallery.png")
        grid = sorted((demo / "activations").glob("01_*.png"))[0]  # the first Conv2D
        _small(grid, IMG / "activations-conv.png")
        _small(demo / "evaluate" / "confusion.png", IMG / "confusion.png", width=450)
        sheets = sorted((demo / "embed" / "vectors_clusters").glob("cluster*.png"))
        _small(sheets[0], IMG / "embed-cluster.png", width=600)
        browser = _browser()
        if browser is None:
            print("no chromium found: index page screenshot not made", file=sys.stderr)
            return 0
        shot = Path(tmp) / "index.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={shot}",
                "--window-size=1100,1400",
                (demo / "activations" / "index.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        _small(shot, IMG / "activations-index.png", width=800)
    return 0


if __name__ == "__main__":
    sys.exit(main())
