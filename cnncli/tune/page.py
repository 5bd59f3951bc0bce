"""The study page, STUDY/index.html, in the style of `cnncli report`'s pages (cnncli.runs.pages:
its CSS, tables and figures; the bundled font): the metric of every trial with the
best-so-far line, each parameter against the metric, the importance of each parameter,
and the trials, each linked to its run folder. The charts are drawn as every cnncli
figure is (cnncli.drawing.plots.pyplot, the bundled font, saved atomically)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cnncli.drawing.figures import pyplot
from cnncli.drawing.fonts import matplotlib_rc
from cnncli.drawing.save import save_figure
from cnncli.runs import charts, pages
from cnncli.runs.table import cell_text

TRIALS_PNG, PARAMS_PNG, IMPORTANCE_PNG = "trials.png", "params.png", "importance.png"
e = html.escape


def best_so_far(rows: list[dict], direction: str) -> list[tuple[int, float]]:
    """(trial number, best complete value up to it), in trial order."""
    out, best = [], None
    pick = max if direction == "maximize" else min
    for r in sorted(rows, key=lambda r: r["number"]):
        if r["state"] == "complete" and r["value"] is not None:
            best = r["value"] if best is None else pick(best, r["value"])
        if best is not None:
            out.append((r["number"], best))
    return out


def plot_trials(rows: list[dict], metric: str, direction: str, out_png: Path) -> Path:
    plt = pyplot()
    with plt.rc_context(matplotlib_rc()):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        try:
            for state, style in (
                ("complete", {"marker": "o", "color": "C0"}),
                ("pruned", {"marker": "x", "color": "0.55"}),
            ):
                pts = [
                    (r["number"], r["value"])
                    for r in rows
                    if r["state"] == state and r["value"] is not None
                ]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    label = state if state == "complete" else "pruned (last epoch)"
                    ax.scatter(xs, ys, label=label, **style)
            line = best_so_far(rows, direction)
            if line:
                xs, ys = zip(*line, strict=True)
                ax.step(xs, ys, where="post", color="C3", label="best so far")
            ax.set_xlabel("trial")
            ax.set_ylabel(metric)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=80)
        finally:
            plt.close(fig)


def plot_params(rows: list[dict], names: list[str], metric: str, out_png: Path) -> Path:
    """One panel per parameter: its value against the metric (complete trials; pruned ones
    grey at their last epoch's value); choices are spread along the axis by name."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    with plt.rc_context(matplotlib_rc()):
        fig, axes = charts.grid(plt, max(1, len(names)), width=4.2, height=3.2)
        try:
            for ax, name in zip(axes, names, strict=False):
                values = [r["params"].get(name) for r in rows if name in r["params"]]
                numeric = all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
                )
                labels = sorted({str(v) for v in values}) if not numeric else []
                for state, style in (
                    ("complete", {"marker": "o", "color": "C0"}),
                    ("pruned", {"marker": "x", "color": "0.55"}),
                ):
                    pts = [
                        (r["params"][name], r["value"])
                        for r in rows
                        if r["state"] == state and r["value"] is not None and name in r["params"]
                    ]
                    if not pts:
                        continue
                    xs = [p[0] if numeric else labels.index(str(p[0])) for p in pts]
                    ax.scatter(xs, [p[1] for p in pts], **style)
                if not numeric:
                    ax.set_xticks(range(len(labels)), labels)
                elif values and min(values) > 0 and max(values) / min(values) >= 100:
                    ax.set_xscale("log")  # plain tick labels: 0.001, not mathtext's 10^-3
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                    ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_title(name)
                ax.set_ylabel(metric)
            fig.tight_layout()
            return save_figure(fig, out_png, dpi=80)
        finally:
            plt.close(fig)


def _link(href: str, text: str) -> str:
    return f'<a href="{quote(href)}">{e(text)}</a>'


def _trial_links(r: dict, study_dir: Path) -> str:
    if not r["run_dir"]:
        return "-"
    rel = Path(r["run_dir"]).relative_to(study_dir).as_posix()
    links = [_link(f"{rel}/", rel)]
    for name in ("run.json", "history.png", "report/index.html"):
        if (Path(r["run_dir"]) / name).is_file():
            links.append(_link(f"{rel}/{name}", name.split("/")[0]))
    return " · ".join(links)


def write_study_page(result: Any) -> Path:
    """Draw the charts and write STUDY/index.html for a cnncli.tune.result.TuneResult."""
    study_dir = result.study_dir
    rows = result.rows
    plot_trials(rows, result.metric, result.direction, study_dir / TRIALS_PNG)
    plot_params(rows, result.space, result.metric, study_dir / PARAMS_PNG)
    figures = [
        pages.figure(TRIALS_PNG, f"{result.metric} of each trial, and the best so far", chart=True),
        pages.figure(PARAMS_PNG, f"each parameter against {result.metric}", chart=True),
    ]
    imp = ""
    if result.importance:
        names = list(result.importance)
        charts.plot_final_bars(
            names, {"importance": [result.importance[n] for n in names]}, study_dir / IMPORTANCE_PNG
        )
        imp = pages.figure(
            IMPORTANCE_PNG, "importance of each parameter (fANOVA)", chart=True
        ) + pages.table(
            ["parameter", "importance"],
            list(result.importance.items()),
            numeric=["importance"],
            id_="importance",
        )
    else:
        imp = "<p>needs two or more complete trials in which a parameter varies</p>"
    best = result.best
    done = result.counts.get("complete", 0) + result.counts.get("pruned", 0)
    facts = [
        ("metric", e(f"{result.metric} ({result.direction})")),
        (
            "trials",
            e(
                f"{done} of {result.total} done: "
                + ", ".join(f"{n} {s}" for s, n in result.counts.items() if n)
            ),
        ),
        ("best", e(f"trial {best['number']}: {cell_text(best['value'])}") if best else "-"),
        ("reproduce", f"<code>{e(best['command'])}</code>" if best and best["command"] else "-"),
        ("files", _link("study.json", "study.json")),
    ]
    columns = ["trial", "state", result.metric, *result.space, "epochs", "seconds", "run"]
    table_rows = [
        [
            r["number"],
            r["state"],
            r["value"],
            *(r["params"].get(n, "-") for n in result.space),
            r["epochs"],
            r["seconds"],
            _trial_links(r, study_dir),
        ]
        for r in rows
    ]
    body = "\n".join(
        [
            f"<h1>Study {e(study_dir.name)}</h1><p>{e(str(study_dir))}</p>",
            f'<section id="facts">{pages.pairs(facts, raw=True)}</section>',
            f'<section id="progress"><h2>Trials</h2>{"".join(figures)}</section>',
            f'<section id="importance-section"><h2>Parameter importance</h2>{imp}</section>',
            '<section id="trials"><h2>Every trial, best first</h2>',
            pages.table(
                columns,
                table_rows,
                numeric=[result.metric, "epochs", "seconds"],
                id_="trial-table",
                raw=["run"],
            ),
            "</section>",
        ]
    )
    return pages.write(study_dir / "index.html", f"cnncli tune: {study_dir.name}", body)
