"""`cnncli demo`: a thin command over cnncli.demo.run (the whole path on the bundled data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli.options import JsonOpt
from cnncli.demo.run import EPOCHS, DemoEvents


class DemoView(DemoEvents):
    """Renders the demo's steps on stderr, and training as `cnncli train` does. A context
    manager: leaving it stops the training bar."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.training = None

    def __enter__(self) -> DemoView:
        return self

    def __exit__(self, *exc) -> None:
        if self.training is not None:
            self.training.close()

    def step(self, number: int, total: int, name: str, text: str) -> None:
        from cnncli.cli.console import err_console, escape

        err_console.print(f"[bold]\\[{number}/{total}][/] {escape(text)}", soft_wrap=True)

    def train_events(self):
        from cnncli.cli.train_events import TrainingView

        self.training = TrainingView(quiet=self.quiet)
        return self.training


def demo_command(
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            metavar="DIR",
            help="Where to write everything (replaces an earlier demo output there, nothing else).",
        ),
    ] = Path("cnncli-demo"),
    epochs: Annotated[
        int,
        typer.Option(
            "--epochs",
            help="Training epochs (the façade model reaches full validation accuracy by epoch "
            "3-5; fewer for a quicker look).",
        ),
    ] = EPOCHS,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-epoch lines.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run the whole path on the bundled façade data: dataset, summary, training, evaluation,
    filter table, activation maps and clustering. About a minute on 2 CPU cores."""
    from cnncli.cli import console
    from cnncli.cli.inspect import print_summary
    from cnncli.demo.run import run_demo

    with DemoView(quiet) as view:
        result = run_demo(out, events=view, epochs=epochs)
    if json_out:
        console.print_json(result.to_dict())
        return
    print_summary(result.summary)
    ev = result.metrics["evaluate"]
    console.info(
        f"validation: {ev['images']} images, accuracy {ev['accuracy']:.3f}, loss {ev['loss']:.4f}"
    )
    total = sum(result.seconds.values())
    table = console.make_table(
        ["step", "file (in " + str(result.out_dir) + ")", "what", "s"],
        [
            (
                o.step if first else "",
                str(o.path.relative_to(result.out_dir)),
                o.what,
                f"{result.seconds[o.step]:.1f}" if first else "",
            )
            for o, first in _first_per_step(result.outputs)
        ],
        title=f"cnncli demo wrote {result.out_dir} in {total:.0f} s",
    )
    table.columns[1].no_wrap = True
    console.console.print(table)
    console.info(f"next: open {result.out_dir / 'activations' / 'index.html'} in a browser")


def _first_per_step(outputs):
    seen = set()
    for o in outputs:
        yield o, o.step not in seen
        seen.add(o.step)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
