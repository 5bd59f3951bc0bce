"""index.html for one image's activations: relative links only, so the folder can be
moved, zipped or opened from the file system; the page itself is made by
cnncli.drawing.html (the bundled Hangul font embedded, `lang` from the content)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cnncli.drawing.html import write_page
from cnncli.models.head import output_word

if TYPE_CHECKING:
    import numpy as np


def scale_note(scale: int, height: int, width: int) -> str:
    """ "shown at 8x (nearest neighbour; the model sees 28x28 pixels)", or "" at 1x."""
    if scale <= 1:
        return ""
    return f"shown at {scale}x (nearest neighbour; the model sees {width}x{height} pixels)"


def write_index(
    out: Path,
    r: Any,
    conversion: str,
    model_path: Path | None,
    probs: np.ndarray,
    class_names: Sequence[str],
) -> Path:
    """Write `out/index.html` for one image's result (an ImageActivations): the input, the
    predicted class and every class's probability, Grad-CAM, then each layer's grid with
    links to its files. Links are relative, so the page opens from the file system."""
    e = html.escape
    task = getattr(r, "task", "classify")
    prob_rows = "".join(
        f"<tr><td>{e(str(name))}</td><td>{p:.4f}</td></tr>"
        if task != "regression"
        else f"<tr><td>{e(str(name))}</td><td>{p:.6g}</td></tr>"
        for name, p in zip(class_names, probs, strict=True)
    )
    said = {
        "classify": f"Predicted class: <b>{e(r.predicted_class)}</b> (probability "
        f"{r.probability:.4f})",
        "multilabel": f"Predicted labels (above their thresholds): <b>{e(r.predicted_class)}</b>",
        "regression": f"Predicted values: <b>{e(r.predicted_class)}</b>",
    }[task]
    head = {
        "classify": "class</th><th>probability",
        "multilabel": "label</th><th>probability",
        "regression": "target</th><th>value",
    }[task]
    shown = scale_note(r.display_scale, *r.input_size)
    shown = f'<p class="scale">{e(shown)}</p>' if shown else ""
    parts = [
        f"<h1>Activations of {e(r.image.name)}</h1>",
        f"<p>Model: {e(str(model_path.name) if model_path else 'in memory')}</p>",
        f"<p>Conversion: {e(conversion)}</p>",
        '<section id="input"><h2>Input</h2>',
        f'<img src="input.png" alt="input image {e(r.image.name)}">{shown}',
        f"<p>{said}</p>",
        f'<table id="probabilities"><tr><th>{head}</th></tr>{prob_rows}</table></section>',
    ]
    if r.gradcam:
        parts.append(
            f'<section id="gradcam"><h2>Grad-CAM: {output_word(task)} '
            f"{e(str(r.gradcam_class))}, "
            f"layer {e(str(r.gradcam_layer))}</h2>"
            f'<img src="{quote(r.gradcam)}" alt="Grad-CAM heatmap">{shown}</section>'
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
    css = ".scale{color:#555;font-size:90%;margin:.2em 0}"
    title = f"cnncli activations: {r.image.name}"
    return write_page(out / "index.html", title, "\n".join(parts), css)
