"""Hostile model files (issue 23, items 1, 4, 7, 8, 9, 11, 12, 13, 15): trials for
bench/probe_reliability.py, which lists `MODEL_PROBES` in its PROBES. Each trial gives the
real `cnncli` of this tree (PYTHONPATH = the tree) a model file in its own process and
sorts the answer:

  handled       refused as it should be: exit 2 (a full disk: 1) with one "error:" line,
                and the named harm not done (no file written, no thresholds stored)
  silent wrong  exit 0 where it should have refused (an answer from a model that is not
                the one described, a SavedModel's code run, thresholds stored into the
                wrong model)
  unexpected    "unexpected ..." or a traceback, or an exit code outside 0/1/2
  not handled   anything else (refused with the wrong exit code, say)
`lost` = trials - handled. The config bombs also report each one's peak memory (the
process's max RSS) and wall time; PROBE_BOMB_SCALE (default 1) scales their sizes (a
fraction of 1 keeps a run of old code from taking gigabytes).

Import it through probe_reliability (it takes Probe and Context from there).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

_host = sys.modules.get("probe_reliability") or sys.modules.get("__main__")
if not hasattr(_host, "Probe"):  # pragma: no cover - imported on its own
    import probe_reliability as _host

Probe = _host.Probe
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
CLASSES = ["a", "b", "c"]
_made: dict = {}


# ------------------------------------------------------------------------------ running
def run(args, cwd: Path, code: str | None = None, timeout: float = 600):
    """`cnncli ARGS` (or `python -c CODE ARGS`) in its own process: (exit code, stderr,
    stdout, seconds)."""
    command = [sys.executable, *(["-c", code] if code else ["-m", "cnncli"]), *map(str, args)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, err, out, time.perf_counter() - start


def verdict(rc: int, err: str, want: int = 2, harm: bool = False) -> str:
    """handled, silent wrong, unexpected or not handled (see the module's docstring)."""
    if "unexpected" in err or "Traceback" in err or rc not in (0, 1, 2):
        return "unexpected"
    if rc == 0 or harm:
        return "silent wrong"
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    return "handled" if rc == want and len(lines) == 1 else "not handled"


class Tally:
    def __init__(self):
        self.counts = {
            "trials": 0,
            "lost": 0,
            "handled": 0,
            "silent wrong": 0,
            "unexpected": 0,
            "not handled": 0,
        }
        self.missed: list[str] = []

    def add(self, name: str, result: str) -> None:
        self.counts["trials"] += 1
        self.counts[result] += 1
        if result != "handled":
            self.counts["lost"] += 1
            self.missed.append(f"{name}: {result}")

    def done(self, **extra) -> dict:
        out = {k: v for k, v in self.counts.items() if v or k in ("trials", "lost")}
        if self.missed:
            out["missed"] = "; ".join(self.missed[:12])
        return {**out, **extra}


# ------------------------------------------------------------------------------- making
def sha256(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            h.update(f"{f.relative_to(path).as_posix()}\0{sha256(f)}\n".encode())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def made(ctx) -> dict:
    """Models, exports and datasets the trials share, made once per probe run in-process
    with this tree's cnncli (its export and dataset build as they are)."""
    if _made.get("work") == ctx.work:
        return _made
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from cnncli.datasets.build import build_dataset
    from cnncli.export.run import export_model
    from cnncli.models.io import save_model
    from cnncli.notices import listen

    here = ctx.fresh("models")
    rng = np.random.default_rng(23)
    for k, name in enumerate(CLASSES):
        (here / "img" / name).mkdir(parents=True)
        for i in range(6):
            arr = np.clip(rng.normal(40 + 80 * k, 50, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(here / "img" / name / f"{i}.png")
    image = {"height": 8, "width": 8, "color": "rgb", "fit": "stretch"}

    def net(units, act, seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Conv2D(2, 3),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(units, activation=act),
            ]
        )

    meta = {"class_names": CLASSES, "image": image, "pixel_scale": 1.0}
    save_model(net(3, "softmax", 1), here / "m.keras", meta)
    save_model(net(1, "sigmoid", 2), here / "two.keras", {**meta, "class_names": ["cat", "dog"]})
    with listen(lambda line: None):
        build_dataset(here / "img", here / "ds", val=0.25, test=0.25, seed=0, workers=1)
        for fmt, name in (("litert", "m.tflite"), ("onnx", "m.onnx")):
            export_model(here / "m.keras", fmt, here / name)
        rows = [["image", "tags"]] + [
            [f"{n}/{i}.png", ";".join(t for j, t in enumerate("xy") if (i + k) >> j & 1)]
            for k, n in enumerate(CLASSES)
            for i in range(6)
        ]
        (here / "tags.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
        build_dataset(
            here / "img",
            here / "ml",
            task="multilabel",
            label_col="tags",
            label_delim=";",
            labels=here / "tags.csv",
            val=0.5,
            test=0,
            workers=1,
        )
        ml_meta = {
            **meta,
            "class_names": ["x", "y"],
            "format_version": 2,
            "task": "multilabel",
            "thresholds": [0.5, 0.5],
        }
        for seed in (3, 4):
            save_model(net(2, "sigmoid", seed), here / f"ml{seed}.keras", ml_meta)
        export_model(here / "ml3.keras", "litert", here / "ml.tflite")
    _made.clear()
    _made.update(work=ctx.work, here=here, image=here / "img" / "a" / "0.png")
    return _made


def pair(src: Path, folder: Path, **changes) -> Path:
    """The exported file `src` and its sidecar copied into `folder`, with `changes` to the
    sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    shutil.copyfile(src, dst)
    side = json.loads(Path(f"{src}.cnncli.json").read_text())
    side.update(changes)
    Path(f"{dst}.cnncli.json").write_text(json.dumps(side))
    return dst


# ------------------------------------------------------------------------------- trials
HOSTILE_SM = """
import sys, tensorflow as tf
victim = sys.argv[2]
class Hostile(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def serve(self, x):
        data = tf.io.read_file(sys.argv[3])
        tf.io.write_file(victim, data)
        return tf.fill([tf.shape(x)[0], 3], 1 / 3)
tf.saved_model.save(Hostile(), sys.argv[1])
"""


def savedmodel(ctx) -> dict:
    m = made(ctx)
    here = ctx.fresh("models-savedmodel")
    victim, secret = here / "victim.txt", here / "secret.txt"
    secret.write_text("secret\n" * 1000)
    rc, err, *_ = run([here / "sm", victim, secret], here, code=HOSTILE_SM)
    assert rc == 0, err
    side = json.loads(Path(f"{m['here'] / 'm.tflite'}.cnncli.json").read_text())
    side.update(format="savedmodel", format_version=1, model_sha256=sha256(here / "sm"))
    Path(f"{here / 'sm'}.cnncli.json").write_text(json.dumps(side))
    tally = Tally()
    for args in (["predict", here / "sm", m["image"]], ["evaluate", here / "sm", m["here"] / "ds"]):
        victim.unlink(missing_ok=True)
        rc, err, *_ = run(args, here)
        tally.add(f"{args[0]} savedmodel", verdict(rc, err, harm=victim.exists()))
    return tally.done()


def _bomb(src: Path, dst: Path, layer: int, key: str, value: int) -> Path:
    with zipfile.ZipFile(src) as z:
        items = {i.filename: z.read(i.filename) for i in z.infolist()}
    config = json.loads(items["config.json"])
    config["config"]["layers"][layer]["config"][key] = value
    items["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    return dst


def bombs(ctx) -> dict:
    """The issue's two config bombs (Dense(units=1e8), Conv2D(filters=5e7) in a ~19 KB
    .keras): refused, and each one's peak memory and time (the process's, TF's import
    included; a bare `cnncli predict` of the real model is the baseline)."""
    m = made(ctx)
    here = ctx.fresh("models-bombs")
    scale = float(os.environ.get("PROBE_BOMB_SCALE", "1"))
    tally, figures = Tally(), {}
    # a fresh process per run: RUSAGE_CHILDREN's max RSS is the largest child's so far, so
    # each is measured by a wrapper process of its own
    code = (
        "import resource, subprocess, sys, time\nt = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "sys.stderr.write(p.stderr)\n"
        "print(f'{p.returncode} {time.perf_counter() - t:.1f} {peak:.0f}')\n"
    )
    cases = [
        ("baseline", m["here"] / "m.keras"),
        (
            "dense 1e8",
            _bomb(m["here"] / "m.keras", here / "dense.keras", -1, "units", int(1e8 * scale)),
        ),
        (
            "conv 5e7",
            _bomb(m["here"] / "m.keras", here / "conv.keras", 2, "filters", int(5e7 * scale)),
        ),
    ]
    for name, path in cases:
        _, err, out, *_ = run(
            [sys.executable, "-m", "cnncli", "predict", path, m["image"]],
            here,
            code=code,
            timeout=900,
        )
        rc, took, peak = out.split()
        figures[f"{name} s"] = float(took)
        figures[f"{name} MB"] = int(float(peak))
        if name != "baseline":
            tally.add(name, verdict(int(rc), err))
    return tally.done(**figures, **({"scale": scale} if scale != 1 else {}))


SIDECAR_CASES = [
    (
        "binary for 3 outputs",
        {"head": {"kind": "binary", "from_logits": False, "units": 1}, "class_names": ["a", "b"]},
    ),
    (
        "10 units for 3",
        {
            "head": {"kind": "categorical", "from_logits": False, "units": 10},
            "class_names": list("abcdefghij"),
        },
    ),
    ("16x16 for 8x8", {"image": {"height": 16, "width": 16, "color": "rgb"}}),
    ("grayscale for rgb", {"image": {"height": 8, "width": 8, "color": "grayscale"}}),
    ("task bogus", {"task": "bogus"}),
    (
        "2 thresholds, 3 labels",
        {
            "task": "multilabel",
            "thresholds": [0.5, 0.5],
            "head": {"kind": "multilabel", "from_logits": False, "units": 3},
        },
    ),
    ("duplicate names", {"class_names": ["a", "a", "b"]}),
    ("pixel_scale 1e308", {"pixel_scale": 1e308}),
    ("pixel_scale 1e-300", {"pixel_scale": 1e-300}),
]
METADATA_CASES = [
    ("pixel_scale 1e308", {"pixel_scale": 1e308}),
    ("duplicate names", {"class_names": ["a", "b", "a"]}),
    ("2 names for 3 outputs", {"class_names": ["a", "b"]}),
]


def sidecars(ctx) -> dict:
    """Sidecars that disagree with their LiteRT / ONNX model, and .keras metadata out of
    bounds: each must be refused (exit 2) before anything is predicted."""
    m = made(ctx)
    here = ctx.fresh("models-sidecars")
    tally = Tally()
    for fmt in ("m.tflite", "m.onnx"):
        for k, (name, changes) in enumerate(SIDECAR_CASES):
            path = pair(m["here"] / fmt, here / f"{fmt}-{k}", **changes)
            rc, err, *_ = run(["predict", path, m["image"]], here)
            tally.add(f"{fmt} {name}", verdict(rc, err))
    for k, (name, meta) in enumerate(METADATA_CASES):
        path = here / f"meta{k}.keras"
        shutil.copyfile(m["here"] / "m.keras", path)
        with zipfile.ZipFile(path) as z:
            stored = json.loads(z.read("cnncli.json"))
        _replace_member(path, "cnncli.json", json.dumps({**stored, **meta}).encode())
        rc, err, *_ = run(["predict", path, m["image"]], here)
        tally.add(f"keras {name}", verdict(rc, err))
    return tally.done()


def _replace_member(path: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as z:
        items = {i.filename: z.read(i.filename) for i in z.infolist()}
    items[member] = data
    with zipfile.ZipFile(path, "w") as z:
        for name, value in items.items():
            z.writestr(name, value)


def files(ctx) -> dict:
    """Empty, garbage, cut and bit-flipped .tflite and .onnx files (with a sidecar that
    names them, as an attacker's would), and ONNX external data that leaves its folder or
    declares 3 TB: one line each, exit 2; a damaged file that still runs (exit 0) is
    counted as ran, not wrong."""
    m = made(ctx)
    here = ctx.fresh("models-files")
    rng = random.Random(23)
    tally, ran = Tally(), 0
    for fmt in ("m.tflite", "m.onnx"):
        data = (m["here"] / fmt).read_bytes()
        variants = {"empty": b"", "garbage": rng.randbytes(3000)}
        for t in range(ctx.trials(4, 20)):
            variants[f"cut{t}"] = data[: rng.randrange(len(data))]
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            variants[f"flip{t}"] = bytes(flipped)
        for name, content in variants.items():
            path = pair(m["here"] / fmt, here / f"{fmt}-{name}")
            path.write_bytes(content)
            _rehash(path)
            rc, err, *_ = run(["predict", path, m["image"]], here)
            if rc == 0 and name.startswith(("flip", "cut")):
                ran += 1
                continue
            tally.add(f"{fmt} {name}", verdict(rc, err))
    for name, location, dims in (
        ("../ outside", "../secret.bin", None),
        ("absolute", str(here / "secret.bin"), None),
        ("/dev/zero", "/dev/zero", None),
        ("3 TB tensor", "weights.bin", [1_000_000, 750_000]),
    ):
        path = _external(
            m["here"] / "m.onnx", here / "ext" / name.replace("/", "_"), location, dims
        )
        (here / "ext" / "secret.bin").write_bytes(b"\0" * 4096)
        rc, err, *_ = run(["predict", path, m["image"]], here)
        tally.add(f"onnx external {name}", verdict(rc, err))
    return tally.done(**({"damaged but ran": ran} if ran else {}))


def _external(src: Path, folder: Path, location: str, dims) -> Path:
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    (folder / "weights.bin").write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    if dims is not None:
        del tensor.dims[:]
        tensor.dims.extend(dims)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    path = folder / "x.onnx"
    onnx.save(model, str(path))
    shutil.copyfile(f"{src}.cnncli.json", f"{path}.cnncli.json")
    return _rehash(path)


def _rehash(path: Path) -> Path:
    """The sidecar of `path` given its digest (an attacker writes both files)."""
    side = json.loads(Path(f"{path}.cnncli.json").read_text())
    side["model_sha256"] = sha256(path)
    Path(f"{path}.cnncli.json").write_text(json.dumps(side))
    return path


KILL_AT_MODEL_RENAME = """
import os, runpy, signal, sys
from pathlib import Path
target = Path(sys.argv[1]).resolve()
real = os.replace
def replace(src, dst):
    if Path(dst).resolve() == target:  # kill -9 just before the model's own rename
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
os.replace = replace
sys.argv = ["cnncli", *sys.argv[2:]]
runpy.run_module("cnncli", run_name="__main__")
"""
REPLACED_WHILE_TUNING = """
import os, runpy, shutil, sys
import numpy as np
import cnncli.inference.evaluate_tasks as tasks
best, other = sys.argv[1], sys.argv[2]
def replaced(*args):  # what training's hard-link-and-rename of best.keras does meanwhile
    shutil.copyfile(other, best + ".new")
    os.replace(best + ".new", best)
    return np.array([0.9, 0.1])
tasks.best_thresholds = replaced
sys.argv = ["cnncli", *sys.argv[3:]]
runpy.run_module("cnncli", run_name="__main__")
"""
NO_CONVERTERS = """
import importlib.util, runpy, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda n, *a: None if n in ("tf2onnx", "onnx") else real(n, *a)
sys.argv = ["cnncli", *sys.argv[1:]]
runpy.run_module("cnncli", run_name="__main__")
"""
DISK_FULL = """
import runpy, sys
import cnncli.export.convert as convert
def full(*args):
    raise RuntimeError("{{function_node __wrapped__SaveV2_dtypes_4}} variables_temp/part-0: "
                       "No space left on device [Op:SaveV2]")
convert._convert = full
sys.argv = ["cnncli", *sys.argv[1:]]
runpy.run_module("cnncli", run_name="__main__")
"""


def races(ctx) -> dict:
    """export --overwrite killed -9 between its renames, then predict; a model replaced
    during --tune-thresholds; --tune-thresholds on a .tflite (seconds until refused);
    predict x.onnx without tf2onnx/onnx; a full disk during export (named?)."""
    m = made(ctx)
    here = ctx.fresh("models-races")
    tally, figures = Tally(), {}
    for fmt in ("tflite", "onnx"):
        target = pair(m["here"] / f"m.{fmt}", here / fmt)
        killed, *_ = run(
            [
                target,
                "export",
                m["here"] / "two.keras",
                "--format",
                "litert" if fmt == "tflite" else "onnx",
                "-o",
                target,
                "--overwrite",
            ],
            here,
            code=KILL_AT_MODEL_RENAME,
        )
        figures[f"export {fmt} killed (exit)"] = killed  # -9: killed at the model's rename
        # the old model (a, b, c) beside the new sidecar (cat, dog): any answer is wrong
        rc, err, *_ = run(["predict", target, m["image"], "--csv"], here)
        tally.add(f"export {fmt} killed between renames", verdict(rc, err))
    run_dir = here / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    best = run_dir / "best.keras"
    shutil.copyfile(m["here"] / "ml3.keras", best)
    rc, err, *_ = run(
        [
            best,
            m["here"] / "ml4.keras",
            "evaluate",
            best,
            m["here"] / "ml",
            "--split",
            "val",
            "--tune-thresholds",
        ],
        here,
        code=REPLACED_WHILE_TUNING,
    )
    with zipfile.ZipFile(best) as z:
        stored = json.loads(z.read("cnncli.json")).get("thresholds")
    harm = stored == [0.9, 0.1]
    tally.add("model replaced while tuning", "silent wrong" if harm else verdict(rc, err, 1))
    rc, err, _, took = run(
        ["evaluate", m["here"] / "ml.tflite", m["here"] / "ml", "--tune-thresholds"], here
    )
    figures["tflite --tune-thresholds refused after s"] = round(took, 1)
    tally.add("tune a tflite", verdict(rc, err))
    rc, err, *_ = run(["predict", m["here"] / "m.onnx", m["image"]], here, code=NO_CONVERTERS)
    tally.add("predict onnx without tf2onnx/onnx", "handled" if rc == 0 else "not handled")
    rc, err, *_ = run(
        ["export", m["here"] / "m.keras", "--format", "savedmodel", "-o", here / "full_sm"],
        here,
        code=DISK_FULL,
    )
    named = "disk is full" in err and "try another --format" not in err
    tally.add("disk full in export", verdict(rc, err, 1) if named else "not handled")
    return tally.done(**figures)


MODEL_PROBES = [
    Probe(
        "models-savedmodel",
        "a SavedModel whose code writes a file: refused without --unsafe",
        savedmodel,
    ),
    Probe(
        "models-bombs",
        "config.json declaring Dense(1e8) / Conv2D(5e7): refused, peak memory and time",
        bombs,
    ),
    Probe(
        "models-sidecars",
        "sidecars that disagree with their model, metadata out of bounds: exit 2",
        sidecars,
    ),
    Probe(
        "models-files",
        "garbage, cut, flipped .tflite/.onnx; ONNX external data out of its folder or 3 TB",
        files,
    ),
    Probe(
        "models-races",
        "export killed between renames, model replaced while tuning, "
        "tflite tuning, onnx alone, disk full",
        races,
    ),
]
