"""`embed`: one vector per image from a layer (the course's 25-value façade flatten vector),
written as a CSV beside the file, its class, and the class and probability predict gives
(the model opened by cnncli.inference.model.open_model, its output read by
cnncli.models.head); `clusters=K` groups them with scikit-learn's
KMeans (seeded, n_init fixed), draws one contact sheet per cluster and a 2-D PCA plot
coloured by class. For a multi-label model the plot is coloured by one label (`color_by`:
has it / has it not), for a regression model by a target's value with a colour bar (the
dataset's value, else the predicted one). TensorFlow is imported only inside the functions
that run the model.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnncli.atomic import atomic_dir, atomic_file, check_replaceable
from cnncli.claims import reading_arg
from cnncli.datasets.store import dataset_folder
from cnncli.errors import OutputExistsError, UsageError
from cnncli.images import Conversions, ImageSpec, collect_images, convert_image, load_image
from cnncli.inference.answers import answers, format_value
from cnncli.inference.model import open_model
from cnncli.inference.trace import select_layers, trace_model
from cnncli.models.head import UNITS_LAYER, outputs_to_probabilities, predicted_classes
from cnncli.progress import Counter, Progress

if TYPE_CHECKING:
    from cnncli.inference.info import ModelInfo

N_INIT = 10  # KMeans restarts: fixed, so a seed gives the same clusters on any sklearn
THUMB = 128  # contact-sheet cell size; thumbnails are kept instead of full images
SHEET_MAX = 64  # images drawn per cluster sheet (the CSV lists them all)
BATCH = 32


@dataclass
class EmbedResult:
    csv: Path
    layer: str
    files: list[str]
    classes: list[str]
    predicted: list[str]  # the class predict gives, per image
    probability: list[float]  # its probability
    splits: list[str]  # the dataset split ("" for image files)
    vectors: np.ndarray
    conversion: str
    notes: list[str] = field(default_factory=list)
    clusters: np.ndarray | None = None
    cluster_dir: Path | None = None
    cluster_sheets: list[Path] = field(default_factory=list)
    cluster_sizes: list[int] = field(default_factory=list)
    projection: Path | None = None
    task: str = "classify"
    color_by: str | None = None  # the label or target the plot is coloured by
    values: np.ndarray | None = None  # (N, L) 0/1 labels or (N, T) values, for the colours
    value_names: list[str] = field(default_factory=list)  # their labels or targets

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dims(self) -> int:
        return int(self.vectors.shape[1])

    def to_json(self) -> dict:
        return {
            "csv": str(self.csv),
            "layer": self.layer,
            "count": self.count,
            "dims": self.dims,
            "conversion": self.conversion,
            "notes": self.notes,
            "clusters": None if self.clusters is None else [int(c) for c in self.clusters],
            "cluster_sheets": [str(p) for p in self.cluster_sheets],
            "cluster_sizes": self.cluster_sizes,
            "projection": str(self.projection) if self.projection else None,
            "images": [
                {
                    "file": self.files[i],
                    "class": self.classes[i],
                    "predicted": self.predicted[i],
                    "probability": self.probability[i],
                    "split": self.splits[i],
                }
                for i in range(self.count)
            ],
        }


@dataclass
class _Item:
    file: str
    cls: str
    split: str
    pixels: np.ndarray  # converted to the model's spec
    label: np.ndarray | None = None  # a multilabel / regression dataset's labels or values


def default_embed_layer(layers: Sequence[Any]) -> Any:
    """The last Flatten layer, else the layer before the head (the last layer; a regression
    model's: its Dense before the de-standardization)."""
    if len(layers) > 2 and layers[-1].name == UNITS_LAYER:
        layers = layers[:-1]
    flats = [li for li in layers if li.type == "Flatten"]
    if flats:
        return flats[-1]
    return layers[-2] if len(layers) >= 2 else layers[-1]


def _count_items(inputs: Sequence) -> int:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and dataset_folder(paths[0]):
        from cnncli.datasets.store import open_dataset

        info = open_dataset(paths[0])
        return sum(info.count(split) for split in info.splits)
    return len(collect_images(paths))


def _iter_items(inputs: Sequence, spec: ImageSpec, changed: Conversions):
    """Yield _Item for a dataset folder (every split), or image files / folders; what the
    conversion changed is counted in `changed`."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and dataset_folder(paths[0]):
        from cnncli.datasets.store import iter_records, open_dataset

        info = open_dataset(paths[0])
        names = info.class_names
        for split in info.splits:
            for rec in iter_records(info, split):
                pixels = rec.image
                if pixels.shape != spec.shape:  # same conversion function as the build
                    img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
                    pixels = convert_image(img, spec, changed)
                else:
                    changed.add([])  # the dataset's records are already the model's size
                if info.task == "classify":
                    yield _Item(rec.path, names[rec.label], split, pixels)
                else:
                    yield _Item(
                        rec.path,
                        _label_text(info, rec.label),
                        split,
                        pixels,
                        np.asarray(rec.label, np.float64),
                    )
        return
    for p in paths:
        if dataset_folder(p):
            raise UsageError(f"{p} is a dataset folder", "give it alone, without other inputs")
    roots = [p for p in paths if p.is_dir()]
    for f in collect_images(paths):
        cls = ""
        for root in roots:  # class folders: DIR/<class>/<image>
            try:
                rel = f.relative_to(root)
            except ValueError:
                continue
            if len(rel.parts) > 1:
                cls = rel.parts[0]
            break
        yield _Item(str(f), cls, "", load_image(f, spec, changed))


def _label_text(info, label) -> str:
    """A multilabel record's labels ("a;b"), a regression record's values ("3.2")."""
    if info.task == "multilabel":
        return ";".join(n for n, v in zip(info.class_names, label, strict=True) if v > 0.5)
    return ";".join(format_value(float(v)) for v in label)


def color_choice(info: ModelInfo, color_by: str | None) -> str | None:
    """--color-by: a label of a multi-label model, a target of a regression model (default:
    its first); a classifier is coloured by class and takes none."""
    names = list(info.class_names)
    if info.task == "classify":
        if color_by is not None:
            raise UsageError(
                "--color-by is for multi-label and regression models", "leave out --color-by"
            )
        return None
    if color_by is None:
        return names[0]
    if color_by not in names:
        what = "label" if info.task == "multilabel" else "target"
        raise UsageError(
            f"--color-by {color_by!r} is not a {what} of the model",
            f"use one of {', '.join(names)}",
        )
    return color_by


@reading_arg("inputs", "cnncli embed", dataset_folder)
def embed(
    model: Any,
    inputs: Sequence,
    layer: str | int | None = None,
    out_csv: str | os.PathLike = "vectors.csv",
    clusters: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    unsafe: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    class_names: str | Sequence[str] | None = None,
    pixel_scale: str | float | None = None,
    color_by: str | None = None,
) -> EmbedResult:
    """Write one vector per image from `layer` to `out_csv` (file, class, predicted,
    probability, split, [cluster], v0..vN). With `clusters=K`: KMeans(K, random_state=seed,
    n_init=10), a contact sheet per cluster and a PCA plot in `<csv stem>_clusters/`.
    `class_names` and `pixel_scale` (--classes, --scale) are as in open_model. `color_by`: the
    label (multi-label model) or target (regression model) the plot is coloured by."""
    out_csv = Path(out_csv)
    cluster_dir = out_csv.with_name(out_csv.stem + "_clusters")
    if not overwrite and out_csv.exists():
        raise OutputExistsError(out_csv)
    if clusters:
        check_replaceable(
            cluster_dir, overwrite, "an embed clusters folder", ["projection.png", "cluster_*.png"]
        )
    if clusters is not None and clusters < 1:
        raise UsageError(f"--clusters must be at least 1, got {clusters}")
    info = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    color_by = color_choice(info, color_by)
    probe = trace_model(info.model)
    if layer is None:
        chosen = default_embed_layer(probe.layers)
    else:
        found = select_layers(probe.layers, [str(layer)])
        if len(found) != 1:
            raise UsageError(f"--layer {layer!r} names {len(found)} layers", "name one layer")
        chosen = found[0]
    multi = probe.build([chosen])
    scale = np.float32(info.pixel_scale)
    counter = Counter(progress, _count_items(inputs))
    counter.start()
    changed = Conversions()
    files, classes, splits, predicted, probability, thumbs = [], [], [], [], [], []
    vecs: list[np.ndarray] = []
    values: list[np.ndarray] = []  # multilabel / regression: the colours' source

    def run(batch: list[_Item]) -> None:
        x = np.stack([it.pixels for it in batch]).astype(np.float32) * scale
        feats, out = multi(x, training=False)
        probs = outputs_to_probabilities(np.asarray(out, np.float64), info.head)
        vecs.extend(np.asarray(feats).reshape(len(batch), -1))
        if info.task != "classify":
            for it, a, p in zip(batch, answers(info, probs), probs, strict=True):
                predicted.append(";".join(a.names) if a.task == "multilabel" else a.text)
                probability.append(a.top)
                known = it.label
                if known is None:  # image files: the model's answer
                    known = (p > info.label_thresholds) if a.task == "multilabel" else p
                values.append(np.asarray(known, np.float64))
        else:
            best = predicted_classes(probs, info.head)
            predicted.extend(info.class_names[int(c)] for c in best)
            probability.extend(float(p[int(c)]) for p, c in zip(probs, best, strict=True))
        for it in batch:
            files.append(it.file)
            classes.append(it.cls)
            splits.append(it.split)
            if clusters:
                thumb = Image.fromarray(
                    it.pixels[:, :, 0] if it.pixels.shape[2] == 1 else it.pixels
                )
                thumb.thumbnail((THUMB, THUMB))
                thumbs.append(thumb)
        counter.add(len(batch))

    batch: list[_Item] = []
    for item in _iter_items(inputs, info.image, changed):
        batch.append(item)
        if len(batch) == batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    result = EmbedResult(
        csv=out_csv,
        layer=chosen.name,
        files=files,
        classes=classes,
        predicted=predicted,
        probability=probability,
        splits=splits,
        vectors=np.stack(vecs).astype(np.float32),
        conversion=info.conversion,
        notes=list(info.notes) + changed.notes(),
        task=info.task,
        color_by=color_by,
        values=np.stack(values) if values else None,
        value_names=list(info.class_names),
    )
    labels = None
    if clusters:
        if clusters > result.count:
            raise UsageError(
                f"--clusters {clusters} is more than the {result.count} images",
                "choose a smaller K",
            )
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=clusters, random_state=seed, n_init=N_INIT).fit_predict(
            result.vectors.astype(np.float64)
        )
        result.clusters = labels
    _write_csv(out_csv, result, labels, overwrite)
    if clusters:
        _write_clusters(result, cluster_dir, thumbs, labels, clusters, overwrite)
    return result


def _write_csv(path: Path, r: EmbedResult, labels, overwrite: bool) -> None:
    header = ["file", "class", "predicted", "probability", "split"]
    if labels is not None:
        header.append("cluster")
    header += [f"v{i}" for i in range(r.dims)]
    with atomic_file(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i in range(r.count):
                p = f"{r.probability[i]:.6f}"
                row: list[object] = [r.files[i], r.classes[i], r.predicted[i], p, r.splits[i]]
                if labels is not None:
                    row.append(int(labels[i]))
                row += [f"{v:.9g}" for v in r.vectors[i]]  # float32 round-trips with 9 digits
                w.writerow(row)


def _write_clusters(r: EmbedResult, folder: Path, thumbs, labels, k: int, overwrite: bool):
    from cnncli.drawing.save import save_png
    from cnncli.drawing.sheets import contact_sheet

    with atomic_dir(folder, overwrite=overwrite) as tmp:
        for c in range(k):
            members = [i for i in range(r.count) if labels[i] == c]
            items = [
                (thumbs[i], f"{Path(r.files[i]).name}\n{r.classes[i] or r.predicted[i]}")
                for i in members[:SHEET_MAX]
            ]
            more = f" (first {SHEET_MAX} shown)" if len(members) > SHEET_MAX else ""
            sheet = contact_sheet(
                items, per_row=8, cell=THUMB, title=f"cluster {c}: {len(members)} images{more}"
            )
            save_png(sheet, tmp / f"cluster_{c:02d}.png")
            r.cluster_sizes.append(len(members))
        _projection_plot(r, labels, tmp / "projection.png")
    r.cluster_dir = folder
    r.cluster_sheets = [folder / f"cluster_{c:02d}.png" for c in range(k)]
    r.projection = folder / "projection.png"


def _projection_plot(r: EmbedResult, labels, path: Path) -> None:
    """The vectors' 2-D PCA, coloured by class and marked by cluster (drawing.plots)."""
    from sklearn.decomposition import PCA

    from cnncli.drawing.plots import plot_projection

    v = r.vectors.astype(np.float64)
    n_comp = min(2, v.shape[0], v.shape[1])
    xy = PCA(n_components=n_comp).fit_transform(v) if n_comp >= 1 else np.zeros((len(v), 0))
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    classes = [c or p for c, p in zip(r.classes, r.predicted, strict=True)]
    title = f"{r.layer}: {r.count} vectors of {r.dims} values (PCA)"
    if r.task == "regression":
        assert r.values is not None and r.color_by is not None  # set for this task
        from cnncli.inference.task_plots import plot_projection_values

        names = r.value_names
        v = r.values[:, names.index(r.color_by)]
        plot_projection_values(
            xy, v, labels, f"{title}, coloured by {r.color_by}", r.color_by, path
        )
        return
    if r.task == "multilabel":
        assert r.values is not None and r.color_by is not None  # set for this task
        i = r.value_names.index(r.color_by)
        classes = [r.color_by if v[i] > 0.5 else f"not {r.color_by}" for v in r.values]
        title += f", coloured by {r.color_by}"
    plot_projection(xy, classes, labels, title, path)
