"""Benchmark `cnncli evaluate` and `cnncli predict` (issue 4 §2, §3) against hand-written Keras.

(1) evaluate: the `mnist` architecture (with Rescaling, as cnncli trains it) on a test split
    of 28x28 grayscale images. cnncli's evaluate (cnncli.inference.evaluate.evaluate: reads
    the dataset's TFRecord shards through the training pipeline, one forward pass giving
    loss, accuracy, per-class metrics, confusion matrix and the misclassified rows) against
    the course's way on the same images preloaded as NumPy arrays: `model.evaluate` (loss
    and accuracy only), and `model.evaluate` + `model.predict` (what per-class metrics and
    an error list need). Images per second and the ratio; the two losses are printed too.
(2) predict: a folder of PNG files. cnncli's predict (cnncli.images.load_image per file,
    batches through the model, class names and top-k) against a hand-written loop
    (Pillow open + np.asarray, np.stack, `model.predict`). Images per second and the ratio.

The model is loaded once outside the timings (both sides use the same object). The sides
alternate in rounds and the median is reported, as the machine is shared and noisy.

(3) predict, whole command (issue 18 §3): the 1,797 digits of sklearn's load_digits as
    28x28 grayscale PNGs, `cnncli predict MODEL DIR` with stdout piped (plain lines) and with
    `--csv`, against a hand-written script (keras.models.load_model, a Pillow loop per
    image, `model.predict`, one printed line per image), each a fresh process, interleaved;
    images per second of the whole process and the ratio (goal >= 0.95x).

    python bench/bench_evaluate.py [--quick] [--only-command]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

HAND_WRITTEN = """
import sys
from pathlib import Path
import numpy as np
import keras
from PIL import Image
model = keras.models.load_model(sys.argv[1], compile=False)
files = sorted(Path(sys.argv[2]).rglob("*.png"))
x = np.stack([np.asarray(Image.open(f), dtype=np.float32)[:, :, None] for f in files])
probs = model.predict(x, batch_size=32, verbose=0)
for f, p in zip(files, probs):
    print(f"{f}\t{int(p.argmax())}\t{float(p.max()):.6f}")
"""

CLASSES = 10
BATCH = 32


def make_images(root: Path, n: int, side: int = 28, seed: int = 0) -> Path:
    """n grayscale PNGs in class folders: a class-dependent bright band plus noise."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        c = i % CLASSES
        folder = root / f"digit{c}"
        folder.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 100, (side, side), dtype=np.uint8)
        arr[(c * side) // CLASSES : ((c + 1) * side) // CLASSES] += 120
        Image.fromarray(arr, "L").save(folder / f"img{i:05d}.png", compress_level=1)
    return root


def make_model(path: Path, info):
    import keras

    from cnncli.models.io import save_model
    from cnncli.models.presets import build_architecture

    keras.utils.set_random_seed(0)
    arch = build_architecture("mnist", input_shape=info.image.shape, num_classes=CLASSES)
    inputs = keras.Input(info.image.shape)
    model = keras.Model(inputs, arch(keras.layers.Rescaling(1 / 255)(inputs)))
    save_model(
        model,
        path,
        {"class_names": info.class_names, "image": info.image.to_dict(), "pixel_scale": 1.0},
    )
    return path


def make_digits(root: Path) -> Path:
    """The 1,797 8x8 digits of sklearn's bundled load_digits as 28x28 grayscale PNGs in
    class folders (resized as MNIST-sized inputs)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray((img * (255 / 16)).astype(np.uint8), "L")
        small.resize((28, 28), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
    return root


def whole_command(tmp: Path, rounds: int) -> None:
    """(3): each side a fresh process, stdout to a pipe, interleaved rounds, median."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from cnncli.images import ImageSpec

    folder = make_digits(tmp / "digits")
    n = sum(1 for _ in folder.rglob("*.png"))
    spec = ImageSpec(height=28, width=28, color="grayscale", fit="stretch")
    names = [f"digit{i}" for i in range(CLASSES)]
    info = SimpleNamespace(image=spec, class_names=names)
    model_path = make_model(tmp / "digits.keras", info)
    cnncli = [sys.executable, "-m", "cnncli", "predict", str(model_path), str(folder)]
    sides = {
        "cnncli predict (piped: plain lines)": cnncli,
        "cnncli predict --csv": [*cnncli, "--csv"],
        "hand-written Pillow + model.predict": [
            sys.executable,
            "-c",
            HAND_WRITTEN,
            str(model_path),
            str(folder),
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    outputs = {}
    for r in range(rounds + 1):  # round 0 warms the page cache and is not counted
        for name, cmd in sides.items():
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if out.returncode:
                raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
            outputs[name] = out.stdout
            if r:
                times[name].append(dt)
    hand = statistics.median(times["hand-written Pillow + model.predict"])
    print(
        f"\n(3) predict, whole command, {n} digit PNGs (28x28 grayscale), mnist architecture,"
        f" median of {rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}"
    )
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"  {name:38} {n / t:8.0f} images/s ({t:.2f} s)  ratio {hand / t:.2f}")
    plain = outputs["cnncli predict (piped: plain lines)"].splitlines()
    ours = [line.split("\t")[1] for line in plain[1:]]
    theirs = [
        f"digit{line.split(chr(9))[1]}"
        for line in outputs["hand-written Pillow + model.predict"].splitlines()
    ]
    same = sum(a == b for a, b in zip(ours, theirs, strict=False))
    print(f"  rows {len(ours)} / {len(theirs)}; same class in {same}")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and rounds")
    ap.add_argument("--images", type=int, help="test images (default 4000, quick 600)")
    ap.add_argument("--rounds", type=int, help="alternating rounds (default 3, quick 2)")
    ap.add_argument("--only-command", action="store_true", help="only (3), the whole command")
    args = ap.parse_args()
    n_test = args.images or (600 if args.quick else 4000)
    rounds = args.rounds or (2 if args.quick else 3)
    if args.only_command:
        with tempfile.TemporaryDirectory(prefix="bench_evaluate-") as tmp:
            whole_command(Path(tmp), rounds)
        return

    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import iter_records, open_dataset
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.model import open_model
    from cnncli.inference.predict import predict

    with tempfile.TemporaryDirectory(prefix="bench_evaluate-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_images(tmp / "images", 2 * n_test)
        build_dataset(tmp / "images", tmp / "ds", val=0.0, test=0.5, seed=0)
        info = open_dataset(tmp / "ds")
        model_info = open_model(make_model(tmp / "model.keras", info))
        model = model_info.model
        recs = list(iter_records(info, "test"))
        x = np.stack([r.image for r in recs]).astype("float32")
        y = np.array([r.label for r in recs])
        n = len(y)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        print(
            f"setup: {n} test images of {info.image.describe()}, mnist architecture, "
            f"batch {BATCH} ({time.perf_counter() - t0:.1f} s)"
        )

        def ours():
            return evaluate(model_info, info.path, split="test", batch_size=BATCH)

        def keras_eval():
            return model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)

        def keras_eval_predict():
            out = keras_eval()
            model.predict(x, batch_size=BATCH, verbose=0)
            return out

        # warm-up: traces every function once on both sides
        ours(), keras_eval_predict()
        t_ours, t_keval, t_kboth = [], [], []
        for _ in range(rounds):
            dt, r = timed(ours)
            t_ours.append(dt)
            dt, k = timed(keras_eval)
            t_keval.append(dt)
            dt, _ = timed(keras_eval_predict)
            t_kboth.append(dt)
        a, b, c = (statistics.median(t) for t in (t_ours, t_keval, t_kboth))
        print("\n(1) evaluate, images/s (median of rounds)")
        print(f"  cnncli evaluate (shards -> tf.data, all metrics): {n / a:10.0f}  ({a:.3f} s)")
        print(f"  Keras model.evaluate (NumPy, loss+accuracy):     {n / b:10.0f}  ({b:.3f} s)")
        print(f"  Keras evaluate + predict (NumPy):                {n / c:10.0f}  ({c:.3f} s)")
        print(f"  ratio cnncli / model.evaluate:           {b / a:.2f}")
        print(f"  ratio cnncli / evaluate+predict:         {c / a:.2f}")
        print(
            f"  loss: cnncli {r.loss:.6f}  Keras {k['loss']:.6f}   "
            f"accuracy: cnncli {r.accuracy:.4f}  Keras {k['accuracy']:.4f}"
        )

        # (2) predict on a folder of files
        n_pred = min(n, 500 if args.quick else 2000)
        folder = tmp / "predict"
        folder.mkdir()
        for i, rec in enumerate(recs[:n_pred]):
            Image.fromarray(rec.image[:, :, 0], "L").save(folder / f"{i:05d}.png", compress_level=1)
        files = sorted(folder.glob("*.png"))

        def ours_predict():
            return predict(model_info, [folder], top_k=1, batch_size=BATCH)

        def hand_predict():
            arr = np.stack([np.asarray(Image.open(f), dtype=np.float32)[:, :, None] for f in files])
            probs = model.predict(arr, batch_size=BATCH, verbose=0)
            return probs.argmax(axis=1)

        ours_predict(), hand_predict()
        t_p, t_h = [], []
        for _ in range(rounds):
            dt, pr = timed(ours_predict)
            t_p.append(dt)
            dt, hp = timed(hand_predict)
            t_h.append(dt)
        a, b = statistics.median(t_p), statistics.median(t_h)
        same = sum(row.class_index == int(h) for row, h in zip(pr.rows, hp, strict=True))
        print(f"\n(2) predict on {n_pred} PNG files, images/s (median of rounds)")
        print(f"  cnncli predict (load_image, batches, top-k): {n_pred / a:10.0f}  ({a:.3f} s)")
        print(f"  hand-written Pillow + model.predict:         {n_pred / b:10.0f}  ({b:.3f} s)")
        print(f"  ratio cnncli / hand-written:         {b / a:.2f}")
        print(f"  same predicted class: {same}/{n_pred}")
        whole_command(tmp, rounds)


if __name__ == "__main__":
    main()
