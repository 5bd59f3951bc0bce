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

    python bench/bench_evaluate.py [--quick]
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
        model, path,
        {"class_names": info.class_names, "image": info.image.to_dict(), "pixel_scale": 1.0},
    )  # fmt: skip
    return path


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and rounds")
    ap.add_argument("--images", type=int, help="test images (default 4000, quick 600)")
    ap.add_argument("--rounds", type=int, help="alternating rounds (default 3, quick 2)")
    args = ap.parse_args()
    n_test = args.images or (600 if args.quick else 4000)
    rounds = args.rounds or (2 if args.quick else 3)

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
        print(f"setup: {n} test images of {info.image.describe()}, mnist architecture, "
              f"batch {BATCH} ({time.perf_counter() - t0:.1f} s)")  # fmt: skip

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
        print(f"  loss: cnncli {r.loss:.6f}  Keras {k['loss']:.6f}   "
              f"accuracy: cnncli {r.accuracy:.4f}  Keras {k['accuracy']:.4f}")  # fmt: skip

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


if __name__ == "__main__":
    main()
