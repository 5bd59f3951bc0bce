"""`cnncli summary`: a model's layer table (Keras' numbers, plus MACs and activation memory)
for a model file, a named architecture or a spec file. Thin: cnncli.models does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli import completion as complete
from cnncli.cli.options import JsonOpt, OptionalModelArg, OverwriteOpt, UnsafeOpt
from cnncli.errors import UsageError


def parse_input_shape(text: str | None) -> tuple[int, int, int] | None:
    """'28x28x1' (or '28,28,1') -> (28, 28, 1)."""
    if text is None:
        return None
    parts = [p for p in text.lower().replace(",", "x").replace("*", "x").split("x") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or any(d < 1 for d in shape):
        raise UsageError(
            f"--input must be HxWxC with positive sizes, got {text!r}", "e.g. --input 28x28x1"
        )
    return shape  # type: ignore[return-value]


def summary_command(
    model_file: OptionalModelArg = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch", help="A named architecture (see --list-arch).", autocompletion=complete.archs
        ),
    ] = None,
    spec: Annotated[
        Path | None, typer.Option("--spec", help="A YAML or JSON spec file of layers.")
    ] = None,
    input_shape: Annotated[
        str | None,
        typer.Option("--input", help="Input shape HxWxC for --arch/--spec, e.g. 64x64x3."),
    ] = None,
    classes: Annotated[
        int | None,
        typer.Option("--classes", help="Classes for --arch/--spec (2: one sigmoid unit)."),
    ] = None,
    json_out: JsonOpt = False,
    expand: Annotated[
        bool, typer.Option("--expand", help="Show the layers of nested models.")
    ] = False,
    unsafe: UnsafeOpt = False,
    list_arch: Annotated[
        bool, typer.Option("--list-arch", help="List the named architectures and exit.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write --arch/--spec as a spec file (.yaml or .json)."),
    ] = None,
    overwrite: OverwriteOpt = False,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            help="The model cnncli train --backbone NAME builds (the "
            "backbone one row, frozen; --expand opens it).",
            autocompletion=complete.backbones,
        ),
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="MobileNet width, with --backbone.")
    ] = None,
) -> None:
    """Layer table of a model: output shapes, parameters, MACs and activation memory."""
    from cnncli.cli import console
    from cnncli.models.summary import summarize_source

    if list_arch:
        _list_architectures(json_out)
        return
    result = summarize_source(
        model_file,
        arch=arch,
        spec=spec,
        classes=classes,
        input_shape=parse_input_shape(input_shape),
        expand=expand,
        unsafe=unsafe,
        export=export,
        overwrite=overwrite,
        backbone=backbone,
        alpha=alpha,
    )
    if result.exported is not None:
        of = f" of {arch!r}" if arch is not None else ""
        console.info(f"wrote the spec{of} to {result.exported}")
    if result.stored is not None:
        console.info(f"stored with the model: {result.stored}")
    for note in result.notes:
        console.info(f"not saved by cnncli, using defaults: {note}")
    if json_out:
        console.print_json(result.summary)
        return
    print_summary(result.summary)


def print_summary(result: dict) -> None:
    """The layer table and totals of a summarize() dict, as Keras prints them, on stdout."""
    from cnncli.cli import console
    from cnncli.models.summary import MACS_NOTE, format_bytes, format_count, format_shape

    rows = []
    for r in result["layers"]:
        indent = "  " * r["depth"]
        counts = (
            ""
            if "frozen_params" not in r
            else f": {r['trainable_params']:,} trainable, {r['frozen_params']:,} frozen"
        )
        rows.append(
            (
                f"{indent}{r['name']} ({r['type']}){counts}",
                format_shape(r["output_shape"]),
                r["params"],
                format_count(r["macs"]) if r["macs"] else "0",
                format_bytes(r["activation_bytes"]),
            )
        )
    footer = [
        (
            "Total",
            "",
            result["total_params"],
            format_count(result["macs"]),
            format_bytes(result["activation_bytes"]),
        )
    ]
    table = console.make_table(
        ["Layer (type)", "Output Shape", "Param #", "MACs", "Activation memory"],
        rows,
        title=f'Model: "{result["name"]}"',
        numeric=["Param #", "MACs", "Activation memory"],
        footer_rows=footer,
    )
    for column in table.columns[1:]:
        column.no_wrap = True  # shapes and numbers stay whole on narrow terminals
    out = console.console
    out.print(table)
    total_bytes = result["total_params"] * 4
    out.print(f" Total params: {result['total_params']:,} ({format_bytes(total_bytes)})")
    out.print(f" Trainable params: {result['trainable_params']:,}")
    out.print(f" Non-trainable params: {result['non_trainable_params']:,}")
    out.print(
        f" MACs per image: {result['macs']:,}; activation memory per image: "
        f"{format_bytes(result['activation_bytes'])}"
    )
    out.print(f" [dim]{console.escape(MACS_NOTE)}[/]")


def _list_architectures(json_out: bool) -> None:
    from cnncli.cli import console
    from cnncli.models.presets import ARCHITECTURES

    if json_out:
        console.print_json([a.to_dict() for a in ARCHITECTURES.values()])
        return
    console.print_table(
        ["Name", "Input", "Classes", "Params", "Description"],
        [
            (
                a.name,
                "x".join(str(d) for d in a.input_shape),
                a.num_classes,
                a.params,
                a.description,
            )
            for a in ARCHITECTURES.values()
        ],
        title="Architectures (defaults: the course's shapes; --input and --classes change them)",
        numeric=["Classes", "Params"],
    )


def register(app: typer.Typer) -> None:
    app.command("summary", no_args_is_help=True)(summary_command)
