"""Every layer's feature maps for an image: one multi-output model, PNG grids, index.html.

`activations(model, images, out_dir, ...)` converts each image with the same function as the
dataset build and `predict` (cnncli.images.load_image, with the spec stored with the model),
runs ONE Keras model whose outputs are all the chosen layers' outputs (nested models expanded
into their inner layers), and writes for each layer `NN_<layer>.png`: a grid of all its
channels composed with NumPy and coloured through a matplotlib colormap lookup table, with
titles and channel numbers drawn by Pillow (no matplotlib figure per layer). Vector layers
(Flatten, Dense) get a strip of their values and a CSV. `index.html` links everything with
relative paths, so it opens from the file system.

The model is opened by cnncli.inference.model.open_model and traced by
cnncli.inference.trace; the predicted class and probability are read by cnncli.models.head,
as predict, evaluate and embed read them. Grad-CAM: cnncli.inference.gradcam; the page:
cnncli.inference.page.

Normalisation (the course's): each channel (x - mean) / std * 64 + 128, clipped to 0..255;
`norm="layer"` uses one mean and std for the whole layer, `norm="global"` one for every
chosen layer of the image. A constant channel (std 0) is drawn flat at 128, never NaN.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.atomic import atomic_dir, check_replaceable
from cnncli.drawing.grids import (
    MAX_CHANNELS,
    MIN_PICTURE,
    NORMS,
    activation_grid,
    colormap_lut,
    display_factor,
    enlarge,
    value_strip,
)
from cnncli.drawing.save import save_png
from cnncli.errors import UsageError
from cnncli.images import Conversions, collect_images, load_image
from cnncli.inference.answers import answers
from cnncli.inference.gradcam import (
    forward_with_gradcam,
    gradcam_overlay,
    gradcam_target,
    parse_class,
    resize_map,
)
from cnncli.inference.info import ModelInfo
from cnncli.inference.model import open_model
from cnncli.inference.page import write_index
from cnncli.inference.trace import LayerInfo, trace_model
from cnncli.models.head import outputs_to_probabilities, predicted_classes
from cnncli.progress import Counter, Progress

COURSE_NORM = "(x - mean) / std * 64 + 128, clipped to 0..255"


# --- the whole job -----------------------------------------------------------------------


@dataclass
class LayerOutput:
    index: int
    name: str
    type: str
    shape: str
    file: str
    csv: str | None = None
    npy: str | None = None
    note: str | None = None


@dataclass
class ImageActivations:
    image: Path
    out_dir: Path
    layers: list[LayerOutput]
    predicted_class: str
    predicted_index: int
    probability: float
    gradcam: str | None = None
    gradcam_layer: str | None = None
    gradcam_class: str | None = None
    gradcam_map: np.ndarray | None = field(default=None, repr=False)  # at the conv's size
    input_size: tuple[int, int] = (0, 0)  # (height, width) the model sees
    display_scale: int = 1  # input.png and gradcam.png are enlarged this many times
    # multilabel: predicted_class is the labels above their thresholds ("a 0.93, b 0.71"),
    # regression the values ("brightness 123.4"); probability the first one's
    task: str = "classify"
    thresholds: list[float] | None = None


@dataclass(frozen=True)
class GridOptions:
    """How each layer is drawn and what is written beside it."""

    per_row: int = 16
    cmap: str = "viridis"
    norm: str = "channel"
    raw: bool = False
    max_channels: int = MAX_CHANNELS


@dataclass
class ActivationsResult:
    images: list[ImageActivations]
    conversion: str
    notes: list[str]


def _unique_names(paths: Sequence[Path]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = p.stem or "image"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        names.append(stem if n == 0 else f"{stem}_{n + 1}")
    return names


def activations(
    model: Any,
    images: Sequence,
    out_dir: str | os.PathLike | None = None,
    layers: str | Sequence[str | int] | None = None,
    per_row: int = 16,
    cmap: str = "viridis",
    norm: str = "channel",
    raw: bool = False,
    gradcam: bool = False,
    class_index: str | int | None = None,
    max_channels: int = MAX_CHANNELS,
    progress: Progress | None = None,
    subfolders: bool | None = None,
    overwrite: bool = False,
    unsafe: bool = False,
    class_names: str | Sequence[str] | None = None,
    pixel_scale: str | float | None = None,
) -> ActivationsResult:
    """Write each chosen layer's maps for each image (see the module docstring).

    `model`: a path, a LoadedModel, a ModelInfo or a keras.Model (read by open_model, the
    class and probability as predict gives them). `images`: image files or folders.
    Output goes to `out_dir` for one image, else to `out_dir/<image name>/`
    (`subfolders=True` forces the subfolder); without `out_dir`, to
    `activations/<image name>/` here. Existing folders are refused unless `overwrite`.
    `class_names` and `pixel_scale` (--classes, --scale) are as in open_model.
    """
    if norm not in NORMS:
        raise UsageError(f"unknown --norm {norm!r}", f"use one of {', '.join(NORMS)}")
    if per_row < 1:
        raise UsageError(f"--per-row must be at least 1, got {per_row}")
    if max_channels < 1:
        raise UsageError(f"max_channels must be at least 1, got {max_channels}")
    if class_index is not None and not gradcam:
        raise UsageError(
            "--class chooses the Grad-CAM class", "add --gradcam, or leave --class out"
        )
    colormap_lut(cmap)  # an unknown colormap fails before any work
    files = collect_images(images)
    if out_dir is None:
        out_dir, subfolders = "activations", True
    base = Path(out_dir)
    if subfolders is None:
        subfolders = len(files) > 1
    folders = [base / name if subfolders else base for name in _unique_names(files)]
    for folder in folders:  # refused before the model (and TensorFlow) loads
        check_replaceable(folder, overwrite, "an activations folder", "index.html")
    info = open_model(model, unsafe=unsafe, class_names=class_names, pixel_scale=pixel_scale)
    probe = trace_model(info.model)
    chosen = probe.select(layers)
    if not chosen:
        raise UsageError("--layers selects no layer", "try --layers all")
    target = gradcam_target(probe) if gradcam else None
    if class_index is not None:
        class_index = parse_class(class_index, info.class_names)
    multi = probe.build(list(chosen) + ([target] if target is not None else []))
    options = GridOptions(per_row, cmap, norm, raw, max_channels)
    counter = Counter(progress, len(files))
    results, changed = [], Conversions()
    for path, folder in zip(files, folders, strict=True):
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            res = _one_image(info, multi, chosen, target, path, tmp, options, class_index, changed)
        res.out_dir = folder
        results.append(res)
        counter.add()
    notes = list(info.notes) + changed.notes()
    skipped = [li.name for li in probe.layers if li.augmentation and li not in chosen]
    if skipped and layers is None:
        notes.append(
            f"augmentation layers left out (the identity outside training): {', '.join(skipped)}"
        )
    for li in chosen:
        if li.draws_maps and len(li.shape) == 3 and li.shape[2] > max_channels:
            notes.append(
                f"{li.name} has {li.shape[2]} channels: the grid shows the first {max_channels}"
            )
    return ActivationsResult(results, info.conversion, notes)


def _one_image(
    info: ModelInfo,
    multi,
    chosen: Sequence[LayerInfo],
    target: LayerInfo | None,
    path: Path,
    out: Path,
    options: GridOptions,
    class_index: int | None,
    changed: Conversions | None = None,
) -> ImageActivations:
    """One forward pass (under a GradientTape with Grad-CAM), then the files of one image."""
    pixels = load_image(path, info.image, changed)
    x = (pixels.astype(np.float32) * np.float32(info.pixel_scale))[None]
    if target is None:
        outs, cam, ci = [np.asarray(o) for o in multi(x, training=False)], None, None
    else:
        outs, cam, ci = forward_with_gradcam(multi, x, len(chosen), class_index, info.head)
    probs = outputs_to_probabilities(np.asarray(outs[-1], np.float64), info.head)
    idx = int(predicted_classes(probs, info.head)[0])
    said = answers(info, probs)[0] if info.task != "classify" else None
    probs = probs[0]
    per_row, cmap, norm = options.per_row, options.cmap, options.norm
    raw, max_channels = options.raw, options.max_channels
    scale = display_factor(pixels.shape[0], pixels.shape[1], MIN_PICTURE)  # small models
    save_png(enlarge(pixels, scale), out / "input.png", compress_level=1)  # atomic folder
    stats = None
    if norm == "global":
        flat = np.concatenate([np.asarray(o, np.float64).ravel() for o in outs[: len(chosen)]])
        stats = (flat.mean(), flat.std())
    rows = []
    for li, act in zip(chosen, outs[: len(chosen)], strict=True):
        a = act[0]
        note = None
        title = [f"{li.index:02d} {li.name} · {li.type} · output {li.shape_text}"]
        csv_name = npy_name = None
        if li.draws_maps:
            c = a.shape[-1]
            shown = min(c, max_channels)
            extra = f" · first {shown} of {c} channels (capped)" if c > shown else ""
            if c > shown:
                note = f"first {shown} of {c} channels"
            title.append(f"norm: {norm} ({COURSE_NORM}) · cmap {cmap}{extra}")
            img = activation_grid(a, title, per_row, cmap, norm, stats, max_channels)
        else:
            vec = a.ravel()
            vnorm = "layer" if norm == "channel" else norm
            if li.kind == "spatial":  # 1x1 maps: one value per channel, no picture to draw
                dims = "x".join(str(d) for d in li.shape[:-1])
                note = f"{dims} maps: one value per channel, drawn as values"
                title.append(f"{note} (channel i = value i)")
            title.append(f"norm: {vnorm} ({COURSE_NORM}) · {vec.size} values")
            img = value_strip(vec, title, per_row, cmap, norm, stats)
            csv_name = f"{li.file_stem}.csv"
            with open(out / csv_name, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["index", "value"])
                w.writerows((i, repr(float(v))) for i, v in enumerate(vec))
        png = f"{li.file_stem}.png"
        save_png(img, out / png, compress_level=1)
        if raw:
            npy_name = f"{li.file_stem}.npy"
            np.save(out / npy_name, a)
        rows.append(
            LayerOutput(li.index, li.name, li.type, li.shape_text, png, csv_name, npy_name, note)
        )
    result = ImageActivations(Path(path), out, rows, info.class_names[idx], idx, float(probs[idx]))
    if said is not None:  # multilabel, regression: what the model says, in words
        result.predicted_class, result.task = said.text, info.task
        result.thresholds = info.label_thresholds if info.task == "multilabel" else None
    result.input_size, result.display_scale = (pixels.shape[0], pixels.shape[1]), scale
    if target is not None and cam is not None and ci is not None:  # set together
        full = resize_map(cam, pixels.shape[0], pixels.shape[1])
        overlay = np.asarray(gradcam_overlay(pixels, full))
        save_png(enlarge(overlay, scale), out / "gradcam.png", compress_level=1)
        if raw:
            np.save(out / "gradcam.npy", full)
        result.gradcam = "gradcam.png"
        result.gradcam_layer = target.name
        result.gradcam_class = info.class_names[ci]
        result.gradcam_map = cam
    write_index(out, result, info.conversion, info.path, probs, info.class_names)
    return result


def result_rows(r: ImageActivations) -> list[tuple]:
    """Table rows for the terminal: layer, type, output shape, file written."""
    return [(lo.index, lo.name, lo.type, lo.shape, str(r.out_dir / lo.file)) for lo in r.layers]


def to_json(result: ActivationsResult) -> dict:
    return {
        "conversion": result.conversion,
        "notes": result.notes,
        "images": [
            {
                "image": str(r.image),
                "out_dir": str(r.out_dir),
                "predicted_class": r.predicted_class,
                "probability": r.probability,
                "task": r.task,
                "gradcam": str(r.out_dir / r.gradcam) if r.gradcam else None,
                "display_scale": r.display_scale,
                "layers": [
                    {
                        "index": lo.index,
                        "name": lo.name,
                        "type": lo.type,
                        "output_shape": lo.shape,
                        "file": str(r.out_dir / lo.file),
                        "csv": str(r.out_dir / lo.csv) if lo.csv else None,
                        "npy": str(r.out_dir / lo.npy) if lo.npy else None,
                    }
                    for lo in r.layers
                ],
            }
            for r in result.images
        ],
    }


__all__ = [
    "ActivationsResult",
    "GridOptions",
    "ImageActivations",
    "LayerOutput",
    "activations",
    "result_rows",
    "to_json",
]
