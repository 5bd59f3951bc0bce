"""`cnncli summary`: a model's layer table (Keras' numbers, plus MACs and activation memory)
for a model file, a named architecture or a spec file. Thin: cnncli.models does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    model_file: Annotated[
        Path | None, typer.Argument(help="A .keras or .h5 model file.", show_default=False)
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="A named architecture (see --list-arch).")
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
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    expand: Annotated[
        bool, typer.Option("--expand", help="Show the layers of nested models.")
    ] = False,
    unsafe: Annotated[
        bool,
        typer.Option(
            "--unsafe", help="Allow models with Lambda layers or custom objects (runs code)."
        ),
    ] = False,
    list_arch: Annotated[
        bool, typer.Option("--list-arch", help="List the named architectures and exit.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write --arch/--spec as a spec file (.yaml or .json)."),
    ] = None,
) -> None:
    """Layer table of a model: output shapes, parameters, MACs and activation memory."""
    from cnncli.cli import console

    if list_arch:
        _list_architectures(json_out)
        return
    sources = [s for s in (model_file, arch, spec) if s is not None]
    if len(sources) != 1:
        raise UsageError(
            "give exactly one of MODEL_FILE, --arch NAME or --spec FILE",
            "see `cnncli summary --list-arch` for the architectures",
        )
    shape = parse_input_shape(input_shape)
    if model_file is not None and (shape is not None or classes is not None):
        raise UsageError("--input and --classes apply to --arch and --spec, not to a model file")
    if model_file is not None and export is not None:
        raise UsageError("--export writes --arch or --spec as a spec file, not a model file")

    from cnncli.models import spec as specs

    notes: list[str] = []
    if arch is not None:
        from cnncli.models.presets import build_architecture, get_architecture

        get_architecture(arch)  # a bad name fails before TensorFlow loads
        if export is not None:
            written = specs.write_spec(specs.architecture_to_spec(arch, shape, classes), export)
            console.info(f"wrote the spec of {arch!r} to {written}")
        model = build_architecture(arch, input_shape=shape, num_classes=classes)
    elif spec is not None:
        data = specs.load_spec(spec)
        model = specs.build_from_spec(data, input_shape=shape, num_classes=classes)
        if export is not None:
            if shape is not None:
                data["input_shape"] = list(shape)
            if classes is not None:  # the head the model was built with
                head, kwargs = specs._head_entry(classes)
                data["layers"] = [*data["layers"][:-1], {head: kwargs}]
            written = specs.write_spec(data, export)
            console.info(f"wrote the spec to {written}")
    else:
        from cnncli.models.io import load_model

        loaded = load_model(model_file, unsafe=unsafe)
        model = loaded.model
        meta = loaded.metadata
        if meta.from_cnncli:
            image = meta.image.describe() if meta.image else "?"
            console.info(f"stored with the model: classes {', '.join(meta.class_names)}; {image}")
        notes = [f"not saved by cnncli, using defaults: {n}" for n in meta.notes]

    from cnncli.models.summary import summarize

    result = summarize(model, expand=expand)
    for note in notes:
        console.info(note)
    if json_out:
        console.print_json(result)
        return
    _print_summary(result)


def _print_summary(result: dict) -> None:
    from cnncli.cli import console
    from cnncli.models.summary import MACS_NOTE, format_bytes, format_count, format_shape

    rows = []
    for r in result["layers"]:
        indent = "  " * r["depth"]
        rows.append(
            (
                f"{indent}{r['name']} ({r['type']})",
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
