"""`cnncli dataset build|info|preview` (placeholder: filled in by the dataset work)."""

import typer

app = typer.Typer(help="Build, inspect and preview labeled image datasets.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dataset")
