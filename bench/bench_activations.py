"""Activation maps of every layer of the façade model for one 500x500x4 image: cnncli against
the course's way (a Keras sub-model with the layers as outputs, then one matplotlib figure per
layer with a grid of channel subplots, 16 per row, saved as PNG).

    python bench/bench_activations.py [--quick] [--repeat N]

Each side runs in a fresh Python process (so neither inherits the other's warmed-up
TensorFlow), which times `import tensorflow, keras` apart from the work: loading the model
file, converting the image, running the layers and writing every PNG. Both draw the same
layers (cnncli's default: every layer with spatial output, plus Flatten and Dense; the course's
code draws vector layers as a one-row image). Goal: cnncli <= 3 s, TensorFlow's import aside.
The whole command `cnncli activations MODEL IMAGE -o DIR` is also timed as typed (wall time,
import included). Medians of --repeat runs (1 with --quick, 3 otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 3.0


def facade_model():
    """The course's façade model (cnncli.models.presets 'facade' when it exists)."""
    try:
        from cnncli.models.presets import build_architecture

        return build_architecture("facade")
    except ImportError:
        pass
    import keras
    from keras import layers

    inp = keras.Input((500, 500, 4))
    x = inp
    for filters, kernel, pool in ((10, 5, 5), (10, 5, 5), (20, 3, 5), (25, 2, 4)):
        x = layers.Conv2D(filters, kernel, padding="same")(x)
        x = layers.LeakyReLU()(x)
        x = layers.MaxPool2D(pool)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(10, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))


def facade_image(work: Path) -> Path:
    found = sorted((REPO / "sample_data" / "facade").glob("*.png"))
    if found:
        return found[0]
    import numpy as np
    from PIL import Image

    path = work / "facade.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((500, 500, 4)) * 255).astype("uint8")).save(path)
    return path


# --- the two sides, each run in its own process ---------------------------------------------


def run_cnncli(model_path: str, image: str, out: str) -> dict:
    t0 = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    t1 = time.perf_counter()
    from cnncli.inference.activations import activations
    from cnncli.inference.model import open_model

    loaded = open_model(model_path)  # timed apart: Keras' deserialization
    t_load = time.perf_counter()
    result = activations(loaded, [image], out, overwrite=True)
    t2 = time.perf_counter()
    files = [lo.file for lo in result.images[0].layers]
    return {"import_s": t1 - t0, "work_s": t2 - t1, "load_s": t_load - t1, "pngs": len(files)}


def run_course(model_path: str, image: str, out: str) -> dict:
    t0 = time.perf_counter()
    import keras
    import tensorflow  # noqa: F401

    t1 = time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    model = keras.models.load_model(model_path, compile=False)
    chosen = [
        layer
        for layer in model.layers
        if type(layer).__name__ != "InputLayer"
        and (len(layer.output.shape) == 4 or type(layer).__name__ in ("Flatten", "Dense"))
    ]
    sub = keras.Model(model.inputs, [layer.output for layer in chosen])
    h, w = model.inputs[0].shape[1:3]
    img = Image.open(image).convert("RGBA").resize((w, h))
    x = np.asarray(img, dtype="float32")[None] / 255.0
    outs = sub.predict(x, verbose=0)
    os.makedirs(out, exist_ok=True)
    per_row = 16
    for i, (layer, act) in enumerate(zip(chosen, outs, strict=True)):
        a = act[0]
        if a.ndim == 1:
            a = a[None, :, None]
        n = a.shape[-1]
        cols = min(per_row, n)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.5 + 0.4), squeeze=False)
        for k in range(rows * cols):
            ax = axes[k // cols][k % cols]
            ax.axis("off")
            if k >= n:
                continue
            ch = a[:, :, k].astype("float64")
            ch = ch - ch.mean()
            ch = ch / ch.std() if ch.std() > 0 else ch  # the course divides; guard NaN
            ch = np.clip(ch * 64 + 128, 0, 255).astype("uint8")
            ax.imshow(ch, aspect="auto", cmap="viridis")
            ax.set_title(str(k), fontsize=6)
        fig.suptitle(f"{layer.name} {tuple(act.shape)}")
        fig.savefig(os.path.join(out, f"{i:02d}_{layer.name}.png"))
        plt.close(fig)
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "work_s": t2 - t1, "pngs": len(chosen)}


def _child(side: str, model_path: str, image: str, out: str) -> dict:
    paths = [str(Path(__file__).parent), str(REPO)]
    call = f"b.run_{side}({model_path!r}, {image!r}, {out!r})"
    code = (
        f"import json, sys; sys.path[:0] = {paths!r}; import bench_activations as b; "
        f"print('RESULT=' + json.dumps({call}))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT="):
            return json.loads(line[len("RESULT=") :])
    raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each side")
    parser.add_argument("--repeat", type=int, default=None, help="runs of each side (default 3)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = Path(tempfile.mkdtemp(prefix="bench_activations-"))
    try:
        model_path = work / "facade.keras"
        facade_model().save(model_path)
        image = facade_image(work)
        print(f"model: façade (Input 500x500x4 ... Flatten 25 ... Dense 1), image {image.name}")
        runs: dict[str, list[dict]] = {"cnncli": [], "course": []}
        for r in range(repeat):
            for side in ("cnncli", "course"):  # interleaved: noise hits both alike
                out = work / f"{side}-{r}"
                runs[side].append(_child(side, str(model_path), str(image), str(out)))
        cli = shutil.which("cnncli") or None
        cli_wall = []
        for r in range(repeat):
            cmd = [cli] if cli else [sys.executable, "-m", "cnncli"]
            out = work / f"cli-{r}"
            t = time.perf_counter()
            subprocess.run(
                cmd + ["activations", str(model_path), str(image), "-o", str(out)],
                check=True,
                capture_output=True,
            )
            cli_wall.append(time.perf_counter() - t)

        def med(side, key):
            return statistics.median(x[key] for x in runs[side])

        print(f"{'':28}{'cnncli':>10}{'course':>10}")
        print(
            f"{'layers drawn (PNG files)':28}{runs['cnncli'][0]['pngs']:>10}"
            f"{runs['course'][0]['pngs']:>10}"
        )
        print(
            f"{'import tensorflow+keras, s':28}{med('cnncli', 'import_s'):>10.2f}"
            f"{med('course', 'import_s'):>10.2f}"
        )
        print(
            f"{'work (load..PNGs), s':28}{med('cnncli', 'work_s'):>10.2f}"
            f"{med('course', 'work_s'):>10.2f}"
        )
        print(f"{'  of which model load, s':28}{med('cnncli', 'load_s'):>10.2f}{'':>10}")
        ratio = med("course", "work_s") / med("cnncli", "work_s")
        print(
            f"cnncli is {ratio:.2f}x the course's speed (course time / cnncli time, import aside)"
        )
        goal = "met" if med("cnncli", "work_s") <= GOAL_S else "NOT met"
        print(f"goal <= {GOAL_S:.0f} s excluding the import: {goal}")
        print(
            f"`cnncli activations MODEL IMAGE -o DIR` wall time, import included: "
            f"{statistics.median(cli_wall):.2f} s (median of {repeat})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
