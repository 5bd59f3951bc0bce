"""Model layer: cnncli's safe load_model and summarize against plain Keras, in one run.

(a) Loading: `cnncli.models.io.load_model` (reads the stored config with zipfile/h5py,
    checks it for code before Keras deserialises, reads the metadata) against
    `keras.models.load_model(path, compile=False)` on the same files: the course's façade
    model as .keras and .h5 (saved by cnncli), and the tf.keras 2.x .h5 fixture.
(b) Summaries: `cnncli.models.summary.summarize` (concrete shapes, MACs, activation memory)
    against Keras' `model.summary()` printed to a string, for the façade and cats-vs-dogs
    models.
Median wall time of N runs (interleaved), and the ratio cnncli / Keras.

    python bench/bench_models.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_pair(fa, fb, runs: int) -> tuple[float, float]:
    fa(), fb()  # warm up (first calls trace and import)
    ta, tb = [], []
    for _ in range(runs):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 9

    import warnings

    import keras

    from cnncli.models.io import load_model, save_model
    from cnncli.models.presets import build_architecture
    from cnncli.models.summary import summarize

    warnings.simplefilter("ignore")
    print(f"Keras {keras.__version__}; median of {runs} runs; ratio = cnncli / Keras")
    print("\n(a) loading a model file (compile=False)")
    print(f"{'file':34} {'cnncli ms':>10} {'keras ms':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        facade = build_architecture("facade")
        meta = {"class_names": ["벽돌", "대리석"], "pixel_scale": 1.0}
        files = [
            save_model(facade, Path(tmp) / "facade.keras", meta),
            save_model(facade, Path(tmp) / "facade.h5", meta),
            REPO / "tests" / "fixtures" / "tf2_facade_small.h5",
        ]
        for path in files:
            a, b = _median_pair(
                lambda p=path: load_model(p),
                lambda p=path: keras.models.load_model(p, compile=False),
                runs,
            )
            print(f"{path.name:34} {a * 1e3:10.1f} {b * 1e3:10.1f} {a / b:7.2f}")

    print("\n(b) layer table of a built model")
    print(f"{'model':34} {'cnncli ms':>10} {'keras ms':>10} {'ratio':>7}")
    for name in ("facade", "catsdogs"):
        model = build_architecture(name)

        def keras_summary(m=model):
            lines: list[str] = []
            m.summary(print_fn=lambda line, *a, **k: lines.append(line))
            return lines

        a, b = _median_pair(lambda m=model: summarize(m), keras_summary, runs)
        print(f"{name:34} {a * 1e3:10.1f} {b * 1e3:10.1f} {a / b:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
