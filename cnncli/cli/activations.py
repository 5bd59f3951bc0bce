"""`cnncli activations` and `cnncli embed`: thin commands over cnncli.inference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli.checks import check_first
from cnncli.cli.options import ClassesOpt, JsonOpt, ModelArg, OverwriteOpt, ScaleOpt, UnsafeOpt


def activations_command(
    model: ModelArg,
    images: Annotated[list[Path], typer.Argument(help="Image files, or a folder of images.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--out", help="Output folder (default: activations/<image name>/ here)."
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Layer names, indexes or groups (conv, pool, dense, all), comma-separated. "
            "Default: every layer with spatial output, plus Flatten and Dense."
        ),
    ] = None,
    per_row: Annotated[int, typer.Option(help="Channels per row of a grid.")] = 16,
    cmap: Annotated[str, typer.Option(help="matplotlib colormap: viridis, gray, magma, ...")] = (
        "viridis"
    ),
    norm: Annotated[
        str,
        typer.Option(help="Scale per channel (the course's), per layer, or global (all layers)."),
    ] = "channel",
    raw: Annotated[bool, typer.Option("--raw", help="Also write each layer's values as .npy.")] = (
        False
    ),
    gradcam: Annotated[
        bool, typer.Option("--gradcam", help="Grad-CAM heatmap of the last conv layer.")
    ] = False,
    class_: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Class (name or index) for Grad-CAM (default: predicted); multi-label: a "
            "label (default: the most likely); regression: a target (default: the first).",
        ),
    ] = None,
    max_channels: Annotated[int, typer.Option(help="Channels drawn per layer at most.")] = 256,
    classes: ClassesOpt = None,
    scale: ScaleOpt = None,
    overwrite: OverwriteOpt = False,
    unsafe: UnsafeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Every layer's feature maps as PNG grids, plus index.html to walk through the network."""
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.inference.activations import activations, result_rows, to_json

    checked = check_first(model, images) or model  # a Keras file: read once, passed on
    with ProgressBar("activations") as bar:
        result = activations(
            checked,
            images,
            out,
            layers=layers,
            per_row=per_row,
            cmap=cmap,
            norm=norm,
            raw=raw,
            gradcam=gradcam,
            class_index=class_,
            max_channels=max_channels,
            progress=bar,
            overwrite=overwrite,
            unsafe=unsafe,
            class_names=classes,
            pixel_scale=scale,
        )
    console.notes(result.notes, result.conversion)
    if json_out:
        console.print_json(to_json(result))
        return
    from cnncli.models.head import output_word

    for r in result.images:
        said = (
            r.predicted_class
            if r.task != "classify"
            else (f"{r.predicted_class} ({r.probability:.3f})")
        )
        title = f"{r.image.name}: predicted {said}"
        console.print_table(["#", "layer", "type", "output shape", "file"], result_rows(r), title)
        if r.gradcam:
            console.info(
                f"Grad-CAM ({output_word(r.task)} {r.gradcam_class}, layer "
                f"{r.gradcam_layer}): "
                f"{r.out_dir / r.gradcam}"
            )
        console.info(f"wrote {len(r.layers)} layer maps to {r.out_dir}/ (open index.html)")


def embed_command(
    model: ModelArg,
    inputs: Annotated[
        list[Path], typer.Argument(help="A dataset folder, image files, or a folder of images.")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="The CSV of vectors to write.")],
    layer: Annotated[
        str | None,
        typer.Option(help="Layer name or index (default: the last Flatten, else before the head)."),
    ] = None,
    clusters: Annotated[
        int | None,
        typer.Option(help="Group the vectors with k-means into K clusters (sheets and a plot)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of k-means.")] = 0,
    color_by: Annotated[
        str | None,
        typer.Option(
            "--color-by",
            help="The plot's colours: a multi-label model's label (has it or not), a "
            "regression model's target (its value, with a colour bar; default: the first).",
        ),
    ] = None,
    classes: ClassesOpt = None,
    scale: ScaleOpt = None,
    overwrite: OverwriteOpt = False,
    unsafe: UnsafeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """One vector per image from a layer (CSV); --clusters K groups them like the course."""
    from cnncli.cli import console
    from cnncli.cli.progress import ProgressBar
    from cnncli.inference.embed import embed

    checked = check_first(model, inputs) or model  # a Keras file: read once, passed on
    with ProgressBar("embed") as bar:
        result = embed(
            checked,
            inputs,
            layer=layer,
            out_csv=out,
            clusters=clusters,
            seed=seed,
            overwrite=overwrite,
            unsafe=unsafe,
            progress=bar,
            class_names=classes,
            pixel_scale=scale,
            color_by=color_by,
        )
    console.notes(result.notes, result.conversion)
    if json_out:
        console.print_json(result.to_json())
        return
    rows = [("vectors", f"{result.count} x {result.dims} from {result.layer}", str(result.csv))]
    for k, (path, n) in enumerate(zip(result.cluster_sheets, result.cluster_sizes, strict=True)):
        rows.append((f"cluster {k}", f"{n} images", str(path)))
    if result.projection:
        what = f"coloured by {result.color_by}" if result.color_by else "coloured by class"
        rows.append(("projection", f"PCA, {what}", str(result.projection)))
    console.print_table(["output", "what", "file"], rows)


def register(app: typer.Typer) -> None:
    app.command("activations", no_args_is_help=True)(activations_command)
    app.command("embed", no_args_is_help=True)(embed_command)
