"""What a run's report computes with its model (TensorFlow loads here only): the model
summary (parameters and MACs, cnncli.models.summary), the evaluation on val and test
(cnncli.inference.evaluate: metrics, confusion matrix, error sheet), and the activation
grids and Grad-CAM of two validation images (cnncli.inference.activations).

Each part that cannot be made (no model file, the dataset moved, a task the evaluation
does not know) is listed in `Parts.missing` with why and the command that makes it; the
others are still made. `parts.json` in the report folder records what was computed, so a
later report with `--no-compute` reuses it (cnncli.runs.reuse, which trusts none of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli.atomic import write_json
from cnncli.errors import CnnError
from cnncli.progress import Counter, Progress
from cnncli.runs.record import RunRecord
from cnncli.training.rundir import BEST_MODEL, LAST_MODEL

if TYPE_CHECKING:
    from cnncli.inference.activations import LayerOutput

PARTS_JSON = "parts.json"
SPLITS = ("val", "test")
SHOWN_IMAGES = 2  # validation images whose activations and Grad-CAM the page shows
SHOWN_LAYERS = 3  # activation grids per image on the page (the rest: the image's own page)


@dataclass
class Parts:
    """What a report shows beyond run.json and history.csv (paths relative to the report
    folder): summary (summarize's dict, layers left out), evaluations {split: evaluate's
    JSON}, pictures {"confusion-val": file, "errors-val": file, ...}, activations (per
    image: page, input, grids, gradcam), missing (what is not there, why, and how)."""

    model: str | None = None
    summary: dict | None = None
    evaluations: dict = field(default_factory=dict)
    pictures: dict = field(default_factory=dict)
    activations: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    computed: bool = False

    def files(self) -> list[str]:
        """The report-relative files and folders these parts use."""
        out = [PARTS_JSON, *self.pictures.values()]
        out += [f"evaluation-{s}.json" for s in self.evaluations]
        out += [f"errors-{s}.csv" for s in self.evaluations]
        if self.activations:
            out += ["activations", "images"]
        return out


def model_file(run_dir: Path) -> Path | None:
    for name in (BEST_MODEL, LAST_MODEL):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def missing_parts(r: RunRecord) -> list[str]:
    """What a report without computing lacks, each with the command that makes it."""
    model = model_file(r.path)
    if model is None:
        what = f"model summary, evaluation and activations: no {BEST_MODEL} or {LAST_MODEL} in "
        if r.epochs_done == 0:
            return [f"{what}{r.path} (no epoch finished yet): cnncli train --resume {r.path}"]
        return [f"{what}{r.path}"]
    ds = r.dataset_path or "DATASET"
    return [
        f"model summary (parameters, MACs): cnncli summary {model}",
        f"evaluation on val and test: cnncli report {r.path} (or cnncli evaluate {model} {ds} "
        "--split val --errors errors.png)",
        f"activations and Grad-CAM: cnncli activations {model} IMAGE --gradcam",
    ]


def compute_parts(r: RunRecord, out: Path, progress: Progress | None = None) -> Parts:
    """Compute the parts of run `r`'s report into folder `out` (see the module docstring)
    and record them in out/parts.json."""
    parts = Parts(computed=True)
    model = model_file(r.path)
    counter = Counter(progress, 2 + len(SPLITS))
    counter.start()
    if model is None:
        parts.missing = missing_parts(r)
        return _saved(parts, out)
    from cnncli.inference.model import open_model

    parts.model = model.name
    loaded = []
    _part(
        parts,
        "model summary, evaluation and activations",
        f"cnncli summary {model}",
        lambda: loaded.append(open_model(model)),
    )
    if not loaded:  # refused (a model that runs code) or unreadable: said in `missing`
        return _saved(parts, out)
    info = loaded[0]
    _part(parts, "model summary", f"cnncli summary {model}", lambda: _summary(parts, info))
    counter.add()
    ds = Path(r.dataset_path) if r.dataset_path else None
    if ds is None or not ds.is_dir():
        where = ds or "(run.json names none)"
        parts.missing.append(
            f"evaluation and activations: the dataset {where} is not there: cnncli evaluate "
            f"{model} DATASET --errors errors.png, cnncli activations {model} IMAGE --gradcam"
        )
        return _saved(parts, out)
    from cnncli.datasets.store import open_dataset

    datasets = []
    _part(
        parts,
        "evaluation and activations",
        f"cnncli dataset info {ds}",
        lambda: datasets.append(open_dataset(ds)),
    )
    if not datasets:
        return _saved(parts, out)
    dataset = datasets[0]
    task = str(getattr(dataset, "task", r.task))
    for split in SPLITS:
        if dataset.count(split) > 0:
            cmd = f"cnncli evaluate {model} {ds} --split {split}"
            _part(
                parts,
                f"evaluation on {split}",
                cmd,
                lambda s=split: _evaluate(parts, info, ds, s, task, out),
            )
        counter.add()
    cmd = f"cnncli activations {model} IMAGE --gradcam"
    _part(parts, "activations", cmd, lambda: _activations(parts, info, dataset, out))
    counter.add()
    return _saved(parts, out)


def _saved(parts: Parts, out: Path) -> Parts:
    write_json(out / PARTS_JSON, asdict(parts))
    return parts


def _part(parts: Parts, what: str, command: str, work) -> None:
    """Run one part; a failure is listed (one line, with the command), never raised: the
    rest of the report is still worth having."""
    try:
        work()
    except CnnError as e:
        parts.missing.append(f"{what}: {e.one_line()}: {command}")
    except Exception as e:  # a task or model the part does not know: said, not a traceback
        detail = " ".join(str(e).split())[:200]
        parts.missing.append(f"{what}: failed ({type(e).__name__}: {detail}): {command}")


def _summary(parts: Parts, info) -> None:
    from cnncli.models.summary import summarize

    summary = summarize(info.model)
    keep = (
        "name",
        "input_shape",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "macs",
        "activation_bytes",
    )
    parts.summary = {k: summary[k] for k in keep}
    parts.summary["layers"] = [
        {k: row[k] for k in ("name", "type", "output_shape", "params", "macs")}
        for row in summary["layers"]
        if row["depth"] == 0
    ]


def _evaluate(parts: Parts, info, ds: Path, split: str, task: str, out: Path) -> None:
    """evaluate() of the best model on `split`, its pictures in `out`: the confusion
    matrix of a classifier, the scatter and residuals of a regression (issue 14's
    evaluation), and the error sheet of any task."""
    from cnncli.inference.evaluate import evaluate

    plots = {"classify": ("confusion",), "regression": ("scatter", "residuals")}.get(task, ())
    extra: dict[str, Any] = {f"{kind}_png": out / f"{kind}-{split}.png" for kind in plots}
    result = evaluate(
        info,
        ds,
        split=split,
        errors_png=out / f"errors-{split}.png",
        errors_csv=out / f"errors-{split}.csv",
        overwrite=True,
        **extra,
    )
    data = result.to_json()
    data["files"] = {k: Path(v).name for k, v in (data.get("files") or {}).items()}
    write_json(out / f"evaluation-{split}.json", data)
    parts.evaluations[split] = data
    for kind, name in data["files"].items():
        if name.endswith(".png") and (out / name).is_file():
            parts.pictures[f"{kind.removesuffix('_png')}-{split}"] = name


def _activations(parts: Parts, info, dataset, out: Path) -> None:
    from cnncli.datasets.store import iter_records
    from cnncli.drawing.save import save_png
    from cnncli.inference.activations import activations

    split = next((s for s in ("val", "test", "train") if dataset.count(s) > 0), None)
    if split is None:
        return
    files: list[Path] = []  # the pictures saved here
    names: list[str] = []  # the images' own file names
    for rec in iter_records(dataset, split):
        files.append(save_png(rec.image, out / "images" / f"{split}-{len(files) + 1}.png"))
        names.append(Path(str(rec.path)).name)
        if len(files) == SHOWN_IMAGES:
            break
    result = activations(
        info, files, out / "activations", gradcam=True, subfolders=True, overwrite=True
    )
    for img, name in zip(result.images, names, strict=True):
        base = f"activations/{img.out_dir.name}"
        parts.activations.append(
            {
                "image": name,
                "page": f"{base}/index.html",
                "input": f"{base}/input.png",
                "predicted": img.predicted_class,
                "probability": img.probability,
                "gradcam": f"{base}/{img.gradcam}" if img.gradcam else None,
                "grids": [
                    {"name": lo.name, "type": lo.type, "file": f"{base}/{lo.file}"}
                    for lo in shown_layers(img.layers)
                ],
            }
        )


def shown_layers(layers: Sequence[LayerOutput]) -> list:
    """The first SHOWN_LAYERS layers drawn as maps, past the input's own copies (Rescaling,
    Normalization): the convolutions and poolings a reader looks for."""
    skip = ("InputLayer", "Rescaling", "Normalization")
    maps = [lo for lo in layers if lo.csv is None and lo.type not in skip]
    return (maps or list(layers))[:SHOWN_LAYERS]
