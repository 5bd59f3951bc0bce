"""The HTML of a run's report page and of a comparison page. The page itself (the bundled
Hangul font embedded, `lang`) is cnncli.drawing.html's; here: the body, relative links only,
and CSS that reads at a phone's width and a desktop's (wide tables scroll inside their box,
pictures shrink to the screen) and prints (no scrolling boxes, sections kept whole)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from cnncli.atomic import write_text
from cnncli.drawing.html import html_page
from cnncli.runs.compute import Parts
from cnncli.runs.record import RunRecord
from cnncli.runs.table import (
    RunsTable,
    best_text,
    cell_text,
    epochs_text,
    flat_options,
    status_text,
)
from cnncli.safe_files import plain_name
from cnncli.training.rundir import history_sample

e = html.escape
MAX_CELL = 300  # characters of a value shown in a cell (run.json can hold long strings)
MAX_HISTORY_ROWS = 200  # epochs in a page's history table (all of them: history.csv)
MAX_ITEMS = 1000  # rows of a per-class table
CSS = (
    "body{line-height:1.4;color:#222}main{max-width:72em;margin:auto}"
    "h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em}"
    ".wide{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border-bottom:1px solid #e4e4e4;padding:.2em .6em;vertical-align:top}"
    "th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".pics{display:flex;flex-wrap:wrap;gap:1em}.pics figure{margin:0;flex:1 1 18em;min-width:0}"
    "figure{margin:.5em 0}.wide td{white-space:nowrap}.pairs td{white-space:normal}"
    ".pairs td+td{overflow-wrap:anywhere}figcaption{font-size:90%;color:#555}"
    "img.chart{image-rendering:auto}"
    ".missing li{margin:.3em 0}code{background:#f4f4f4;padding:0 .2em;word-break:break-all}"
    ".status-finished{color:#1a7f37}.status-failed{color:#c62828}"
    ".status-interrupted{color:#b26a00}.status-running{color:#1565c0}"
    "@media (max-width:40em){body{margin:.6em}h1{font-size:1.3em}td,th{padding:.15em .3em}}"
    "@media print{body{margin:0}.wide{overflow:visible}section,figure{break-inside:avoid}"
    "a{color:inherit;text-decoration:none}img{max-width:100%!important}}"
)


def write(path: Path, title: str, body: str) -> Path:
    """Write the page: cnncli.drawing.html's document (font, viewport) with this CSS."""
    return write_text(path, html_page(title, f"<main>\n{body}\n</main>", CSS))


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence],
    numeric: Sequence[str] = (),
    id_: str = "",
    raw: Sequence[str] = (),
    header: bool = True,
) -> str:
    """An HTML table in a scrolling box; cells escaped except the `raw` columns (links)."""
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    head = f"<tr>{head}</tr>" if header else ""
    body = []
    for row in rows:
        cells = []
        for c, v in zip(columns, row, strict=True):
            cls = ' class="num"' if c in numeric else ""
            cells.append(f"<td{cls}>{v if c in raw else e(clip(cell_text(v)))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{id_}"' if id_ else ' class="pairs"' if not header else ""
    return f'<div class="wide"><table{ident}>{head}{"".join(body)}</table></div>'


def clip(text: str, most: int = MAX_CELL) -> str:
    """`text`, or its first `most` characters and how long it was."""
    return text if len(text) <= most else f"{text[:most]}… ({len(text):,} characters)"


def href(name: str) -> str | None:
    """The quoted link to `name`, a file in the page's folder; None when `name` is not a
    plain relative name (an absolute path, `../`, `//host/`, `javascript:`): a page links
    only inside its folder."""
    return quote(name) if plain_name(name) else None


def figure(src: str, caption: str, chart: bool = False) -> str:
    link = href(src)
    if link is None:
        return ""
    cls = ' class="chart"' if chart else ""
    return (
        f'<figure><a href="{link}"><img src="{link}"{cls} alt="{e(caption)}">'
        f"</a><figcaption>{e(caption)}</figcaption></figure>"
    )


def pairs(items: Iterable[Sequence], raw: bool = False) -> str:
    """A two-column table of names and values, without a header row."""
    return table(["name", "value"], list(items), raw=["value"] if raw else (), header=False)


def missing_list(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = []
    for line in lines:
        what, _, command = line.rpartition(": cnncli ")
        what, command = clip(what), clip(command)
        text = f"{e(what)}: <code>cnncli {e(command)}</code>" if what else e(clip(line))
        items.append(f"<li>{text}</li>")
    return f'<section id="missing"><h2>Not in this report</h2><ul class="missing">{"".join(items)}</ul></section>'  # noqa: E501


def status_span(r: RunRecord) -> str:
    return f'<span class="status-{e(r.status)}">{e(status_text(r))}</span>'


def run_page(
    out: Path,
    r: RunRecord,
    parts: Parts,
    curves: str | None,
    files: Sequence[str] = ("run.json", "history.csv"),
) -> Path:
    """Write out/index.html for one run (`files`: the run's files copied beside it)."""
    links = " · ".join(f'<a href="{href(f)}">{e(f)}</a>' for f in files if href(f))
    facts = [
        ("status", status_span(r)),
        ("task", e(r.task)),
        ("model", e(r.model)),
        ("dataset", e(r.dataset_label)),
        ("epochs", e(epochs_text(r))),
        ("best", e(best_text(r))),
        ("seconds per epoch", e(cell_text(r.seconds_per_epoch))),
        ("started", e(clip(r.started))),
        ("finished", e(clip(r.finished or "-"))),
        ("files", links or "-"),
    ]
    parts_html = [
        f"<h1>Run {e(r.name)}</h1><p>{e(str(r.path))}</p>",
        f'<section id="facts">{pairs(facts, raw=True)}</section>',
        *(f"<p>note: {e(clip(n))}</p>" for n in r.notes),
        '<section id="trained"><h2>What was trained on what</h2>',
        "<h3>Options</h3>" + pairs(flat_options(r.options).items()),
        "<h3>Dataset</h3>" + _dataset(r),
        "<h3>Model</h3>" + _model(r, parts),
        "</section>",
        '<section id="curves"><h2>Learning curves</h2>',
        figure(curves, "training dashed, validation solid", chart=True)
        if curves
        else "<p>no finished epoch yet</p>",
        _history(r),
        "</section>",
        _evaluations(parts),
        _activations(parts),
        missing_list(parts.missing),
    ]
    return write(out / "index.html", f"cnncli report: {r.name}", "\n".join(parts_html))


def _dataset(r: RunRecord) -> str:
    ds = v if isinstance(v := r.run.get("dataset"), dict) else {}
    counts = v if isinstance(v := ds.get("counts"), dict) else {}
    image = v if isinstance(v := ds.get("image"), dict) else {}
    spec = "x".join(str(image.get(k, "?")) for k in ("height", "width", "channels"))
    rows = [
        ("path", r.dataset_path or "-"),
        ("manifest sha256", r.dataset_sha256 or "-"),
        ("classes", ", ".join(map(str, r.class_names)) or "-"),
        ("images", f"{spec} {image.get('color', '')}".strip()),
        *((f"{split} images", n) for split, n in counts.items()),
    ]
    return pairs(rows)


def _model(r: RunRecord, parts: Parts) -> str:
    s = parts.summary
    if not s:
        return pairs([("model", r.model), ("parameters", r.params)])
    from cnncli.models.summary import format_count, format_shape

    head = pairs(
        [
            ("model", f"{r.model} ({parts.model})"),
            ("parameters", s["total_params"]),
            ("trainable", s["trainable_params"]),
            ("MACs per image", format_count(s["macs"])),
            ("input", format_shape(s["input_shape"])),
        ]
    )
    rows = [
        (x["name"], x["type"], format_shape(x["output_shape"]), x["params"], x["macs"])
        for x in s["layers"]
    ]
    cols = ["layer", "type", "output", "params", "MACs"]
    return head + table(cols, rows, numeric=["params", "MACs"], id_="layers")


def _history(r: RunRecord) -> str:
    names = [k for k in (r.history[0] if r.history else {}) if k != "epoch"]
    shown = history_sample(r.history, MAX_HISTORY_ROWS, [r.best_epoch] if r.best_epoch else [])
    rows = [(row["epoch"], *(row.get(k) for k in names)) for row in shown]
    note = ""
    if len(shown) < len(r.history):
        note = (
            f"<p>{len(shown):,} of {len(r.history):,} epochs shown (evenly spaced, the best "
            "and the last among them); every epoch is in history.csv</p>"
        )
    return table(["epoch", *names], rows, numeric=["epoch", *names], id_="history") + note


def _evaluations(parts: Parts) -> str:
    if not parts.evaluations:
        return ""
    out = ['<section id="evaluation"><h2>Evaluation</h2>']
    for split, ev in parts.evaluations.items():
        numbers = [
            (k, v)
            for k, v in ev.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "count"
        ]
        out.append(f"<h3>{e(split)} ({e(cell_text(ev.get('count')))} images)</h3>" + pairs(numbers))
        for key in ("classes", "labels", "targets"):  # per class, label or target (any task)
            out.append(_items(ev.get(key), f"{key}-{split}"))
        shown = sorted(
            (k for k in parts.pictures if k.endswith(f"-{split}")),
            key=lambda k: k.startswith("errors"),
        )
        pics = [
            figure(
                parts.pictures[k],
                f"{PICTURES.get(k[: -len(split) - 1], k)}, {split}",
                chart=not k.startswith("errors"),
            )
            for k in shown
        ]
        out.append(f'<div class="pics">{"".join(pics)}</div>')
        files = v if isinstance(v := ev.get("files"), dict) else {}
        if files.get("errors_csv") and href(f"errors-{split}.csv"):
            listed = ERRORS_CSV.get(str(ev.get("task")), "misclassified list")
            out.append(f'<p><a href="{href(f"errors-{split}.csv")}">{e(listed)} (CSV)</a></p>')
    return "\n".join(out + ["</section>"])


ERRORS_CSV = {"regression": "largest errors", "multilabel": "images with wrong labels"}
PICTURES = {
    "confusion": "confusion matrix",
    "errors": "error sheet, the worst first",
    "scatter": "true vs predicted",
    "residuals": "residuals",
}


def _items(items, id_: str) -> str:
    """A table of an evaluation's per-class (per-label, per-target) dicts, their numbers
    and names as columns."""
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return ""
    cols = [k for k, v in items[0].items() if isinstance(v, (str, int, float)) and k != "index"]
    numeric = [k for k in cols if not isinstance(items[0][k], str)]
    rows = [[it.get(k) if isinstance(it, dict) else None for k in cols] for it in items[:MAX_ITEMS]]
    return table(cols, rows, numeric=numeric, id_=id_)


def _activations(parts: Parts) -> str:
    if not parts.activations:
        return ""
    out = ['<section id="activations"><h2>Activations and Grad-CAM</h2>']
    for a in parts.activations:
        page = href(a["page"])
        more = f' · <a href="{page}">every layer</a>' if page else ""
        out.append(
            f"<h3>{e(a['image'])}: predicted {e(str(a['predicted']))} "
            f"({a['probability']:.3f}){more}</h3>"
        )
        pics = [figure(a["input"], "input")]
        if a.get("gradcam"):
            pics.append(figure(a["gradcam"], "Grad-CAM"))
        pics += [figure(g["file"], f"{g['name']} ({g['type']})") for g in a["grids"]]
        out.append(f'<div class="pics">{"".join(pics)}</div>')
    return "\n".join(out + ["</section>"])


def compare_page(
    out: Path,
    t: RunsTable,
    links: dict[str, str],
    curves: str,
    bars: str | None,
    notes: Sequence[str],
) -> Path:
    """Write out/index.html comparing the runs of `t` (links: run name -> its page)."""
    title, columns, rows = t.display()
    for row, r in zip(rows, t.runs, strict=True):
        link = href(links[r.name]) if r.name in links else None
        row[0] = f'<a href="{link}">{e(r.name)}</a>' if link else e(r.name)
    numeric = [*t.metrics, "s/epoch", "params"]
    body = [
        f"<h1>{e(f'Comparison of {len(t.runs)} runs')}</h1><p>{e(title)}</p>",
        '<section id="runs"><h2>Runs</h2>' + table(columns, rows, numeric, "runs", ["name"]),
        ("<p>options that differ: " + e(", ".join(t.changed)) + "</p>")
        if t.changed
        else "<p>the runs were trained with the same options</p>",
        "</section>",
        '<section id="curves"><h2>Learning curves</h2>',
        figure(curves, "one colour per run; training dashed, validation solid", chart=True),
        "</section>",
        (
            '<section id="final"><h2>Final metrics</h2>'
            + figure(bars, "last epoch (test: the report's evaluation)", chart=True)
            + "</section>"
        )
        if bars
        else "",
        *(f"<p>note: {e(clip(n))}</p>" for n in notes),
    ]
    return write(out / "index.html", f"cnncli report: {len(t.runs)} runs", "\n".join(body))
