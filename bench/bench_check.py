"""Benchmark `cnncli dataset check` (issue 24) on a set with planted faults, against the anchors.

The set: sklearn's load_digits (1,797 8x8 images, bundled with scikit-learn), written as
32x32 grayscale PNGs (bilinear upscale), with faults whose truth is known:
- 2% of the labels flipped to another class (36 images);
- near-duplicate copies of 40 images, each with its true label: re-encoded as JPEG, resized
  (saved at 26x26 or 40x40, the build resizes them back to 32x32), shifted by 1-2 pixels,
  brightened, or with Gaussian noise; half of them in another split than their original;
- 6 exact copies (the same file bytes) with another label, half across splits.
The splits come from a column (80% train, 20% test), so the planted leaks are known.

It builds the dataset with cnncli, runs `cnncli dataset check --json` (a fresh process,
timed), and prints beside it the anchors measured on the same images:
- label issues: cleanlab's find_label_issues on 5-fold out-of-fold probabilities of a
  scikit-learn SVC (probability=True) on the raw pixels; planted flips among the top 2x
  (72) ranked, for each;
- duplicates: imagehash's pHash, all pairs within a Hamming distance, at the smallest
  distance that finds as many planted pairs as cnncli (or every pair when it cannot), and
  the other pairs it flags then; cnncli's planted pairs found and other pairs flagged;
- leaks and conflicts: planted ones marked by cnncli;
- the façade set (make_facade): the 40 façade photos of sample_data (128x128 RGB), 160
  distinct pictures of the same kinds (their quarters) and a near copy of each photo of
  each of PHOTO_KINDS (re-encoded, resized, brighter, darker, noisy, shifted 3 and 5 px,
  cropped 3 px each side or 6 px at a corner), built and checked by the whole command
  (timed): copies grouped with their photo, by kind, and the other pairs flagged.
With --scale N, only the whole command on N/4 and N synthetic 32x32 images (each a random
smooth picture): its time and peak memory (/usr/bin/time -v), flat per image.

    python bench/bench_check.py [--quick] [--keep DIR]
    python bench/bench_check.py --scale 20000
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
FLIP_FRACTION = 0.02
NEAR_COPIES = 40
EXACT_CONFLICTS = 6
TRANSFORMS = ("jpeg", "resize_down", "shift", "brighten", "noise", "resize_up", "shift2", "darken")


def digit_image(pixels8: np.ndarray) -> Image.Image:
    """An 8x8 digit (0..16) as a 32x32 grayscale picture (bilinear upscale)."""
    small = Image.fromarray(np.uint8(np.clip(pixels8 * 16, 0, 255)), "L")
    return small.resize((SIZE, SIZE), Image.BILINEAR)


def transformed(img: Image.Image, kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """(file bytes, extension) of a near-duplicate copy of `img`."""
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=70)
        return buf.getvalue(), ".jpg"
    if kind.startswith("resize"):
        side = 26 if kind == "resize_down" else 40
        out = img.resize((side, side), Image.BICUBIC)
    elif kind.startswith("shift"):
        dx, dy = (1, 2) if kind == "shift" else (-2, 1)
        arr = np.asarray(img)
        arr = np.roll(np.roll(arr, dy, axis=0), dx, axis=1)
        out = Image.fromarray(arr)
    elif kind in ("brighten", "darken"):
        out = ImageEnhance.Brightness(img).enhance(1.25 if kind == "brighten" else 0.8)
    elif kind == "noise":
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (SIZE, SIZE))
        out = Image.fromarray(np.uint8(np.clip(arr, 0, 255)))
    else:
        raise ValueError(kind)
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue(), ".png"


def make_planted(
    folder: Path,
    seed: int = 0,
    n: int | None = None,
    flip: float = FLIP_FRACTION,
    near: int = NEAR_COPIES,
    exact: int = EXACT_CONFLICTS,
) -> dict:
    """Write the planted-fault set into `folder` (images/ and labels.csv); return its truth:
    {"flips": [names], "near_pairs": [(a, b)], "exact_pairs": [(a, b)], "leaks": [(a, b)],
    "conflicts": [(a, b)], "names": [...]}."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images, digits.target
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))[: n or len(y)]
    x, y = x[order], y[order]
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = [f"d{i:05d}.png" for i in range(len(y))]
    split = np.where(rng.random(len(y)) < 0.2, "test", "train")
    for name, pixels in zip(names, x, strict=True):
        digit_image(pixels).save(images / name)
    label = [f"n{v}" for v in y]
    k = len(y)
    picks = rng.permutation(k)
    n_flip = int(round(flip * k))
    flips = [int(i) for i in picks[:n_flip]]
    near_src = [int(i) for i in picks[n_flip : n_flip + near]]
    exact_src = [int(i) for i in picks[n_flip + near : n_flip + near + exact]]
    for i in flips:
        label[i] = f"n{(y[i] + rng.integers(1, 10)) % 10}"
    rows = [(names[i], label[i], split[i]) for i in range(k)]
    truth = {
        "flips": [names[i] for i in flips],
        "near_pairs": [],
        "exact_pairs": [],
        "leaks": [],
        "conflicts": [],
    }
    other = {"train": "test", "test": "train"}
    for j, i in enumerate(near_src):
        data, ext = transformed(digit_image(x[i]), TRANSFORMS[j % len(TRANSFORMS)], rng)
        name = f"near{j:03d}{ext}"
        (images / name).write_bytes(data)
        s = other[split[i]] if j % 2 == 0 else split[i]
        rows.append((name, label[i], s))
        truth["near_pairs"].append((names[i], name))
        if s != split[i]:
            truth["leaks"].append((names[i], name))
    for j, i in enumerate(exact_src):
        name = f"copy{j:03d}.png"
        (images / name).write_bytes((images / names[i]).read_bytes())
        s = other[split[i]] if j % 2 == 0 else split[i]
        rows.append((name, f"n{(y[i] + 1 + j % 9) % 10}", s))
        truth["exact_pairs"].append((names[i], name))
        truth["conflicts"].append((names[i], name))
        if s != split[i]:
            truth["leaks"].append((names[i], name))
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "split"])
        w.writerows(rows)
    truth["names"] = [r[0] for r in rows]
    return truth


def cnncli(*args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.run(
        [sys.executable, "-m", "cnncli", *args], capture_output=True, text=True, env=env, check=True
    )


def pairs_of(groups) -> set[frozenset]:
    out = set()
    for g in groups:
        imgs = g["images"]
        out |= {frozenset((a, b)) for i, a in enumerate(imgs) for b in imgs[i + 1 :]}
    return out


def anchor_svc(
    images: dict[str, np.ndarray], labels: dict[str, str], top: int
) -> tuple[list[str], list[str]]:
    """cleanlab on 5-fold out-of-fold probabilities of SVC on raw pixels: the names ranked
    by find_label_issues (its list), and every image ranked by its label quality score."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.model_selection import cross_val_predict
    from sklearn.svm import SVC

    names = sorted(images)
    x = np.stack([images[n].reshape(-1) for n in names]).astype(np.float32) / 255
    classes = sorted(set(labels.values()))
    y = np.array([classes.index(labels[n]) for n in names])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # probability=True: the anchor as named
        probs = cross_val_predict(
            SVC(probability=True, random_state=0), x, y, cv=5, method="predict_proba"
        )
    ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    return [names[i] for i in ranked][:top], [names[i] for i in np.argsort(quality)][:top]


def anchor_phash(files: dict[str, Path], planted: set[frozenset], want: int):
    """pHash of every image; the smallest Hamming distance whose pairs hold `want` planted
    pairs (or the distance where it holds the most): (distance, planted found, others)."""
    import imagehash

    names = sorted(files)
    bits = np.stack([imagehash.phash(Image.open(files[n])).hash.reshape(-1) for n in names])
    dist = (bits[:, None, :] != bits[None, :, :]).sum(-1)  # 1,800^2: fine for the anchor
    iu = np.triu_indices(len(names), 1)
    d = dist[iu]
    is_planted = np.array(
        [frozenset((names[a], names[b])) in planted for a, b in zip(*iu, strict=True)]
    )
    best, table = None, []
    for t in range(0, 33):
        found = int((is_planted & (d <= t)).sum())
        others = int((~is_planted & (d <= t)).sum())
        table.append((t, found, others))
        if best is None and found >= want:
            best = (t, found, others)
    return best or table[-1], table


PHOTO_KINDS = (
    "jpeg q60",
    "half size",
    "brightness x1.25",
    "brightness x0.8",
    "noise 6",
    "shift 3 px",
    "shift 5 px",
    "crop 3 px",
    "crop 6 px corner",
)


def photo_variant(img: Image.Image, kind: str) -> Image.Image:
    """A near copy of a photo: re-encoded, resized, brighter or darker, noisy, shifted
    (edge repeated; "5 px" both ways) or cropped and resized back."""
    w, h = img.size
    if kind == "jpeg q60":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=60)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "half size":
        return img.resize((w // 2, h // 2), Image.BICUBIC).resize((w, h), Image.BILINEAR)
    if kind.startswith("brightness"):
        return ImageEnhance.Brightness(img).enhance(float(kind.split("x")[1]))
    if kind == "noise 6":
        a = np.asarray(img, np.float32) + np.random.default_rng(0).normal(0, 6, (h, w, 3))
        return Image.fromarray(np.uint8(np.clip(a, 0, 255)))
    if kind.startswith("shift"):
        d = int(kind.split()[1])
        a = np.asarray(img)
        a = np.concatenate([a[:, :d], a[:, :-d]], axis=1)
        if d >= 5:
            a = np.concatenate([a[:d], a[:-d]], axis=0)
        return Image.fromarray(a)
    if kind == "crop 3 px":
        return img.crop((3, 3, w - 3, h - 3)).resize((w, h), Image.BILINEAR)
    return img.crop((6, 6, w, h)).resize((w, h), Image.BILINEAR)


def make_facade(folder: Path, seed: int = 0) -> dict:
    """The 40 façade photos of sample_data (128x128), 160 distinct pictures of the same
    kinds (each photo's four quarters, resized to 128x128: other brick walls and marble
    slabs), and a near copy of every photo of each of PHOTO_KINDS, into `folder` (images/,
    labels.csv with a split column, 20% test); return {copy name: (photo name, kind)}."""
    import pandas as pd

    src = REPO / "sample_data" / "facade"
    kinds = dict(pd.read_csv(src / "labels.csv")[["image", "type"]].itertuples(index=False))
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, copies = [], {}
    for k, name in enumerate(sorted(kinds)):
        photo = Image.open(src / name).convert("RGB")
        split = "test" if rng.random() < 0.2 else "train"
        photo.save(images / name)
        rows.append((name, kinds[name], split))
        for q, (x, y) in enumerate(((0, 0), (64, 0), (0, 64), (64, 64))):
            quarter = photo.crop((x, y, x + 64, y + 64)).resize((128, 128), Image.BILINEAR)
            quarter.save(images / f"q{k:02d}_{q}.png")
            rows.append((f"q{k:02d}_{q}.png", kinds[name], split))
        for j, kind in enumerate(PHOTO_KINDS):
            copy = f"c{k:02d}_{j}.png"
            photo_variant(photo, kind).save(images / copy)
            rows.append((copy, kinds[name], split))
            copies[copy] = (name, kind)
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "split"])
        w.writerows(rows)
    return copies


def facade_check(root: Path) -> None:
    """Build the façade set, run the whole `cnncli dataset check` on it (timed) and print
    the copies grouped with their photo, by kind, and the other pairs flagged."""
    copies = make_facade(root)
    result, wall, cpu = build_and_check(root, "128x128", "rgb")
    photo_of = {c: p for c, (p, _) in copies.items()}
    found = {kind: 0 for kind in PHOTO_KINDS}
    other = 0
    for g in result["duplicates"]:
        imgs = g["images"]
        for copy in imgs:
            if copy in copies and copies[copy][0] in imgs:
                found[copies[copy][1]] += 1
        for i, a in enumerate(imgs):  # pairs of pictures not from one photo
            for b in imgs[i + 1 :]:
                if photo_of.get(a, a) != photo_of.get(b, b):
                    other += 1
    total = sum(found.values())
    n = len(copies) // len(PHOTO_KINDS)
    print(
        f"façade set: 40 photos + 160 distinct quarters + {len(copies)} near copies "
        f"({40 + 160 + len(copies)} images, 128x128 RGB) in {root}"
    )
    print(
        "  near copies grouped with their photo: "
        + "; ".join(f"{k} {f}/{n}" for k, f in found.items())
        + f"; all {total}/{len(copies)} ({total / len(copies):.0%}); other pairs flagged: {other}"
    )
    print(f"  command wall time {wall:.1f} s (CPU {cpu:.1f} s), load {os.getloadavg()[0]:.1f}")


def build_and_check(root: Path, size: str, color: str) -> tuple[dict, float, float]:
    """`cnncli dataset build` of root/images with root/labels.csv, then the whole
    `cnncli dataset check --json` in a fresh process: (its JSON, wall s, CPU s)."""
    ds = build(root, size, color)
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = cnncli("dataset", "check", str(ds), "--json", "--overwrite")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(out.stdout), wall, cpu


def build(root: Path, size: str, color: str) -> Path:
    """`cnncli dataset build` of root/images with root/labels.csv (its split column) into
    root/ds; return that."""
    ds = root / "ds"
    cnncli(
        "dataset",
        "build",
        str(root / "images"),
        "-o",
        str(ds),
        "--labels",
        str(root / "labels.csv"),
        "--split-col",
        "split",
        "--size",
        size,
        "--color",
        color,
        "--allow-leaks",
        "--overwrite",
    )
    return ds


def scale_check(root: Path, counts: list[int]) -> None:
    """The whole `cnncli dataset check` on `counts` synthetic 32x32 grey images (random
    smooth pictures, 10 classes): wall time and peak memory (/usr/bin/time -v's maximum
    resident set size), to show the memory grows with the images, not their pairs."""
    for n in counts:
        folder = root / f"scale{n}"
        images = folder / "images"
        images.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(n)
        rows = []
        for i in range(n):
            small = rng.integers(0, 256, (6, 6), dtype=np.uint8)
            pic = Image.fromarray(small).resize((SIZE, SIZE), Image.BICUBIC)
            pic.save(images / f"s{i:05d}.png")
            rows.append((f"s{i:05d}.png", f"c{i % 10}", "test" if (i // 10) % 5 == 0 else "train"))
        with open(folder / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "label", "split"])
            w.writerows(rows)
        build(folder, f"{SIZE}x{SIZE}", "grayscale")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "cnncli", "dataset", "check"]
        run = subprocess.run(
            [*cmd, str(folder / "ds"), "--json", "--overwrite"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        stats = dict(
            line.strip().rsplit(": ", 1) for line in run.stderr.splitlines() if ": " in line
        )
        rss = int(stats["Maximum resident set size (kbytes)"]) / 1024
        wall = stats["Elapsed (wall clock) time (h:mm:ss or m:ss)"]
        cpu = float(stats["User time (seconds)"]) + float(stats["System time (seconds)"])
        result = json.loads(run.stdout)
        print(
            f"whole command, {n:>6} images: {wall} wall (CPU {cpu:.0f} s), "
            f"peak RSS {rss:.0f} MiB, "
            f"load {os.getloadavg()[0]:.1f}; label model: {result['label_model']}; "
            f"duplicate groups: {len(result['duplicates'])}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="600 digits, no 20,000-image run")
    ap.add_argument("--keep", type=Path, help="write the set and dataset here")
    ap.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="only the whole command on N/4 and N synthetic images: time and peak memory",
    )
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_check_"))
    if args.scale:
        scale_check(root, [args.scale // 4, args.scale])
        return
    n = 600 if args.quick else None
    truth = make_planted(root, n=n)
    result, wall, cpu = build_and_check(root, f"{SIZE}x{SIZE}", "grayscale")
    flips = set(truth["flips"])
    top = 2 * len(flips)
    ranked = [r["image"] for r in result["label_issues"]][:top]
    found = len(flips & set(ranked))

    files = {p.name: p for p in (root / "images").iterdir()}
    labels = {}
    with open(root / "labels.csv") as f:
        for row in csv.DictReader(f):
            labels[row["image"]] = row["label"]
    pixels = {
        name: np.asarray(Image.open(p).convert("L").resize((SIZE, SIZE), Image.BILINEAR))
        for name, p in files.items()
    }
    t = time.perf_counter()
    svc_ranked, svc_all = anchor_svc(pixels, labels, top)
    svc_time = time.perf_counter() - t
    svc_found = len(flips & set(svc_ranked))
    svc_all_found = len(flips & set(svc_all))

    planted = {frozenset(p) for p in truth["near_pairs"] + truth["exact_pairs"]}
    flagged = pairs_of(result["duplicates"])
    dup_found = len(planted & flagged)
    dup_other = len(flagged - planted)
    (t_ph, ph_found, ph_other), ph_table = anchor_phash(files, planted, dup_found)

    def marked(kind: str, pairs) -> int:
        groups = [set(g["images"]) for g in result["duplicates"] if g[kind]]
        return sum(any({a, b} <= g for g in groups) for a, b in pairs)

    print(
        f"set: {len(truth['names'])} images ({len(flips)} flipped labels, "
        f"{len(truth['near_pairs'])} near copies, {len(truth['exact_pairs'])} exact copies "
        f"with another label; {len(truth['leaks'])} planted leaks) in {root}"
    )
    print(f"label model: {result['label_model']}")
    print(f"{'':38} {'cnncli check':>14} {'anchor':>22}")
    print(
        f"{'planted flips in top ' + str(top):38} {found:>6}/{len(flips)} "
        f"({found / len(flips):.0%}) {svc_found:>8}/{len(flips)} ({svc_found / len(flips):.0%}) "
        f"SVC raw + find_label_issues ({svc_time:.1f} s)"
    )
    print(
        f"{'':53} {svc_all_found:>8}/{len(flips)} ({svc_all_found / len(flips):.0%}) "
        "the same SVC, every image ranked by quality score"
    )
    print(
        f"{'planted duplicate pairs found':38} {dup_found:>6}/{len(planted)} "
        f"({dup_found / len(planted):.0%}) {ph_found:>8}/{len(planted)} "
        f"({ph_found / len(planted):.0%}) pHash <= {t_ph} bits"
    )
    print(f"{'other pairs flagged':38} {dup_other:>14} {ph_other:>22}")
    print(f"{'planted leaks marked':38} {marked('leak', truth['leaks']):>6}/{len(truth['leaks'])}")
    print(
        f"{'planted conflicts marked':38} {marked('conflict', truth['conflicts']):>6}/"
        f"{len(truth['conflicts'])}"
    )
    print(
        "pHash at other thresholds (bits: planted found, other pairs): "
        + "; ".join(f"<={t}: {f}, {o}" for t, f, o in ph_table if t in (4, 6, 8, 10, 12, 16))
    )
    print(f"{'command wall time (s)':38} {wall:>14.1f}   (CPU {cpu:.1f} s)")
    print(f"{'load average (1 min) after the command':38} {os.getloadavg()[0]:>14.1f}")
    facade_check(root / "facade")


if __name__ == "__main__":
    main()
