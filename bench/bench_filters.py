"""Benchmark `cnncli filter` (issue 5 §4): engine vs OpenCV/Pillow/SciPy, command vs ImageMagick.

(a) per named 3x3 kernel, ms per call on a 12 MP RGB photo-like image (seeded: smooth
    gradients, shapes, noise) of cnncli's engine, cv2.filter2D, Pillow ImageFilter.Kernel and
    scipy.ndimage.correlate, median of N calls each, and cnncli / OpenCV (goal <= 2);
(b) engine tuning: row-block size and 1 vs 2 threads on sharpen and box-blur;
(c) whole command: `cnncli filter --kernel sharpen big.png -o out.png` (installed script)
    against ImageMagick `convert big.png -morphology Convolve '3x3: ...' out.png`: wall time
    (median) and output size, at several --compress levels (goal: <= 0.8x the time, <= 1.25x
    the size); where the time goes (import, decode, filter, encode) in-process;
(d) peak RSS of the command (child ru_maxrss) over the decoded image size (goal < 4).

    python bench/bench_filters.py [--quick]

The machine is shared with other engineers' jobs: every figure is a median, and the
ratios compare runs made side by side in this one process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

from cnncli.filters import correlate_image, named_kernel  # noqa: E402

KERNELS3 = [
    "identity",
    "edge",
    "laplacian",
    "edge-diagonal",
    "sharpen",
    "box-blur",
    "gaussian-blur",
    "emboss",
    "sobel-x",
    "sobel-y",
]
SHARPEN_IM = "3x3: 0,-1,0 -1,5,-1 0,-1,0"


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB image: smooth gradients, a few shapes, blur and sensor noise."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            120 + 80 * np.sin(xx / w * 3.1 + 0.5) * np.cos(yy / h * 2.3),
            110 + 70 * np.cos(xx / w * 4.7 - yy / h * 1.7),
            100 + 60 * np.sin((xx + yy) / (w + h) * 6.0),
        ],
        axis=-1,
    )
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(h // 40, h // 6))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = [x0 - r, y0 - r, x0 + r, y0 + r]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def median_ms(fn, reps: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def engines(x: np.ndarray, reps: int) -> None:
    import cv2
    from scipy import ndimage

    cv2.setNumThreads(os.cpu_count() or 1)  # OpenCV at its default: all cores
    pil = Image.fromarray(x)
    print(
        f"\n(a) ms per call on {x.shape[1]}x{x.shape[0]} RGB ({x.size / 1e6:.0f} M values), "
        f"median of {reps}; OpenCV threads {cv2.getNumThreads()}"
    )
    print(f"{'kernel':15} {'cnncli':>8} {'opencv':>8} {'pillow':>8} {'scipy':>8} {'cnncli/cv':>10}")
    ratios = []
    for name in KERNELS3:
        k = named_kernel(name)
        ours = median_ms(lambda k=k: correlate_image(x, k), reps)
        cv = median_ms(lambda k=k: cv2.filter2D(x, -1, k), reps)
        scale = 16 if name == "gaussian-blur" else 9 if name == "box-blur" else 1
        ints = np.rint(k * scale).astype(int)
        pk = ImageFilter.Kernel((3, 3), ints.ravel().tolist(), scale=scale)
        pl = median_ms(lambda pk=pk: pil.filter(pk), max(1, reps // 3))
        sp = median_ms(
            lambda k=k: ndimage.correlate(x, k[:, :, None], mode="mirror"), max(1, reps // 3)
        )
        ratios.append(ours / cv)
        print(f"{name:15} {ours:8.1f} {cv:8.1f} {pl:8.1f} {sp:8.1f} {ours / cv:10.2f}")
    print(
        f"cnncli/OpenCV: median {statistics.median(ratios):.2f}, worst {max(ratios):.2f} "
        "(goal <= 2)"
    )


def tuning(x: np.ndarray, reps: int) -> None:
    print("\n(b) engine tuning, ms per call (rows per block x threads)")
    print(
        f"{'kernel':12} " + " ".join(f"{f'{b}r/{t}t':>8}" for b in (8, 16, 32, 64) for t in (1, 2))
    )
    for name in ("sharpen", "box-blur"):
        k = named_kernel(name)
        cells = []
        for b in (8, 16, 32, 64):
            for t in (1, 2):
                fn = lambda b=b, t=t, k=k: correlate_image(x, k, threads=t, block_rows=b)  # noqa: E731
                cells.append(median_ms(fn, reps))
        print(f"{name:12} " + " ".join(f"{c:8.1f}" for c in cells))


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall time and the child's peak RSS (bytes)."""
    script = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "dt = time.perf_counter() - t\n"
        "assert r.returncode == 0, r.stderr.decode()\n"
        "print(json.dumps([dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))\n"
    )
    import json

    out = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return tuple(json.loads(out.stdout))


def whole_command(x: np.ndarray, tmp: Path, reps: int) -> None:
    src = tmp / "big.png"
    Image.fromarray(x).save(src, compress_level=6)
    decoded = x.nbytes
    cnncli = [sys.executable, "-m", "cnncli"]  # this checkout (see REPO), not an older install
    convert = shutil.which("convert") or shutil.which("magick")
    print(
        f"\n(c) whole command on {src.name} ({x.shape[1]}x{x.shape[0]}, "
        f"{src.stat().st_size / 1e6:.1f} MB PNG), wall time median of {reps}"
    )
    rows = []
    if convert:
        out = tmp / "im.png"
        cmd = [convert, str(src), "-morphology", "Convolve", SHARPEN_IM, str(out)]
        runs = [run(cmd) for _ in range(reps)]
        im_t = statistics.median(r[0] for r in runs)
        im_size = out.stat().st_size
        rows.append(("imagemagick", im_t, im_size, max(r[1] for r in runs)))
    else:
        im_t = im_size = None
        print("  ImageMagick not installed (apt-get install imagemagick): peer skipped")
    for level in (0, 1, 3, 6):
        out = tmp / f"c{level}.png"
        cmd = [
            *cnncli,
            "filter",
            "--kernel",
            "sharpen",
            str(src),
            "-o",
            str(out),
            "--overwrite",
            "--compress",
            str(level),
        ]
        runs = [run(cmd) for _ in range(reps)]
        rows.append(
            (
                f"cnncli --compress {level}",
                statistics.median(r[0] for r in runs),
                out.stat().st_size,
                max(r[1] for r in runs),
            )
        )
    print(
        f"  {'command':22} {'wall s':>7} {'size MB':>8} {'time/IM':>8} {'size/IM':>8} "
        f"{'peak RSS/decoded':>17}"
    )
    for name, t, size, rss in rows:
        tr = f"{t / im_t:8.2f}" if im_t else f"{'-':>8}"
        sr = f"{size / im_size:8.2f}" if im_size else f"{'-':>8}"
        print(f"  {name:22} {t:7.2f} {size / 1e6:8.1f} {tr} {sr} {rss / decoded:17.2f}")
    if convert:
        a = np.asarray(Image.open(tmp / "im.png").convert("RGB")).astype(int)
        b = np.asarray(Image.open(tmp / "c1.png")).astype(int)
        print(
            f"  pixels: cnncli vs ImageMagick max difference {np.abs(a - b).max()} "
            f"(ImageMagick clamps at the border by 'edge'; interior equal: "
            f"{np.array_equal(a[1:-1, 1:-1], b[1:-1, 1:-1])})"
        )
    print(
        f"  decoded image {decoded / 1e6:.0f} MB; python interpreter alone "
        f"{run([sys.executable, '-c', 'pass'])[1] / 1e6:.0f} MB RSS"
    )
    phases(src, tmp)
    if convert:
        row_filters(np.asarray(Image.open(tmp / "c1.png")), im_size, tmp)


def row_filters(x: np.ndarray, im_size: int, tmp: Path) -> None:
    """The PNG row filter (cnncli.filters.png) on the sharpened image, in-process: Sub on
    every row (the encoder before issue 18) against the per-row adaptive choice."""
    from cnncli.filters.png import write_png

    print("  row filter at --compress 1, encode only (median of 3):")
    for row_filter in ("sub", "up", "average", "adaptive"):
        out = tmp / f"rf-{row_filter}.png"
        t = median_ms(lambda rf=row_filter, out=out: write_png(out, x, "RGB", 1, rf), 3)
        size = out.stat().st_size
        print(
            f"    {row_filter:9} {t / 1000:6.2f} s {size / 1e6:8.2f} MB  "
            f"size/ImageMagick {size / im_size:.4f}"
        )


PHASES = """
import time
t0 = time.perf_counter()
from pathlib import Path
import cnncli.cli.main
from cnncli.filters import named_kernel
from cnncli.filters.files import filter_arrays, merge_channels, open_input, save_arrays
from cnncli.filters.files import save_image, split_channels
t1 = time.perf_counter()
img = open_input(Path({src!r}))
colour, alpha, mode, _ = split_channels(img)
t2 = time.perf_counter()
out, alpha, _ = filter_arrays(colour, alpha, named_kernel("sharpen"))
t3 = time.perf_counter()
times = [t1 - t0, t2 - t1, t3 - t2]
for level in (1, 6):
    t = time.perf_counter()
    save_arrays(out, alpha, mode, Path({out!r}), compress=level)
    times.append(time.perf_counter() - t)
pil = merge_channels(out, alpha, mode)
for level in (1, 6):
    t = time.perf_counter()
    save_image(pil, Path({out!r}), compress=level)
    times.append(time.perf_counter() - t)
print(" ".join(f"{{v:.3f}}" for v in times))
"""


def phases(src: Path, tmp: Path) -> None:
    """Where the command's time goes, measured in a fresh process."""
    code = PHASES.format(src=str(src), out=str(tmp / "phase.png"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imp, dec, filt, enc1, enc6, pil1, pil6 = (float(v) for v in out.stdout.split())
    print(
        f"  phases (s): import {imp:.3f}, decode {dec:.3f}, filter {filt:.3f}, encode "
        f"level 1 {enc1:.3f} / level 6 {enc6:.3f} (Pillow's encoder: {pil1:.3f} / {pil6:.3f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 3 MP image and fewer calls")
    args = ap.parse_args()
    h, w = (1500, 2000) if args.quick else (3000, 4000)
    reps = 5 if args.quick else 15
    print(
        f"bench_filters: {'quick' if args.quick else 'full'} run, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)"
    )
    x = photo(h, w)
    engines(x, reps)
    tuning(x, max(3, reps // 3))
    with tempfile.TemporaryDirectory() as tmp:
        whole_command(x, Path(tmp), 3 if args.quick else 5)


if __name__ == "__main__":
    main()
