"""`cnncli dataset build | info | preview | check`: thin commands over cnncli.datasets and
cnncli.check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli import completion as complete
from cnncli.cli.dataset_views import contents, show_problems
from cnncli.cli.options import JsonOpt, OverwriteOpt
from cnncli.cli.progress import ProgressBar
from cnncli.datasets.options import BuildOptions

DEFAULTS = BuildOptions()  # the options' defaults, read from their one home

app = typer.Typer(help="Build, inspect and preview labeled image datasets.", no_args_is_help=True)


@app.command("build")
def build(
    images_dir: Annotated[Path, typer.Argument(help="Folder of images (or of class folders).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The dataset folder to write.")],
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Label table (CSV or tab-separated).")
    ] = DEFAULTS.labels,
    image_col: Annotated[
        str | None, typer.Option(help="Column naming the image files.")
    ] = DEFAULTS.image_col,
    label_col: Annotated[
        str | None, typer.Option(help="Column holding the labels (multilabel: several a cell).")
    ] = DEFAULTS.label_col,
    name_col: Annotated[
        str | None, typer.Option(help="Column holding class names.")
    ] = DEFAULTS.name_col,
    task: Annotated[
        str,
        typer.Option(
            help="classify (one class per image), multilabel (labels from --label-col "
            "or --label-cols) or regression (numbers from --target-col).",
            autocompletion=complete.tasks,
        ),
    ] = DEFAULTS.task,
    label_delim: Annotated[
        str | None,
        typer.Option(
            help="multilabel: what separates the labels in a --label-col cell (default ;)."
        ),
    ] = DEFAULTS.label_delim,
    label_cols: Annotated[
        str | None,
        typer.Option(metavar="A,B,C", help="multilabel: one 0/1 column per label: a,b,c."),
    ] = DEFAULTS.label_cols,
    target_col: Annotated[
        list[str] | None,
        typer.Option(help="regression: a numeric column to predict (repeat for several)."),
    ] = DEFAULTS.target_cols,
    encoding: Annotated[
        str | None, typer.Option(help="The table's text encoding (default: UTF-8 or cp949).")
    ] = DEFAULTS.encoding,
    classes: Annotated[
        str | None, typer.Option(help="Class names in index order, comma-separated: a,b,c.")
    ] = DEFAULTS.classes,
    color: Annotated[
        str | None,
        typer.Option(
            help="rgba, rgb or grayscale (default: the mode most images have).",
            autocompletion=complete.colors,
        ),
    ] = DEFAULTS.color,
    size: Annotated[
        str | None, typer.Option(help="HxW (default: keep it when every image shares it).")
    ] = DEFAULTS.size,
    fit: Annotated[
        str,
        typer.Option(help="stretch, crop or pad, for aspect ratio.", autocompletion=complete.fits),
    ] = DEFAULTS.fit,
    val: Annotated[
        float | None, typer.Option(help="Fraction of each class for validation (default: 0.2).")
    ] = DEFAULTS.val,
    test: Annotated[
        float | None, typer.Option(help="Fraction of each class for testing (default: 0).")
    ] = DEFAULTS.test,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = DEFAULTS.seed,
    split_col: Annotated[
        str | None, typer.Option(help="Table column with train/val/test per row.")
    ] = DEFAULTS.split_col,
    split_files: Annotated[
        str | None,
        typer.Option(
            help="Lists of image paths giving the splits: train.txt,val.txt,test.txt "
            "(split from each name, or train=FILE)."
        ),
    ] = DEFAULTS.split_files,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Build from the good rows; list the rest.")
    ] = DEFAULTS.skip_bad,
    overwrite: OverwriteOpt = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Conversion workers (default: every core): threads, or processes for large "
            "builds on 4+ cores. With 1, the main thread finishes what the worker decodes."
        ),
    ] = DEFAULTS.workers,
    record_format: Annotated[
        str, typer.Option(help="raw (fast, default) or png (smaller) pixels in the records.")
    ] = DEFAULTS.record_format,
    shard_size: Annotated[
        str, typer.Option(help="Shard size: bytes (64MB) or images (500).")
    ] = str(DEFAULTS.shard_size),
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="Leave out images: issues.csv from dataset check (its rows suggesting "
            "exclude) or a list of image names."
        ),
    ] = DEFAULTS.exclude,
    relabel: Annotated[
        Path | None,
        typer.Option(help="Apply the suggested labels of the label-issue rows of issues.csv."),
    ] = DEFAULTS.relabel,
    allow_leaks: Annotated[
        bool,
        typer.Option(
            "--allow-leaks", help="Split identical image files freely (default: one split each)."
        ),
    ] = DEFAULTS.allow_leaks,
    engine: Annotated[
        str,
        typer.Option(
            help="Where images are converted: local (this machine) or ray (the "
            "nodes of a Ray cluster; the same bytes, see docs/multi-machine.md)."
        ),
    ] = DEFAULTS.engine,
    address: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="--engine ray: the cluster's head, or auto (default: RAY_ADDRESS, else "
            "this machine's cores).",
        ),
    ] = DEFAULTS.address,
    seeded_shards: Annotated[
        bool,
        typer.Option(
            "--seeded-shards",
            help="Records in the seeded order, cut into shards of --shard-size (the older "
            "layout, which --update cannot update), instead of each image in a shard by a "
            "hash of its path.",
        ),
    ] = not DEFAULTS.stable_shards,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Update the dataset OUT: rewrite only the shards whose images were "
            "added, removed, relabelled or changed (same options; --engine ray too).",
        ),
    ] = DEFAULTS.update,
    json_out: JsonOpt = False,
) -> None:
    """Build a dataset from IMAGES_DIR and an optional label table (see docs/FORMAT.md)."""
    from cnncli.cli import console
    from cnncli.datasets.build import build_dataset
    from cnncli.errors import DatasetError

    options = BuildOptions(
        labels=labels,
        image_col=image_col,
        label_col=label_col,
        name_col=name_col,
        task=task,
        label_delim=label_delim,
        label_cols=label_cols,
        target_cols=target_col,
        encoding=encoding,
        classes=classes,
        color=color,
        size=size,
        fit=fit,
        val=val,
        test=test,
        seed=seed,
        split_col=split_col,
        split_files=split_files,
        skip_bad=skip_bad,
        overwrite=overwrite,
        workers=workers,
        record_format=record_format,
        shard_size=int(shard_size) if shard_size.isdigit() else shard_size,
        exclude=exclude,
        relabel=relabel,
        allow_leaks=allow_leaks,
        engine=engine,
        address=address,
        stable_shards=not seeded_shards,
        update=update,
    )

    try:
        with ProgressBar("converting") as progress:
            result = build_dataset(images_dir, out, options, progress=progress)
    except DatasetError as e:
        if e.problems:
            show_problems(e.problems, out)
        raise
    if json_out:
        console.print_json(result.to_dict())
        return
    contents(result.manifest, result.counts, [c["name"] for c in result.manifest["classes"]])
    for note in result.notes:
        console.info(note)
    if result.skipped:
        show_problems(result.skipped, None, title="Skipped")
        console.warn(f"{len(result.skipped)} bad rows skipped: see {out / 'skipped.csv'}")
    console.info(f"wrote {out}")


@app.command("info")
def info(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset folder.")],
    json_out: JsonOpt = False,
) -> None:
    """Classes (or labels with their co-occurrence, or targets with their statistics and
    histograms), counts per split, image shape and encoding of a dataset."""
    from cnncli.cli import console
    from cnncli.datasets.store import open_dataset

    ds = open_dataset(dataset_dir)
    summary = ds.summary()
    if json_out:
        console.print_json(summary)
        return
    contents(ds.manifest, summary["counts"], ds.class_names, title=str(ds.path))
    shards = ds.shard_count()
    console.info(
        f"images: {ds.image.describe()}, shape {ds.image.shape}; records: {ds.encoding}, "
        f"{shards} shard{'s' * (shards != 1)}; manifest sha256 {ds.sha256[:12]}"
    )
    for line in summary["conversions"]:
        console.info(f"converted at build: {line}")
    if summary["unbalanced"]:
        console.warn(summary["unbalanced"])


@app.command("preview")
def preview(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset folder.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The PNG contact sheet to write.")],
    split: Annotated[str, typer.Option(help="Which split to draw from.")] = "train",
    per_class: Annotated[
        int, typer.Option(help="Images per class (per label, or per quarter of the target).")
    ] = 8,
    overwrite: OverwriteOpt = False,
) -> None:
    """A contact sheet of the first images of each class, captioned with class names (or
    with each image's labels, or target values)."""
    from cnncli.cli import console
    from cnncli.datasets.preview import preview_sheet

    result = preview_sheet(dataset_dir, out, split=split, per_class=per_class, overwrite=overwrite)
    for note in result["notes"]:
        console.info(note)
    console.info(f"wrote {out}")


@app.command("check")
def check(
    dataset_dir: Annotated[Path, typer.Argument(help="A dataset folder (dataset build wrote).")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="A trained model (.keras) whose features score the labels instead of the "
            "pixel model (faster on large images).",
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option(help="Folds of the out-of-fold predictions (2 to the smallest class).")
    ] = 5,
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="The report folder (default: DATASET/check)."),
    ] = None,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Duplicates (exact and near, with leaks between splits and conflicting labels), label
    issues ranked by confident learning, class balance, blank and unusual images; writes
    check.json, issues.csv and index.html."""
    from cnncli.check.run import check_dataset
    from cnncli.cli import console

    with ProgressBar("checking", enabled=not json_out) as progress:
        result = check_dataset(
            dataset_dir, model=model, folds=folds, out=out, overwrite=overwrite, progress=progress
        )
    if json_out:
        console.print_json(result.to_dict())
        return
    _check_tables(result)


def _check_tables(result) -> None:
    """Counts by kind, then the first rows of each list, then where the report is."""
    from cnncli.cli import console

    shown = 10
    console.print_table(
        ["found", "count"],
        list(result.counts.items()),
        title=f"check of {result.dataset}",
        numeric=["count"],
    )
    if result.duplicates:
        rows = [
            [
                g["kind"],
                ", ".join(
                    f"{n} ({s}, {lab})"
                    for n, s, lab in zip(g["images"], g["splits"], g["labels"], strict=True)
                ),
                " ".join(w for w, on in (("leak", g["leak"]), ("conflict", g["conflict"])) if on),
            ]
            for g in result.duplicates[:shown]
        ]
        console.print_table(
            ["kind", "images (split, label)", "marked"],
            rows,
            title=_first(shown, len(result.duplicates), "duplicate groups"),
        )
    if result.label_issues:
        word = "prediction" if result.task == "regression" else "suggested"
        rows = [
            [x["image"], x["split"], x["given"], x["suggested"], f"{x['score']:.3f}"]
            for x in result.label_issues[:shown]
        ]
        console.print_table(
            ["image", "split", "given", word, "score"],
            rows,
            title=_first(shown, len(result.label_issues), "label issues"),
            numeric=["score"],
        )
    console.info(f"labels scored by {result.label_model}, {result.folds} folds out of fold")
    c = result.classes
    if c.get("unbalanced"):
        console.warn(
            f"classes are unbalanced: {c['largest']!r} has {c['ratio']}x the images "
            f"of {c['smallest']!r}; {c['hint']}"
        )
    for note in result.notes:
        console.info(note)
    console.info(f"wrote {result.report} (index.html, issues.csv, check.json)")


def _first(shown: int, total: int, what: str) -> str:
    return what if total <= shown else f"{what}: the first {shown} of {total:,}"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dataset")
