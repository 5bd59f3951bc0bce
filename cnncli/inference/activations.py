"""Every layer's feature maps for an image: one multi-output model, PNG grids, index.html.

`activations(model, images, out_dir, ...)` converts each image with the same function as the
dataset build and `predict` (cnncli.images.load_image, with the spec stored with the model),
runs ONE Keras model whose outputs are all the chosen layers' outputs (nested models expanded
into their inner layers), and writes for each layer `NN_<layer>.png`: a grid of all its
channels composed with NumPy and coloured through a matplotlib colormap lookup table, with
titles and channel numbers drawn by Pillow (no matplotlib figure per layer). Vector layers
(Flatten, Dense) get a strip of their values and a CSV. `index.html` links everything with
relative paths, so it opens from the file system.

Normalisation (the course's): each channel (x - mean) / std * 64 + 128, clipped to 0..255;
`norm="layer"` uses one mean and std for the whole layer, `norm="global"` one for every
chosen layer of the image. A constant channel (std 0) is drawn flat at 128, never NaN.
"""

from __future__ import annotations

import csv
import html
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from cnncli.atomic import atomic_dir
from cnncli.drawing.grids import (
    MAX_CHANNELS,
    NORMS,
    _save_png,
    activation_grid,
    colormap_lut,
    normalize,
    value_strip,
)
from cnncli.errors import ModelError, UsageError
from cnncli.images import ImageSpec, collect_images, load_image

GROUPS = ("conv", "pool", "dense", "all")
COURSE_NORM = "(x - mean) / std * 64 + 128, clipped to 0..255"

Progress = Callable[[int, int], None]


# --- loading a model ---------------------------------------------------------------------


@dataclass
class ModelMeta:
    class_names: list[str] | None
    image: ImageSpec | None
    pixel_scale: float
    from_cnncli: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    model: object
    metadata: ModelMeta
    path: Path | None


def load_for_inspection(path, unsafe: bool = False) -> Loaded:
    """Load a model file with what is stored with it (cnncli.models.io.load_model)."""
    from cnncli.models.io import load_model

    return _as_loaded(load_model(path, unsafe=unsafe, compile=False))


def _as_loaded(model, unsafe: bool = False) -> Loaded:
    if isinstance(model, Loaded):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_for_inspection(model, unsafe=unsafe)
    if hasattr(model, "model") and hasattr(model, "metadata"):  # cnncli.models.io.LoadedModel
        m = model.metadata
        meta = ModelMeta(
            list(m.class_names) if m.class_names else None,
            m.image,
            float(m.pixel_scale),
            bool(getattr(m, "from_cnncli", False)),
            list(getattr(m, "notes", []) or []),
        )
        return Loaded(model.model, meta, getattr(model, "path", None))
    return Loaded(model, ModelMeta(None, None, 1 / 255, False), None)  # a keras.Model


# --- the layers, traced into one graph --------------------------------------------------


@dataclass
class LayerInfo:
    index: int  # position in the expanded layer list (what --layers indexes)
    name: str  # "conv2d" or, inside a nested model, "inner/conv2d"
    type: str  # class name: Conv2D, MaxPooling2D, ...
    shape: tuple  # output shape without the batch axis

    @property
    def kind(self) -> str:
        if len(self.shape) in (2, 3):
            return "spatial"
        return "vector"

    @property
    def file_stem(self) -> str:
        return f"{self.index:02d}_{re.sub(r'[^0-9A-Za-z_.-]+', '-', self.name)}"

    @property
    def shape_text(self) -> str:
        return "(" + ", ".join(["None"] + [str(d) for d in self.shape]) + ")"


@dataclass
class Probe:
    """The model's input, each layer's symbolic output, and the final output."""

    keras_model: object
    inputs: object
    layers: list[LayerInfo]
    outputs: list  # symbolic output of layers[i]
    final: object  # the model's output

    def select(self, selection: str | Sequence | None) -> list[LayerInfo]:
        return select_layers(self.layers, selection)

    def build(self, chosen: Sequence[LayerInfo]):
        """One Keras model whose outputs are the chosen layers' outputs, then the final output."""
        import keras

        return keras.Model(self.inputs, [self.outputs[li.index] for li in chosen] + [self.final])


def trace_model(model) -> Probe:
    """Call the model on a fresh Input, layer by layer (nested models expanded), recording
    every layer's symbolic output. Works for Sequential models built without an Input."""
    import keras

    shape = _input_shape(model)
    inp = keras.Input(shape=shape[1:], name="image")
    record: list[tuple[str, object, object]] = []
    final = _trace(model, (inp,), {}, record, prefix="", top=True)
    if isinstance(final, (list, tuple)):
        final = final[0]
    layers = [
        LayerInfo(i, name, type(layer).__name__, tuple(_dims(out)))
        for i, (name, layer, out) in enumerate(record)
    ]
    return Probe(model, inp, layers, [out for _, _, out in record], final)


def _dims(tensor) -> list:
    out = tensor[0] if isinstance(tensor, (list, tuple)) else tensor
    return [None if d is None else int(d) for d in tuple(out.shape)[1:]]


def _input_shape(model) -> tuple:
    try:
        inputs = model.inputs
        if inputs:
            if len(inputs) != 1:
                raise ModelError(
                    f"the model has {len(inputs)} inputs; cnncli shows one-image models"
                )
            return tuple(inputs[0].shape)
    except (AttributeError, ValueError):
        pass
    for attr in ("input_shape", "_build_shapes_dict"):
        try:
            value = getattr(model, attr)
        except (AttributeError, ValueError):
            continue
        if isinstance(value, dict) and value:
            value = next(iter(value.values()))
        if value:
            return tuple(value)
    raise ModelError(
        "the model has no known input shape (a Sequential model never built)",
        "build it on an Input or call it once on data before saving",
    )


def _is_functional(layer) -> bool:
    return hasattr(layer, "_run_through_graph") and hasattr(layer, "_nodes_by_depth")


def _trace(layer, args, kwargs, record, prefix: str, top: bool = False):
    import keras

    inner = "" if top else f"{prefix}{layer.name}/"
    if isinstance(layer, keras.Sequential):
        x = args[0]
        for sub in layer.layers:
            if isinstance(sub, keras.layers.InputLayer):
                continue
            x = _trace(sub, (x,), {}, record, inner)
        return x
    if isinstance(layer, keras.Model) and _is_functional(layer):

        def op_fn(op):
            return lambda *a, **k: _trace(op, a, k, record, inner)

        return layer._run_through_graph(args[0], operation_fn=op_fn)
    if isinstance(layer, keras.layers.InputLayer):
        return args[0]
    out = layer(*args, **kwargs)
    record.append((f"{prefix}{layer.name}", layer, out))
    return out


def layer_group(info: LayerInfo) -> set[str]:
    t = info.type
    groups = {"all"}
    if "Conv" in t:
        groups.add("conv")
    if "Pool" in t:
        groups.add("pool")
    if t in ("Dense", "Flatten", "EinsumDense"):
        groups.add("dense")
    return groups


def default_layers(layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    """Every layer with spatial output, plus Flatten and Dense layers."""
    return [li for li in layers if li.kind == "spatial" or li.type in ("Flatten", "Dense")]


def select_layers(layers: Sequence[LayerInfo], selection) -> list[LayerInfo]:
    """`selection`: None (the default set), or names, indexes and groups (conv, pool,
    dense, all), as a comma-separated string or a list. Returned in layer order."""
    if selection is None or (isinstance(selection, str) and not selection.strip()):
        return default_layers(layers)
    tokens = selection.split(",") if isinstance(selection, str) else list(selection)
    chosen: set[int] = set()
    by_name = {}
    for li in layers:
        by_name.setdefault(li.name, li.index)
        by_name.setdefault(li.name.rsplit("/", 1)[-1], li.index)
    for raw in tokens:
        token = str(raw).strip()
        if not token:
            continue
        if token.lower() in GROUPS:
            chosen.update(li.index for li in layers if token.lower() in layer_group(li))
        elif token in by_name:
            chosen.add(by_name[token])
        elif re.fullmatch(r"-?\d+", token):
            i = int(token)
            if not -len(layers) <= i < len(layers):
                raise UsageError(
                    f"--layers: index {i} is out of range",
                    f"the model has layers 0 to {len(layers) - 1}",
                )
            chosen.add(layers[i].index)
        else:
            names = ", ".join(li.name for li in layers[:30])
            raise UsageError(
                f"--layers: no layer or group named {token!r}",
                f"use names ({names}), indexes, or {', '.join(GROUPS)}",
            )
    return [li for li in layers if li.index in chosen]


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


@dataclass
class ActivationsResult:
    images: list[ImageActivations]
    conversion: str
    notes: list[str]


def image_spec_for(loaded: Loaded, probe: Probe) -> tuple[ImageSpec, str]:
    """The conversion: what is stored with the model, else what its input shape implies.
    Returns the spec and a sentence stating it (and the pixel scale)."""
    meta = loaded.metadata
    if meta.image is not None and meta.from_cnncli:
        spec, source = meta.image, "stored with the model"
    else:
        spec = meta.image or ImageSpec.for_input_shape(tuple(probe.inputs.shape))
        source = "from the model's input shape"
    text = f"images converted to {spec.describe()} ({source}), pixels x {meta.pixel_scale:.6g}"
    return spec, text


def model_notes(loaded: Loaded) -> list[str]:
    """The defaults stated for a model saved elsewhere, less the conversion (stated apart)."""
    return [n for n in loaded.metadata.notes if not n.startswith("image conversion:")]


def interpret_output(pred: np.ndarray, class_names: Sequence[str] | None):
    """(class index, class name, probability, probabilities) from one output vector."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    if p.size == 1:  # one sigmoid unit: the probability of class 1
        prob1 = float(p[0])
        if not 0.0 <= prob1 <= 1.0:
            prob1 = float(1 / (1 + np.exp(-prob1)))
        probs = np.array([1 - prob1, prob1])
    else:
        probs = p
        if p.min() < 0 or p.max() > 1 or abs(p.sum() - 1) > 1e-3:  # logits
            e = np.exp(p - p.max())
            probs = e / e.sum()
    idx = int(np.argmax(probs))
    names = list(class_names) if class_names else [str(i) for i in range(probs.size)]
    name = names[idx] if idx < len(names) else str(idx)
    return idx, name, float(probs[idx]), probs


def _class_index(value, class_names, n_classes: int) -> int:
    names = list(class_names) if class_names else [str(i) for i in range(n_classes)]
    if isinstance(value, str) and value in names:
        return names.index(value)
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"--class {value!r} is not a class", f"use one of {', '.join(names)}"
        ) from None
    if not 0 <= i < n_classes:
        raise UsageError(
            f"--class {i} is out of range", f"the model has classes 0 to {n_classes - 1}"
        )
    return i


def gradcam_target(probe: Probe) -> LayerInfo:
    """The last convolutional layer with spatial output (else the last spatial layer)."""
    spatial = [li for li in probe.layers if len(li.shape) == 3]
    convs = [li for li in spatial if "Conv" in li.type]
    if not (convs or spatial):
        raise UsageError("--gradcam needs a layer with spatial output", "the model has none")
    return (convs or spatial)[-1]


def _class_score(pred, class_index: int):
    if pred.shape[-1] == 1:
        return pred[:, 0] if class_index == 1 else 1.0 - pred[:, 0]
    return pred[:, class_index]


def resize_map(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D map resized bilinearly (TensorFlow's resize, half-pixel centres)."""
    import tensorflow as tf

    out = tf.image.resize(np.asarray(cam, np.float32)[None, :, :, None], (height, width))
    return out.numpy()[0, :, :, 0]


def _gradcam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    base = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)
    heat = colormap_lut("jet")[np.clip(cam * 255, 0, 255).astype(np.uint8)]
    mixed = base.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha
    return Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8))


def check_replaceable(folder: Path, markers: Sequence[str], what: str) -> None:
    """Refuse to replace a folder that is not an earlier output of this command (it has
    none of `markers`), so --overwrite can never delete an unrelated folder."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder", "choose another output")
    if any(folder.iterdir()) and not any(any(folder.glob(m)) for m in markers):
        raise UsageError(
            f"{folder} is not empty and is not {what}, so --overwrite will not replace it",
            "choose another output folder",
        )


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
    model,
    images: Sequence,
    out_dir,
    layers=None,
    per_row: int = 16,
    cmap: str = "viridis",
    norm: str = "channel",
    raw: bool = False,
    gradcam: bool = False,
    class_index=None,
    max_channels: int = MAX_CHANNELS,
    progress: Progress | None = None,
    subfolders: bool | None = None,
    overwrite: bool = False,
    unsafe: bool = False,
) -> ActivationsResult:
    """Write each chosen layer's maps for each image (see the module docstring).

    `model`: a path, a cnncli LoadedModel or a keras.Model. `images`: image files or folders.
    Output goes to `out_dir` for one image, else to `out_dir/<image name>/`
    (`subfolders=True` forces the subfolder). Existing folders are refused unless `overwrite`.
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
    loaded = _as_loaded(model, unsafe)
    probe = trace_model(loaded.model)
    chosen = probe.select(layers)
    if not chosen:
        raise UsageError("--layers selects no layer", "try --layers all")
    target = gradcam_target(probe) if gradcam else None
    outputs = list(chosen) + ([target] if target is not None else [])
    multi = probe.build(outputs)
    spec, conversion = image_spec_for(loaded, probe)
    class_names = loaded.metadata.class_names
    notes = model_notes(loaded)
    base = Path(out_dir)
    if subfolders is None:
        subfolders = len(files) > 1
    names = _unique_names(files)
    results = []
    for done, (path, name) in enumerate(zip(files, names, strict=True)):
        folder = base / name if subfolders else base
        if overwrite:
            check_replaceable(folder, ["index.html"], "an activations folder (no index.html)")
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            res = _one_image(
                multi, chosen, target, path, spec, loaded.metadata.pixel_scale, class_names,
                tmp, per_row, cmap, norm, raw, class_index, max_channels, conversion,
                loaded.path,
            )  # fmt: skip
        res.out_dir = folder
        results.append(res)
        if progress:
            progress(done + 1, len(files))
    for li in chosen:
        if len(li.shape) == 3 and li.shape[2] > max_channels:
            notes.append(
                f"{li.name} has {li.shape[2]} channels: the grid shows the first {max_channels}"
            )
    return ActivationsResult(results, conversion, notes)


def _forward(multi, x, n_chosen: int, target_pos: int | None, class_index, class_names):
    """Run the multi-output model once; with Grad-CAM, under a GradientTape."""
    if target_pos is None:
        outs = multi(x, training=False)
        return [np.asarray(o) for o in outs], None, None
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outs = multi(tf.convert_to_tensor(x), training=False)
        pred = outs[-1]
        n_out = int(pred.shape[-1])
        if class_index is None:
            ci = interpret_output(np.asarray(pred)[0], class_names)[0]
        else:
            ci = _class_index(class_index, class_names, max(2, n_out) if n_out == 1 else n_out)
        score = _class_score(pred, ci)
    conv = outs[target_pos]
    grads = tape.gradient(score, conv)
    cam = _cam_from(np.asarray(conv)[0], np.asarray(grads)[0])
    return [np.asarray(o) for o in outs], cam, ci


def _cam_from(conv: np.ndarray, grads: np.ndarray) -> np.ndarray:
    weights = grads.mean(axis=(0, 1))
    cam = np.maximum((conv * weights).sum(axis=-1), 0)
    top = cam.max()
    return (cam / top if top > 0 else cam).astype(np.float32)


def _one_image(
    multi, chosen, target, path, spec, scale, class_names, out, per_row, cmap, norm, raw,
    class_index, max_channels, conversion, model_path,
) -> ImageActivations:  # fmt: skip
    pixels = load_image(path, spec)
    x = (pixels.astype(np.float32) * np.float32(scale))[None]
    target_pos = len(chosen) if target is not None else None
    outs, cam, ci = _forward(multi, x, len(chosen), target_pos, class_index, class_names)
    idx, cname, prob, probs = interpret_output(outs[-1][0], class_names)
    _save_png(
        Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels), out / "input.png"
    )
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
        if li.kind == "spatial":
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
            title.append(f"norm: {vnorm} ({COURSE_NORM}) · {vec.size} values")
            img = value_strip(vec, title, per_row, cmap, norm, stats)
            csv_name = f"{li.file_stem}.csv"
            with open(out / csv_name, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["index", "value"])
                w.writerows((i, repr(float(v))) for i, v in enumerate(vec))
        png = f"{li.file_stem}.png"
        _save_png(img, out / png)
        if raw:
            npy_name = f"{li.file_stem}.npy"
            np.save(out / npy_name, a)
        rows.append(
            LayerOutput(li.index, li.name, li.type, li.shape_text, png, csv_name, npy_name, note)
        )
    result = ImageActivations(Path(path), out, rows, cname, idx, prob)
    if cam is not None:
        full = resize_map(cam, pixels.shape[0], pixels.shape[1])
        _save_png(_gradcam_overlay(pixels, full), out / "gradcam.png")
        if raw:
            np.save(out / "gradcam.npy", full)
        names = list(class_names) if class_names else [str(i) for i in range(max(2, probs.size))]
        result.gradcam = "gradcam.png"
        result.gradcam_layer = target.name
        result.gradcam_class = names[ci] if ci < len(names) else str(ci)
        result.gradcam_map = cam
    _write_index(out, result, conversion, model_path, probs, class_names)
    return result


def _write_index(out: Path, r: ImageActivations, conversion, model_path, probs, class_names):
    e = html.escape
    names = list(class_names) if class_names else [str(i) for i in range(probs.size)]
    prob_rows = "".join(
        f"<tr><td>{e(str(names[i]) if i < len(names) else str(i))}</td><td>{p:.4f}</td></tr>"
        for i, p in enumerate(probs)
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cnncli activations: {e(r.image.name)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:100%}"
        "img{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}"
        "section{margin:1.5em 0}td{padding:0 .6em}</style></head><body>",
        f"<h1>Activations of {e(r.image.name)}</h1>",
        f"<p>Model: {e(str(model_path.name) if model_path else 'in memory')}</p>",
        f"<p>Conversion: {e(conversion)}</p>",
        '<section id="input"><h2>Input</h2>',
        f'<img src="input.png" alt="input image {e(r.image.name)}">',
        f"<p>Predicted class: <b>{e(r.predicted_class)}</b> (probability {r.probability:.4f})</p>",
        f"<table><tr><th>class</th><th>probability</th></tr>{prob_rows}</table></section>",
    ]
    if r.gradcam:
        parts.append(
            f'<section id="gradcam"><h2>Grad-CAM: class {e(str(r.gradcam_class))}, '
            f"layer {e(str(r.gradcam_layer))}</h2>"
            f'<img src="{quote(r.gradcam)}" alt="Grad-CAM heatmap"></section>'
        )
    parts.append("<h2>Layers</h2>")
    for lo in r.layers:
        links = [f'<a href="{quote(lo.file)}">PNG</a>']
        if lo.csv:
            links.append(f'<a href="{quote(lo.csv)}">CSV</a>')
        if lo.npy:
            links.append(f'<a href="{quote(lo.npy)}">NPY</a>')
        note = f" ({e(lo.note)})" if lo.note else ""
        parts.append(
            f'<section id="layer-{lo.index}"><h3>{lo.index:02d} {e(lo.name)} · {e(lo.type)} · '
            f"output {e(lo.shape)}{note}</h3><p>{' · '.join(links)}</p>"
            f'<img src="{quote(lo.file)}" alt="{e(lo.name)}" loading="lazy"></section>'
        )
    parts.append("</body></html>\n")
    (out / "index.html").write_text("\n".join(parts), encoding="utf-8")


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
                "gradcam": str(r.out_dir / r.gradcam) if r.gradcam else None,
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
    "activations",
    "activation_grid",
    "value_strip",
    "normalize",
    "trace_model",
    "select_layers",
    "load_for_inspection",
    "interpret_output",
    "resize_map",
]
