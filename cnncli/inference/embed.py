"""`embed`: one vector per image from a layer (the course's 25-value façade flatten vector),
written as a CSV beside the file and class; `clusters=K` groups them with scikit-learn's
KMeans (seeded, n_init fixed), draws one contact sheet per cluster and a 2-D PCA plot
coloured by class. TensorFlow is imported only inside the functions that run the model.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnncli.atomic import atomic_dir, atomic_file
from cnncli.errors import OutputExistsError, UsageError
from cnncli.images import ImageSpec, collect_images, convert_image, load_image

N_INIT = 10  # KMeans restarts: fixed, so a seed gives the same clusters on any sklearn
THUMB = 128  # contact-sheet cell size; thumbnails are kept instead of full images
SHEET_MAX = 64  # images drawn per cluster sheet (the CSV lists them all)
BATCH = 32

Progress = Callable[[int, int], None]


@dataclass
class EmbedResult:
    csv: Path
    layer: str
    files: list[str]
    classes: list[str]
    predicted: list[str]
    vectors: np.ndarray
    conversion: str
    notes: list[str] = field(default_factory=list)
    clusters: np.ndarray | None = None
    cluster_dir: Path | None = None
    cluster_sheets: list[Path] = field(default_factory=list)
    cluster_sizes: list[int] = field(default_factory=list)
    projection: Path | None = None

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
        }


@dataclass
class _Item:
    file: str
    cls: str
    split: str
    pixels: np.ndarray  # converted to the model's spec


def default_embed_layer(layers):
    """The last Flatten layer, else the layer before the head (the last layer)."""
    flats = [li for li in layers if li.type == "Flatten"]
    if flats:
        return flats[-1]
    return layers[-2] if len(layers) >= 2 else layers[-1]


def _is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.json").is_file()


def _count_items(inputs: Sequence) -> int:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and _is_dataset(paths[0]):
        from cnncli.datasets.store import open_dataset

        info = open_dataset(paths[0])
        return sum(info.count(split) for split in info.splits)
    return len(collect_images(paths))


def _iter_items(inputs: Sequence, spec: ImageSpec):
    """Yield _Item for a dataset folder (every split), or image files / folders."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and _is_dataset(paths[0]):
        from cnncli.datasets.store import iter_records, open_dataset

        info = open_dataset(paths[0])
        names = info.class_names
        for split in info.splits:
            for rec in iter_records(info, split):
                pixels = rec.image
                if pixels.shape != spec.shape:  # same conversion function as the build
                    img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
                    pixels = convert_image(img, spec)
                yield _Item(rec.path, names[rec.label], split, pixels)
        return
    for p in paths:
        if _is_dataset(p):
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
        yield _Item(str(f), cls, "", load_image(f, spec))


def embed(
    model,
    inputs: Sequence,
    layer: str | int | None = None,
    out_csv: str | os.PathLike = "vectors.csv",
    clusters: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    unsafe: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH,
) -> EmbedResult:
    """Write one vector per image from `layer` to `out_csv` (file, class, predicted, split,
    [cluster], v0..vN). With `clusters=K`: KMeans(K, random_state=seed, n_init=10), a contact
    sheet per cluster and a PCA plot in `<csv stem>_clusters/`."""
    from cnncli.inference.activations import (
        _as_loaded,
        check_replaceable,
        image_spec_for,
        interpret_output,
        model_notes,
        select_layers,
        trace_model,
    )

    out_csv = Path(out_csv)
    cluster_dir = out_csv.with_name(out_csv.stem + "_clusters")
    if not overwrite:
        for p in (out_csv, cluster_dir) if clusters else (out_csv,):
            if p.exists():
                raise OutputExistsError(p)
    if overwrite and clusters:
        check_replaceable(
            cluster_dir, ["projection.png", "cluster_*.png"], "an embed clusters folder"
        )
    if clusters is not None and clusters < 1:
        raise UsageError(f"--clusters must be at least 1, got {clusters}")
    loaded = _as_loaded(model, unsafe)
    probe = trace_model(loaded.model)
    if layer is None:
        chosen = default_embed_layer(probe.layers)
    else:
        found = select_layers(probe.layers, [str(layer)])
        if len(found) != 1:
            raise UsageError(f"--layer {layer!r} names {len(found)} layers", "name one layer")
        chosen = found[0]
    multi = probe.build([chosen])
    spec, conversion = image_spec_for(loaded, probe)
    scale = np.float32(loaded.metadata.pixel_scale)
    names = loaded.metadata.class_names

    files, classes, splits, predicted, thumbs, vecs = [], [], [], [], [], []
    batch: list[_Item] = []

    def run(batch):
        x = np.stack([it.pixels for it in batch]).astype(np.float32) * scale
        feats, preds = multi(x, training=False)
        feats, preds = np.asarray(feats), np.asarray(preds)
        for it, f, p in zip(batch, feats, preds, strict=True):
            vecs.append(f.reshape(-1))
            predicted.append(interpret_output(p, names)[1])
            files.append(it.file)
            classes.append(it.cls)
            splits.append(it.split)
            if clusters:
                thumb = Image.fromarray(
                    it.pixels[:, :, 0] if it.pixels.shape[2] == 1 else it.pixels
                )
                thumb.thumbnail((THUMB, THUMB))
                thumbs.append(thumb)
        if progress:
            progress(len(files), total)

    total = _count_items(inputs)
    for item in _iter_items(inputs, spec):
        batch.append(item)
        if len(batch) == batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    vectors = np.stack(vecs).astype(np.float32)
    result = EmbedResult(out_csv, chosen.name, files, classes, predicted, vectors, conversion)
    result.notes = model_notes(loaded)

    labels = None
    if clusters:
        if clusters > len(files):
            raise UsageError(
                f"--clusters {clusters} is more than the {len(files)} images", "choose a smaller K"
            )
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=clusters, random_state=seed, n_init=N_INIT).fit_predict(
            vectors.astype(np.float64)
        )
        result.clusters = labels
    _write_csv(out_csv, result, splits, labels, overwrite)
    if clusters:
        _write_clusters(result, cluster_dir, thumbs, labels, clusters, overwrite)
    return result


def _write_csv(path: Path, r: EmbedResult, splits, labels, overwrite: bool) -> None:
    header = ["file", "class", "predicted", "split"]
    if labels is not None:
        header.append("cluster")
    header += [f"v{i}" for i in range(r.dims)]
    with atomic_file(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i in range(r.count):
                row = [r.files[i], r.classes[i], r.predicted[i], splits[i]]
                if labels is not None:
                    row.append(int(labels[i]))
                row += [f"{v:.9g}" for v in r.vectors[i]]  # float32 round-trips with 9 digits
                w.writerow(row)


def _register_fonts() -> str | None:
    """Register the bundled Hangul font(s) with matplotlib; return the family name."""
    from matplotlib import font_manager

    family = None
    for ttf in sorted((Path(__file__).resolve().parent.parent / "fonts").glob("*.ttf")):
        try:
            font_manager.fontManager.addfont(str(ttf))
            family = family or font_manager.FontProperties(fname=str(ttf)).get_name()
        except (OSError, RuntimeError, ValueError):
            continue
    return family


def _write_clusters(r: EmbedResult, folder: Path, thumbs, labels, k: int, overwrite: bool):
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
            sheet.save(tmp / f"cluster_{c:02d}.png", format="PNG")
            r.cluster_sizes.append(len(members))
        _projection_plot(r, labels, tmp / "projection.png")
    r.cluster_dir = folder
    r.cluster_sheets = [folder / f"cluster_{c:02d}.png" for c in range(k)]
    r.projection = folder / "projection.png"


def _projection_plot(r: EmbedResult, labels, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    v = r.vectors.astype(np.float64)
    n_comp = min(2, v.shape[0], v.shape[1])
    xy = PCA(n_components=n_comp).fit_transform(v) if n_comp >= 1 else np.zeros((len(v), 0))
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    family = _register_fonts()
    classes = [c or p for c, p in zip(r.classes, r.predicted, strict=True)]
    markers = "os^Dv<>pP*Xh"
    rc = {"font.family": [family, "DejaVu Sans"]} if family else {}
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        for ci, name in enumerate(sorted(set(classes))):
            idx = [i for i, c in enumerate(classes) if c == name]
            for c in sorted({int(labels[i]) for i in idx}):
                sel = [i for i in idx if labels[i] == c]
                ax.scatter(
                    xy[sel, 0], xy[sel, 1], color=plt.cm.tab10(ci % 10),
                    marker=markers[c % len(markers)], label=f"{name} · cluster {c}",
                )  # fmt: skip
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_title(f"{r.layer}: {r.count} vectors of {r.dims} values (PCA)")
        ax.legend(fontsize="small", loc="best")
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)
