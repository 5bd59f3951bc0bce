"""`cnncli demo`: the whole path on the bundled sample data, the newcomer's first command.

The course's façade model, step by step: the label table becomes a dataset, the
architecture is summarised, trained briefly, evaluated with its error sheet, and looked
into (activation maps, flatten vectors clustered); the classical filter table is drawn
from one of the same photos. Every step calls the library function its own command uses.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli import __version__, claims
from cnncli.atomic import check_replaceable, clean_debris, rename, set_aside, write_json
from cnncli.errors import CnnError
from cnncli.training.events import TrainingInterrupted

MARKER = ".cnncli-demo.json"
DEFAULT_DIR = "cnncli-demo"
EPOCHS = 10  # measured: the façade model reaches val_accuracy 1.0 on the sample set by epoch 3-5
BATCH = 8
SIZE = (500, 500)  # the course's façade input: its pooling chain (5*5*5*4) needs 500x500
CLUSTERS = 2
STEPS = ("dataset", "summary", "train", "evaluate", "filters", "activations", "embed")


def sample_data_dir() -> Path:
    """The bundled sample_data folder: inside the installed package (cnncli/sample_data,
    mapped there by pyproject), or at the top of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "sample_data", package.parent / "sample_data"):
        if (folder / "facade" / "labels.csv").is_file():
            return folder
    raise CnnError(
        "the bundled sample_data folder is missing from this installation",
        "reinstall cnncli from its source folder (pip install .)",
    )


@dataclass
class Output:
    step: str
    path: Path
    what: str


@dataclass
class DemoResult:
    out_dir: Path
    outputs: list[Output] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "outputs": [
                {"step": o.step, "path": str(o.path), "what": o.what} for o in self.outputs
            ],
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "metrics": self.metrics,
        }


class DemoEvents:
    """What the demo reports as it goes. Subclass and override what you need."""

    def step(self, number: int, total: int, name: str, text: str) -> None:
        """A step starts."""

    def train_events(self) -> Any:
        """A cnncli.training.events.TrainEvents for the training step, or None."""
        return None


def _read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == "cnncli demo" else None


def check_demo_dir(out_dir: Path) -> None:
    """Refuse a folder the demo did not write (the demo replaces its own earlier output,
    without --overwrite), or one another process writes."""
    check_replaceable(
        out_dir,
        True,
        "a cnncli demo folder",
        MARKER,
        wrote=lambda folder: _read_marker(folder) is not None,
        replacer="cnncli demo",
        hint="choose another folder with -o DIR",
    )


def run_demo(
    out_dir: str | os.PathLike = DEFAULT_DIR, events: DemoEvents | None = None, epochs: int = EPOCHS
) -> DemoResult:
    """Run every step into `out_dir`. An earlier demo output there is replaced only when
    the new run finishes (until then it is set aside, and put back if the run fails); a
    folder the demo did not write is refused. The marker file says "running" until the
    last step is done, so an interrupted output never looks whole."""
    from cnncli.training.options import TrainOptions

    events = events or DemoEvents()
    out_dir = Path(out_dir)
    options = TrainOptions(epochs=epochs, batch_size=BATCH, seed=0)
    options.check()  # a bad --epochs is refused before anything is done
    check_demo_dir(out_dir)
    samples = sample_data_dir()
    with claims.claim(out_dir, "cnncli demo"):  # one demo at a time writes `out_dir`
        clean_debris(out_dir.parent, out_dir.name, claimed=True)  # a killed run's set-aside
        check_demo_dir(out_dir)  # again, now that no other process can write it
        return _run_claimed(out_dir, samples, events, options)


def _run_claimed(out_dir: Path, samples: Path, events: DemoEvents, options) -> DemoResult:
    old = set_aside(out_dir) if out_dir.exists() else None
    out_dir.mkdir()
    marker = {"written_by": "cnncli demo", "cnncli_version": __version__, "status": "running"}
    write_json(out_dir / MARKER, marker)
    try:
        result = _steps(out_dir, samples, events, options)
    except BaseException as e:
        shutil.rmtree(out_dir, ignore_errors=True)
        if old is not None:
            rename(old, out_dir)
        if isinstance(e, TrainingInterrupted):  # its "--resume" hint names a folder now gone
            raise KeyboardInterrupt from None
        raise
    write_json(out_dir / MARKER, {**marker, "status": "finished", "result": result.to_dict()})
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return result


def _steps(out: Path, samples: Path, events: DemoEvents, options) -> DemoResult:
    from cnncli.datasets.build import build_dataset
    from cnncli.images import find_images

    result = DemoResult(out)
    facade = samples / "facade"
    first_image = find_images(facade)[0]
    total = len(STEPS)

    def step(name: str, text: str):
        events.step(STEPS.index(name) + 1, total, name, text)
        return time.perf_counter()

    def done(name: str, started: float, *outputs: tuple[Path, str]) -> None:
        result.seconds[name] = time.perf_counter() - started
        result.outputs.extend(Output(name, p, what) for p, what in outputs)

    t = step("dataset", "building the façade dataset from labels.csv (대리석 / 벽돌)")
    dataset = out / "dataset"
    build = build_dataset(facade, dataset, labels=facade / "labels.csv", size=SIZE, val=0.2, seed=0)
    counts = ", ".join(f"{k} {v['count']}" for k, v in build.manifest["splits"].items())
    done("dataset", t, (dataset, f"sharded dataset, {SIZE[0]}x{SIZE[1]} RGBA, {counts}"))

    t = step("summary", "summarising the course's façade architecture")
    from cnncli.models.presets import build_architecture
    from cnncli.models.summary import summarize

    model = build_architecture("facade", (*SIZE, 4), 2)
    result.summary = summarize(model)
    import keras

    keras.backend.clear_session()  # the trained model's layers get the course's names again
    write_json(out / "summary.json", result.summary)
    done(
        "summary",
        t,
        (out / "summary.json", f"layer table, {result.summary['total_params']:,} parameters"),
    )

    epochs = options.epochs
    t = step("train", f"training it for {epochs} epoch{'s' * (epochs != 1)} (batch {BATCH})")
    from cnncli.training.fit import train

    run = out / "run"
    trained = train(dataset, run, arch="facade", options=options, events=events.train_events())
    best = run / "best.keras"
    from cnncli.inference.model import open_model

    trained_model = open_model(best)  # opened once for evaluate, activations and embed
    result.metrics["train"] = {"best_epoch": trained.best_epoch, **trained.best_metrics}
    done(
        "train",
        t,
        (best, f"best model (epoch {trained.best_epoch})"),
        (run / "history.png", "accuracy and loss, training vs validation"),
        (run / "checkpoints", "save-NN-<val_loss>.keras per improved epoch"),
    )

    t = step("evaluate", "evaluating the best model on the validation images")
    from cnncli.inference.evaluate import evaluate

    ev_dir = out / "evaluate"
    ev_dir.mkdir()
    ev = evaluate(
        trained_model,
        dataset,
        split="val",
        errors_png=ev_dir / "errors.png",
        errors_csv=ev_dir / "errors.csv",
        confusion_png=ev_dir / "confusion.png",
    )
    result.metrics["evaluate"] = {
        "split": ev.split,
        "images": ev.count,
        "loss": ev.loss,
        "accuracy": ev.accuracy,
        "misclassified": len(ev.misclassified),
    }
    sheet = f"error sheet ({len(ev.misclassified)} misclassified, most confident first)"
    if not ev.misclassified:  # the sheet shows the closest calls instead
        sheet = f"error sheet (none wrong: the {len(ev.close_calls)} least certain correct ones)"
    done(
        "evaluate",
        t,
        (ev_dir / "confusion.png", f"confusion matrix, accuracy {ev.accuracy:.3f}"),
        (ev_dir / "errors.png", sheet),
    )

    t = step("filters", "drawing the course's filter table on one façade photo")
    from cnncli.filters.files import open_input, save_image
    from cnncli.filters.gallery import filter_gallery

    gallery = out / "filters" / "gallery.png"
    picture = filter_gallery(open_input(first_image))
    save_image(picture, gallery, compress=6, overwrite=True)
    done("filters", t, (gallery, "every named kernel's result with its matrix"))

    t = step("activations", f"drawing every layer's feature maps for {first_image.name}")
    from cnncli.inference.activations import activations

    act_dir = out / "activations"
    acts = activations(trained_model, [first_image], act_dir)
    image = acts.images[0]
    result.metrics["activations"] = {
        "image": first_image.name,
        "predicted": image.predicted_class,
        "probability": image.probability,
    }
    done(
        "activations",
        t,
        (act_dir / "index.html", f"{len(image.layers)} layers' maps, one page"),
    )

    t = step("embed", f"clustering the flatten vectors of every image (k={CLUSTERS})")
    from cnncli.inference.embed import embed

    vectors = out / "embed" / "vectors.csv"
    emb = embed(trained_model, [dataset], out_csv=vectors, clusters=CLUSTERS, seed=0)
    result.metrics["embed"] = {
        "layer": emb.layer,
        "images": len(emb.files),
        "values": int(emb.vectors.shape[1]),
        "cluster_sizes": [int(n) for n in emb.cluster_sizes],
    }
    assert emb.cluster_dir is not None  # the demo asks for clusters
    done(
        "embed",
        t,
        (vectors, f"{emb.vectors.shape[1]}-value {emb.layer} vectors, {len(emb.files)} images"),
        (emb.cluster_dir, f"a sheet per cluster, sizes {', '.join(map(str, emb.cluster_sizes))}"),
    )
    return result
