"""How `dataset build` and `dataset info` show a dataset (rich tables): what it holds, as
its task has it, and the problems a build found."""

from __future__ import annotations

from pathlib import Path


def show_problems(problems: list, out: Path | None, title: str = "Problems") -> None:
    """Problems counted by kind, then the first SHOWN of them (a terminal cannot show
    100,000 rows, nor draw them quickly); the whole list goes to a file beside OUT, whose
    path is said (`out` None: it is already in the dataset's skipped.csv)."""
    from cnncli.cli import console
    from cnncli.datasets.problems import SHOWN, count_kinds, write_problem_list

    n = len(problems)
    if n > 1:
        console.err_console.print(
            console.make_table(
                ["kind", "files"],
                count_kinds(problems),
                title=f"{title} by kind",
                numeric=["files"],
            )
        )
    heading = title if n <= SHOWN else f"{title}: the first {SHOWN} of {n:,}"
    console.err_console.print(
        console.make_table(["file", "problem"], problems[:SHOWN], title=heading)
    )
    if n > SHOWN and out is not None:
        try:
            console.info(f"all {n:,} problems are listed in {write_problem_list(problems, out)}")
        except OSError as e:
            console.warn(f"could not write the list of all {n:,} problems ({e.strerror or e})")


def counts_table(counts: dict, class_names: list[str], title: str | None = None) -> None:
    from cnncli.cli import console

    splits = list(counts)
    rows = [
        [
            i,
            name,
            *(counts[s].get(name, 0) for s in splits),
            sum(counts[s].get(name, 0) for s in splits),
        ]
        for i, name in enumerate(class_names)
    ]
    footer = [
        [
            "",
            "total",
            *(sum(counts[s].values()) for s in splits),
            sum(sum(c.values()) for c in counts.values()),
        ]
    ]
    console.print_table(
        ["#", "class", *splits, "total"],
        rows,
        title=title,
        numeric=["#", *splits, "total"],
        footer_rows=footer,
    )


def contents(manifest: dict, counts: dict, names: list[str], title: str | None = None) -> None:
    """What a dataset holds, as its task has it: images per class and split (classify);
    per label, with unlabeled rows and co-occurrence (multilabel); images per split and
    each target's statistics and histogram (regression)."""
    from cnncli.cli import console
    from cnncli.datasets.tasks import histogram_lines

    task = manifest.get("task", "classify")
    if task == "classify":
        counts_table(counts, names, title=title)
        return
    splits = list(counts)
    images = [manifest["splits"][s]["count"] for s in splits]
    footer = [["images", *images, sum(images)]]
    if task == "multilabel":
        none = [manifest["unlabeled"].get(s, 0) for s in splits]
        per = [[counts[s].get(n, 0) for s in splits] for n in names]
        rows = [[n, *row, sum(row)] for n, row in zip(names, per, strict=True)]
        console.print_table(
            ["label", *splits, "total"],
            rows,
            title=title,
            numeric=[*splits, "total"],
            footer_rows=[*footer, ["unlabeled", *none, sum(none)]],
        )
        console.print_table(
            ["train", *names],
            [[n, *row] for n, row in zip(names, manifest["cooccurrence"], strict=True)],
            title="labels together (train split)",
            numeric=names,
        )
        return
    console.print_table(["", *splits, "total"], footer, title=title, numeric=[*splits, "total"])
    console.print_table(
        ["target", "mean", "std", "min", "max"],
        [[t["name"], t["mean"], t["std"], t["min"], t["max"]] for t in manifest["targets"]],
        title="targets (mean and std of the train split)",
        numeric=["mean", "std", "min", "max"],
    )
    for name, hist in manifest.get("target_histograms", {}).items():
        console.console.print(f"{name}:", highlight=False)
        for line in histogram_lines(hist):
            console.console.print("  " + console.escape(line), highlight=False)
