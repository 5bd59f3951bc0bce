"""index.html of a check report: the counts, the classes, each duplicate group side by side
with its split and label under every picture, each label issue with its picture, given
and suggested label, and the blank and outlying images. Made by cnncli.drawing.html (the
bundled Hangul font embedded, `lang` from the content); links are relative, so the folder
can be moved or zipped."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cnncli.check.report import SHOWN_GROUPS, SHOWN_ISSUES, SHOWN_OTHERS, picture_name
from cnncli.drawing.html import write_page

CSS = (
    ".group{display:flex;flex-wrap:wrap;gap:.8em;align-items:flex-start;margin:.6em 0 1.2em}"
    "figure{margin:0;max-width:14em}figcaption{font-size:85%;overflow-wrap:anywhere}"
    ".leak,.conflict{color:#fff;border-radius:.3em;padding:0 .3em;margin-right:.3em}"
    ".leak{background:#b45309}.conflict{background:#b91c1c}"
    "table{border-collapse:collapse}tr{border-bottom:1px solid #ddd}td img{max-width:8em}"
)
e = html.escape


def _figure(index: int, name: str, lines: list[str]) -> str:
    caption = "<br>".join(e(x) for x in [name, *lines])
    return (
        f'<figure><img src="{quote(picture_name(index))}" alt="{e(name)}" loading="lazy">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _more(total: int, shown: int, what: str) -> str:
    if total <= shown:
        return ""
    return (
        f"<p>The first {shown} of {total:,} {what} are drawn; check.json and issues.csv "
        "list all.</p>"
    )


def _duplicates(result) -> str:
    groups = result.duplicates
    parts = [f'<section id="duplicates"><h2>Duplicates ({len(groups)} groups)</h2>']
    if not groups:
        parts.append("<p>No duplicate pictures found.</p>")
    for n, g in enumerate(groups[:SHOWN_GROUPS], 1):
        badges = ('<span class="leak">leak</span>' if g["leak"] else "") + (
            '<span class="conflict">conflict</span>' if g["conflict"] else ""
        )
        extra = f", residual {g['residual']}" if "residual" in g else ""
        parts.append(
            f'<h3 class="dup">{badges}group {n}: {g["kind"]} duplicates'
            f'{e(extra)}</h3><div class="group">'
        )
        for i, name, split, label in zip(
            g["_index"], g["images"], g["splits"], g["labels"], strict=True
        ):
            parts.append(_figure(i, name, [f"split: {split}", f"label: {label}"]))
        parts.append("</div>")
    parts.append(_more(len(groups), SHOWN_GROUPS, "groups") + "</section>")
    return "\n".join(parts)


def _label_issues(result) -> str:
    issues = result.label_issues
    word = "Targets far from their prediction" if result.task == "regression" else "Label issues"
    head = "prediction" if result.task == "regression" else "suggested"
    parts = [
        f'<section id="label-issues"><h2>{word} ({len(issues)})</h2>',
        f"<p>Out-of-fold predictions of {e(result.label_model)}, {result.folds} folds; "
        "most likely wrong first.</p>",
    ]
    if issues:
        parts.append(
            f"<table><tr><th>picture</th><th>image</th><th>split</th><th>given</th>"
            f"<th>{head}</th><th>score</th></tr>"
        )
        for x in issues[:SHOWN_ISSUES]:
            img = f'<img src="{quote(picture_name(x["_index"]))}" alt="{e(x["image"])}">'
            parts.append(
                f'<tr class="issue"><td>{img}</td><td>{e(x["image"])}</td>'
                f"<td>{e(x['split'])}</td><td>{e(x['given'])}</td>"
                f"<td>{e(x['suggested'])}</td><td>{x['score']}</td></tr>"
            )
        parts.append("</table>")
    parts.append(_more(len(issues), SHOWN_ISSUES, "issues") + "</section>")
    return "\n".join(parts)


def _others(result) -> str:
    items = [(x, "blank image") for x in result.blank] + [
        (x, x["problem"]) for x in result.outliers
    ]
    parts = [
        f'<section id="images"><h2>Blank and unusual images ({len(items)})</h2><div class="group">'
    ]
    for x, what in items[:SHOWN_OTHERS]:
        parts.append(_figure(x["_index"], x["image"], [what, x["detail"], f"split: {x['split']}"]))
    parts.append("</div>" + _more(len(items), SHOWN_OTHERS, "images") + "</section>")
    return "\n".join(parts)


def _classes(result) -> str:
    c = result.classes
    if not c or not c.get("counts"):
        return ""
    rows = "".join(f"<tr><td>{e(str(k))}</td><td>{v}</td></tr>" for k, v in c["counts"].items())
    note = ""
    if c.get("unbalanced"):
        note = (
            f"<p>Unbalanced: {e(str(c['largest']))} has {c['ratio']}x the images of "
            f"{e(str(c['smallest']))}; {e(c['hint'])}.</p>"
        )
    return (
        f'<section id="classes"><h2>Classes</h2><table><tr><th>class</th><th>images</th></tr>'
        f"{rows}</table>{note}</section>"
    )


def write_check_page(path: Path, result: Any) -> Path:
    counts = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in result.counts.items())
    body = "\n".join(
        [
            f"<h1>Check of {e(result.dataset.name)}</h1>",
            f"<p>{result.images:,} images, task {e(result.task)}.</p>",
            f'<table id="counts"><tr><th>found</th><th>count</th></tr>{counts}</table>',
            _duplicates(result),
            _label_issues(result),
            _classes(result),
            _others(result),
        ]
    )
    return write_page(path, f"cnncli dataset check: {result.dataset.name}", body, CSS)
