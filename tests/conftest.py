"""Shared fixtures: tiny images and tables made in tmp_path, and a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# predict/evaluate's --runtime default: Keras here, so that a test of what predict shows
# makes no ONNX copy (seconds each); tests/test_fast_runtime.py tests `auto` itself
os.environ.setdefault("CNNCLI_RUNTIME", "keras")

REPO = Path(__file__).resolve().parents[1]
_EXIT_STATUS = 0


def pytest_sessionfinish(session, exitstatus):
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """The tests that run commands in-process leave TensorFlow's runtime (and tf.data
    iterators) in this process; Python's shutdown can then deadlock in TensorFlow's thread
    pools (a suite was seen to print its results and never exit). The results are printed
    and written by now, so the process leaves as cnncli.cli.state.exit_now does."""
    if "tensorflow" in sys.modules:
        import atexit

        atexit._run_exitfuncs()  # TensorFlow's autograph removes its temporary files there
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(_EXIT_STATUS)


SAMPLE_DATA = REPO / "sample_data"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run cnncli in-process: cli("dataset", "info", path) -> Result (exit code, stdout, stderr)."""
    from cnncli.cli.main import app

    def invoke(*args, input=None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke


def _save_image(path: Path, array: np.ndarray, mode: str | None = None, **save_kwargs) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if mode is not None:
        img = img.convert(mode)
    img.save(path, **save_kwargs)
    return path


@pytest.fixture(name="write_image", scope="session")
def write_image_fixture():
    """write_image(path, array, mode=None, **save_kwargs) -> path: saves a tiny image."""
    return _save_image


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- tiny class-folder images, datasets and models (predict, evaluate, the four commands) ----


class TinyKit:
    """Helpers that make tiny 8x8 RGB class-folder images, datasets and untrained models in
    tmp_path; tests reach them through the `tiny` fixture (no test imports another)."""

    FACADE = ["대리석", "벽돌"]  # natural order, as the dataset build sorts class folders
    SHAPES = ["circle", "square", "triangle"]

    @staticmethod
    def make_images(root: Path, classes, per_class: int = 8, size=(8, 8), seed: int = 0) -> Path:
        """Class folders of small RGB PNGs whose brightness depends on the class (with noise)."""
        rng = np.random.default_rng(seed)
        for c, name in enumerate(classes):
            for i in range(per_class):
                base = 40 + 160 * c // max(1, len(classes) - 1)
                arr = np.clip(rng.normal(base, 60, (*size, 3)), 0, 255).astype(np.uint8)
                _save_image(root / name / f"{i}.png", arr)
        return root

    @staticmethod
    def build(images: Path, out: Path, val=0.25, test=0.25) -> Path:
        from cnncli.datasets.build import build_dataset

        build_dataset(images, out, val=val, test=test, seed=0, workers=1)
        return out

    @staticmethod
    def model(n_classes: int, head: str = "probabilities", rescale: bool = True, seed: int = 0):
        """Input -> [Rescaling] -> Conv2D(2,3) -> GlobalAveragePooling2D -> Dense (untrained).
        `head`: "probabilities" (sigmoid for 2 classes, softmax otherwise) or "logits"."""
        import keras

        keras.utils.set_random_seed(seed)
        units = 1 if n_classes == 2 else n_classes
        act = None if head == "logits" else ("sigmoid" if units == 1 else "softmax")
        layers = [keras.Input((8, 8, 3))]
        if rescale:
            layers.append(keras.layers.Rescaling(1 / 255))
        layers += [
            keras.layers.Conv2D(2, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(units, activation=act, kernel_initializer="random_normal"),
        ]
        model = keras.Sequential(layers)
        # spread the outputs so that some images are misclassified and probabilities differ
        w, b = model.layers[-1].get_weights()
        model.layers[-1].set_weights([w * 40, b])
        return model

    @staticmethod
    def save_with_metadata(model, path: Path, class_names, pixel_scale: float = 1.0) -> Path:
        """Save as cnncli does (docs/FORMAT.md): metadata with the model."""
        from cnncli.models.io import save_model

        meta = {
            "format_version": 1,
            "class_names": list(class_names),
            "image": {"height": 8, "width": 8, "channels": 3, "color": "rgb", "fit": "stretch"},
            "pixel_scale": pixel_scale,
            "cnncli_version": "0.1.0",
        }
        save_model(model, path, meta)
        return path

    @staticmethod
    def split_arrays(dataset: Path, split: str):
        """(uint8-valued float32 images, labels, paths) of a dataset split, in dataset order."""
        from cnncli.datasets.store import iter_records, open_dataset

        recs = list(iter_records(open_dataset(dataset), split))
        x = np.stack([r.image for r in recs]).astype("float32")
        y = np.array([r.label for r in recs])
        return x, y, [r.path for r in recs]


@pytest.fixture(scope="session")
def tiny() -> type[TinyKit]:
    return TinyKit


_FRESH_CLI = """
import json, sys
from typer.testing import CliRunner
from cnncli.cli.main import app
out = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, args)
    out.append([r.exit_code, r.stderr.strip()])
out.append(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
print(json.dumps(out))
"""


@pytest.fixture
def fresh_cli():
    """fresh_cli(list of argument lists, cwd) -> ([(exit code, stderr)], heavy): runs the
    commands in one new Python process; `heavy` lists tensorflow/keras if any loaded."""
    import json
    import subprocess
    import sys

    def run(cases, cwd):
        args = json.dumps([[str(a) for a in case] for case in cases])
        out = subprocess.run(
            [sys.executable, "-c", _FRESH_CLI, args],
            capture_output=True,
            text=True,
            cwd=cwd,
            check=True,
        )
        *results, heavy = json.loads(out.stdout)
        return [tuple(r) for r in results], heavy

    return run


# --- headless Chromium (HTML pages: test_html_pages, test_report) ---------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser(environ) -> str:
    """The headless browser's path; without one, skip with the reason, or under CI
    (CI=true) fail: a browser test must never skip silently where it is meant to run."""
    import shutil

    exe = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if exe is None:
        message = "headless Chromium not found on PATH (Debian: apt-get install chromium)"
        if environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI must install it (.ci/run does)")
        pytest.skip(message)
    return exe


@pytest.fixture(name="find_browser", scope="session")
def find_browser_fixture():
    """find_browser(environ) -> the browser's path (skips, or fails under CI, without one)."""
    return find_browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """(run, screenshot): run(args) runs headless Chromium with an isolated fontconfig
    holding only DejaVu Sans (so only a page's embedded font can draw Hangul);
    screenshot(html_file, size) -> an RGB array."""
    import shutil
    import subprocess

    import matplotlib
    from PIL import Image

    exe = find_browser(os.environ)
    home = tmp_path_factory.mktemp("chromium")
    fonts = home / "fonts"
    fonts.mkdir()
    shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", fonts)
    conf = home / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{fonts}</dir><cachedir>{home / 'fc-cache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    env = dict(os.environ, FONTCONFIG_FILE=str(conf), HOME=str(home))
    base = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={home / 'profile'}",
    ]

    def run(args, text=False):
        proc = subprocess.run(base + args, capture_output=True, text=text, env=env, timeout=90)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    def screenshot(page: Path, size=(800, 600)) -> np.ndarray:
        shot = page.with_suffix(".shot.png")
        run([f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", page.as_uri()])
        with Image.open(shot) as im:
            return np.asarray(im.convert("RGB"))

    return run, screenshot


# Runs first in the page: records failed loads (img, link, script: error events in the
# capture phase), script errors and console.error; once loaded and the fonts are ready,
# writes what it saw as JSON into <pre id="page-probe">.
_PAGE_PROBE = """<script>
(() => {
  const errors = [];
  addEventListener("error", ev => errors.push(ev.target && ev.target !== window
      ? "failed to load " + (ev.target.src || ev.target.href)
      : "script error " + ev.message), true);
  const log = console.error.bind(console);
  console.error = (...a) => { errors.push("console.error " + a.join(" ")); log(...a); };
  function ink(font, text) {
    const c = document.createElement("canvas"); c.width = 60 * text.length + 40; c.height = 90;
    const g = c.getContext("2d"); g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
    g.fillStyle = "#000"; g.font = font; g.fillText(text, 10, 65);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
  }
  addEventListener("load", async () => {
    const hangul = [...new Set(document.body.innerText.match(/[\\uac00-\\ud7a3]/g) || [])].join("");
    await document.fonts.load("48px CnncliGothic", hangul || "a");
    await document.fonts.ready;
    let drawn = null;
    if (hangul) {
      const a = ink("48px CnncliGothic, sans-serif", hangul), b = ink("48px sans-serif", hangul);
      drawn = a.filter((v, i) => v !== b[i]).length > 200;
    }
    const out = document.createElement("pre"); out.id = "page-probe";
    out.textContent = JSON.stringify({
      errors, hangul, hangul_drawn: drawn,
      images: [...document.images].map(i => [i.getAttribute("src"), i.naturalWidth]),
      fonts: [...document.fonts].map(f => [f.family, f.status]),
      resources: performance.getEntriesByType("resource").map(r => r.name),
      overflow: document.documentElement.scrollWidth > innerWidth,
    });
    document.body.appendChild(out);
  });
})();
</script>"""


@pytest.fixture(scope="module")
def open_page(browser):
    """open_page(html_file, width=1280) -> what headless Chromium saw on the page: errors
    (failed loads, script errors, console.error), images [(src, naturalWidth)], fonts
    [(family, status)], resources (every URL it fetched), hangul (the page's Hangul) and
    hangul_drawn (whether the page's embedded font draws it differently from the fallback),
    overflow (the page wider than the window). The page is read from a copy beside it."""
    import html
    import json
    import re

    run, _ = browser

    def probe(page: Path, width: int = 1280) -> dict:
        copy = page.with_name(f"probe-{page.name}")
        text = page.read_text(encoding="utf-8")
        charset = '<meta charset="utf-8">'  # the probe after it: within the first 1024 bytes
        copy.write_text(text.replace(charset, charset + _PAGE_PROBE, 1), encoding="utf-8")
        dom = run(
            [
                "--dump-dom",
                f"--window-size={width},900",
                "--virtual-time-budget=20000",
                copy.as_uri(),
            ],
            text=True,
        ).stdout
        copy.unlink()
        found = re.search(r'<pre id="page-probe">(.*?)</pre>', dom, re.S)
        assert found, f"the page did not finish loading: {dom[-500:]}"
        return json.loads(html.unescape(found.group(1)))

    return probe
