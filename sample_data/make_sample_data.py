"""Make cnncli's bundled sample data: synthetic façade textures and simple shapes.

    python sample_data/make_sample_data.py [OUT_DIR]      # default: this folder

Everything comes from one seeded NumPy generator (SEED), so the same NumPy and Pillow make
byte-identical files. NumPy and Pillow only (pandas writes labels.csv, as the course does).

facade/  40 RGBA PNGs, 128x128, named like the course's files (BV + 19 digits), in two
         texture classes: 대리석 (marble, y=1: light, smooth, dark veins) and 벽돌 (brick, y=0:
         reddish blocks in a regular mortar grid), with random colour, scale, rotation,
         lighting and noise. The wall is a cut-out: a random four-sided region is opaque (with
         a soft edge) and the rest is fully transparent with black RGB, as in the course's
         PNGs, so the alpha channel says where the wall is. labels.csv is the course's table:
         `,image,type,y` with an unnamed pandas index column, UTF-8. measures.csv holds two
         values measured on each image (regression targets): `brightness`, the mean of R, G
         and B over the opaque wall (0..255), and `wall`, the fraction of the image the wall
         covers (alpha of 128 or more).
shapes/  one folder per class (circle, square, triangle, star), 20 RGB PNGs of 32x32 each:
         a bright shape of random hue on a dark background of random hue, with random
         position, size and a tilt of up to 17 degrees from upright.
multishapes/  100 RGB PNGs of 48x48 (a multi-label set): each holds none, one, two or three
         of circle, square and triangle (never one twice), each in its own quarter of the
         image; labels.csv names them two ways: `tags` ("circle;triangle", empty for none)
         and one 0/1 column per shape.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SEED = 20240501
FACADE_SIZE = 128
FACADE_PER_CLASS = 20
FACADE_CLASSES = {"벽돌": 0, "대리석": 1}  # brick y=0, marble y=1, as in the course
SHAPES = ("circle", "square", "triangle", "star")
SHAPE_SIZE = 32
SHAPES_PER_CLASS = 20
MULTI_SHAPES = ("circle", "square", "triangle")
MULTI_SIZE = 48
MULTI_IMAGES = 100
MULTI_HOW_MANY = (0.05, 0.35, 0.4, 0.2)  # chance of 0, 1, 2 or 3 shapes in an image
SUPERSAMPLE = 4  # shapes and masks are drawn 4x larger and reduced, for smooth edges


# --- façade textures -----------------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, size: int, grid: int) -> np.ndarray:
    """A smooth random field in 0..1: a grid x grid random array enlarged bicubically."""
    small = rng.random((grid, grid)).astype(np.float32)
    big = Image.fromarray(small, "F").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float64)


def lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear light gradient in a random direction, about 0.85..1.15."""
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.05, 0.15)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    return 1.0 + strength * 2 * (xx * np.cos(angle) + yy * np.sin(angle))


def marble(rng: np.random.Generator, size: int) -> np.ndarray:
    """Light stone with thin, winding dark veins: float RGB 0..255."""
    bases = [(238, 233, 222), (242, 242, 240), (218, 218, 214), (234, 222, 214), (226, 230, 222)]
    base = np.array(bases[rng.integers(len(bases))], np.float64) + rng.normal(0, 4, 3)
    vein = base * rng.uniform(0.35, 0.65) + rng.normal(0, 6, 3)
    turbulence = (
        smooth_noise(rng, size, 4) + 0.5 * smooth_noise(rng, size, 8)
    ) + 0.25 * smooth_noise(rng, size, 16)
    angle = rng.uniform(0, np.pi)
    frequency = rng.uniform(2.0, 5.0) * 2 * np.pi / size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * frequency + turbulence * rng.uniform(4, 8)
    width = rng.uniform(0.08, 0.18)
    veins = np.exp(-(np.sin(phase) ** 2) / (2 * width**2))
    cloud = smooth_noise(rng, size, 6) - 0.5  # soft clouding of the stone
    rgb = base + (vein - base) * veins[..., None] + 14 * cloud[..., None]
    return rgb


def brick(rng: np.random.Generator, size: int) -> np.ndarray:
    """Reddish blocks in a running-bond mortar grid, slightly rotated: float RGB 0..255."""
    big = int(size * 1.5)  # drawn larger, rotated, then the centre is cut out
    brick_h = rng.uniform(10, 18)
    brick_w = brick_h * rng.uniform(1.8, 2.6)
    mortar = rng.uniform(1.5, 3.0)
    base = np.array([rng.uniform(140, 195), rng.uniform(45, 85), rng.uniform(35, 65)])
    mortar_rgb = np.array([rng.uniform(175, 215)] * 3) + rng.normal(0, 4, 3)

    yy, xx = np.mgrid[0:big, 0:big].astype(np.float64)
    row = np.floor(yy / brick_h)
    shifted = xx + (row % 2) * brick_w / 2  # every other row is offset by half a brick
    col = np.floor(shifted / brick_w)
    in_mortar = (yy - row * brick_h < mortar) | (shifted - col * brick_w < mortar)

    n_rows, n_cols = int(big / brick_h) + 2, int(big / brick_w) + 3
    tint = rng.normal(0, 14, (n_rows, n_cols, 1)) + rng.normal(0, 5, (n_rows, n_cols, 3))
    brick_rgb = base + tint[row.astype(int), col.astype(int)]
    grain = 10 * (smooth_noise(rng, big, 24) - 0.5)[..., None]
    rgb = np.where(in_mortar[..., None], mortar_rgb, brick_rgb + grain)

    angle = rng.uniform(-12, 12)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR)
    offset = (big - size) // 2
    img = img.crop((offset, offset, offset + size, offset + size))
    return np.asarray(img, dtype=np.float64)


def wall_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Alpha 0..255: a random four-sided cut-out with a soft edge, covering most of the image."""
    s = size * SUPERSAMPLE
    inset = lambda: rng.uniform(0.0, 0.22) * s  # noqa: E731
    corners = [
        (inset(), inset()),
        (s - inset(), inset()),
        (s - inset(), s - inset()),
        (inset(), s - inset()),
    ]
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).polygon(corners, fill=255)
    mask = mask.resize((size, size), Image.Resampling.BOX)
    return np.asarray(mask, dtype=np.uint8)


def facade_image(rng: np.random.Generator, kind: str, size: int = FACADE_SIZE) -> Image.Image:
    rgb = marble(rng, size) if kind == "대리석" else brick(rng, size)
    rgb = rgb * lighting(rng, size)[..., None] + rng.normal(0, 2.0, rgb.shape)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    alpha = wall_mask(rng, size)
    rgb[alpha == 0] = 0  # nothing behind a fully transparent pixel, as in a cut-out
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def measure(img: Image.Image) -> tuple[float, float]:
    """(brightness: mean of R, G, B over the opaque wall, wall: fraction of the image with
    alpha 128 or more), rounded as measures.csv stores them."""
    arr = np.asarray(img, dtype=np.float64)
    wall = arr[..., 3] == 255
    brightness = arr[wall][:, :3].mean() if wall.any() else 0.0
    return round(float(brightness), 1), round(float((arr[..., 3] >= 128).mean()), 3)


def make_facade(out: Path, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    out.mkdir(parents=True, exist_ok=True)
    n = FACADE_PER_CLASS * len(FACADE_CLASSES)
    numbers = np.sort(rng.choice(np.arange(1, 10000), size=n, replace=False))
    kinds = np.array([k for k in FACADE_CLASSES for _ in range(FACADE_PER_CLASS)])
    kinds = kinds[rng.permutation(n)]  # classes interleaved in file-name order
    rows = []
    for number, kind in zip(numbers, kinds, strict=True):
        name = f"BV117101040010009{number:04d}.png"  # BV + 19 digits, like BV1171010400100090001
        img = facade_image(rng, str(kind))
        img.save(out / name, format="PNG", optimize=False)
        rows.append((name, str(kind), FACADE_CLASSES[str(kind)], *measure(img)))
    return rows


def write_labels(path: Path, rows: list[tuple]) -> None:
    import pandas as pd

    table = pd.DataFrame([r[:3] for r in rows], columns=["image", "type", "y"])
    table.to_csv(path, encoding="utf-8", lineterminator="\n")  # ",image,type,y" header


def write_measures(path: Path, rows: list[tuple]) -> None:
    lines = ["image,brightness,wall"] + [f"{r[0]},{r[3]:.1f},{r[4]:.3f}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- shapes ----------------------------------------------------------------------------------


def _colours(rng: np.random.Generator) -> tuple[tuple, tuple]:
    """A dark background and a bright shape, each of a random hue."""
    bg = tuple(int(v) for v in rng.integers(0, 90, 3))
    fg = tuple(int(v) for v in rng.integers(130, 256, 3))
    return bg, fg


def _polygon(cx: float, cy: float, r: float, n: int, angle: float, inner: float = 1.0) -> list:
    points = []
    steps = n * (2 if inner != 1.0 else 1)
    for i in range(steps):
        radius = r if i % 2 == 0 or inner == 1.0 else r * inner
        a = angle + 2 * np.pi * i / steps
        points.append((cx + radius * np.cos(a), cy + radius * np.sin(a)))
    return points


def shape_image(rng: np.random.Generator, kind: str, size: int = SHAPE_SIZE) -> Image.Image:
    """One shape, upright give or take 17 degrees, anywhere that it fits whole."""
    s = size * SUPERSAMPLE
    bg, fg = _colours(rng)
    r = rng.uniform(0.25, 0.42) * s
    cx, cy = rng.uniform(r, s - r), rng.uniform(r, s - r)
    tilt = rng.uniform(-0.3, 0.3)  # radians
    img = Image.new("RGB", (s, s), bg)
    draw_shape(ImageDraw.Draw(img), kind, cx, cy, r, tilt, fg)
    return img.resize((size, size), Image.Resampling.BOX)


def draw_shape(draw, kind: str, cx: float, cy: float, r: float, tilt: float, fg) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r, 4, np.pi / 4 + tilt), fill=fg)
    elif kind == "triangle":  # a point at the top
        draw.polygon(_polygon(cx, cy, r, 3, -np.pi / 2 + tilt), fill=fg)
    elif kind == "star":  # five points, one at the top
        draw.polygon(_polygon(cx, cy, r, 5, -np.pi / 2 + tilt, inner=0.42), fill=fg)
    else:
        raise ValueError(kind)


def make_shapes(out: Path, rng: np.random.Generator) -> None:
    for kind in SHAPES:
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(SHAPES_PER_CLASS):
            shape_image(rng, kind).save(folder / f"{kind}_{i:02d}.png", format="PNG")


def multi_image(rng: np.random.Generator, kinds: list[str], size: int = MULTI_SIZE):
    """Each shape of `kinds` in its own quarter of a dark image, bright, of its own hue."""
    s = size * SUPERSAMPLE
    half = s // 2
    bg = tuple(int(v) for v in rng.integers(0, 90, 3))
    img = Image.new("RGB", (s, s), bg)
    draw = ImageDraw.Draw(img)
    for kind, cell in zip(kinds, rng.permutation(4)[: len(kinds)], strict=False):
        fg = tuple(int(v) for v in rng.integers(130, 256, 3))
        r = rng.uniform(0.3, 0.44) * half
        cx = (cell % 2) * half + rng.uniform(r, half - r)
        cy = (cell // 2) * half + rng.uniform(r, half - r)
        draw_shape(draw, kind, cx, cy, r, rng.uniform(-0.3, 0.3), fg)
    return img.resize((size, size), Image.Resampling.BOX)


def make_multishapes(out: Path, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["image,tags," + ",".join(MULTI_SHAPES)]
    for i in range(MULTI_IMAGES):
        k = int(rng.choice(len(MULTI_HOW_MANY), p=MULTI_HOW_MANY))
        kinds = sorted(rng.choice(MULTI_SHAPES, size=k, replace=False).tolist())
        name = f"multi_{i:03d}.png"
        multi_image(rng, kinds).save(out / name, format="PNG")
        flags = ",".join("1" if s in kinds else "0" for s in MULTI_SHAPES)
        lines.append(f"{name},{';'.join(kinds)},{flags}")
    (out / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_sample_data(out: Path) -> None:
    """Write facade/ (with labels.csv and measures.csv), shapes/ and multishapes/ under `out`."""
    rng = np.random.default_rng(SEED)
    rows = make_facade(out / "facade", rng)
    write_labels(out / "facade" / "labels.csv", rows)
    write_measures(out / "facade" / "measures.csv", rows)
    make_shapes(out / "shapes", rng)
    make_multishapes(out / "multishapes", rng)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    make_sample_data(target)
    print(f"wrote sample data under {target}")
