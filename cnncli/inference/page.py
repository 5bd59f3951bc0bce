"""index.html for one image's activations: relative links only, so the folder can be
moved, zipped or opened from the file system."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote


def write_index(out: Path, r, conversion: str, model_path, probs, class_names) -> Path:
    """Write `out/index.html` for one image's result (an ImageActivations): the input, the
    predicted class and every class's probability, Grad-CAM, then each layer's grid with
    links to its files. Links are relative, so the page opens from the file system."""
    e = html.escape
    prob_rows = "".join(
        f"<tr><td>{e(str(name))}</td><td>{p:.4f}</td></tr>"
        for name, p in zip(class_names, probs, strict=True)
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
    return out / "index.html"
