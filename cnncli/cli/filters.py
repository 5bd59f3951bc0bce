"""`cnncli filter` and `cnncli pool`: thin commands over cnncli.filters (NumPy + Pillow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncli.cli import completion as complete
from cnncli.cli.options import JsonOpt, OverwriteOpt
from cnncli.cli.progress import ProgressBar

PROGRESS_FROM = 4  # images: show a progress bar from this many on

ImagesArg = Annotated[list[Path] | None, typer.Argument(help="Image files.", show_default=False)]
MatrixOpt = Annotated[
    str | None,
    typer.Option("--matrix", help="A matrix instead of images: '1,2,3;4,5,6' or a .csv/.txt file."),
]
OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="Output file (one image).")]
OutDirOpt = Annotated[
    Path | None,
    typer.Option("--out-dir", help="Folder for the outputs (default: the current folder)."),
]
PaddingOpt = Annotated[str, typer.Option("--padding", help="same (TensorFlow's rule) or valid.")]
StrideOpt = Annotated[int, typer.Option("--stride", help="Step between output positions.")]
CompressOpt = Annotated[
    int,
    typer.Option(
        "--compress",
        min=0,
        max=9,
        help="PNG compression 0-9, a speed/size trade-off (pixels are identical): 0 stores "
        "uncompressed (fastest, 3 bytes a pixel for RGB); 1-3 use zlib's run-length strategy "
        "(default 1: the row filter chosen per row as libpng does; measured on a 12 MP "
        "photo-like image, the file 0.9997x the size of ImageMagick's, the command about "
        "0.6x its time); 4-9 zlib's default strategy, slower, smaller on flat or "
        "synthetic images.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("filter", no_args_is_help=True)(filter_command)
    app.command("pool", no_args_is_help=True)(pool_command)


def filter_command(
    images: ImagesArg = None,
    kernel: Annotated[
        str | None,
        typer.Option(
            "--kernel",
            "-k",
            help="A named kernel (see --list), rows like "
            "'0,-1,0;-1,5,-1;0,-1,0', or a text/CSV file.",
            autocompletion=complete.kernels,
        ),
    ] = None,
    scale: Annotated[float | None, typer.Option(help="Multiply the kernel by this.")] = None,
    list_kernels: Annotated[bool, typer.Option("--list", help="Show the named kernels.")] = False,
    matrix: MatrixOpt = None,
    out: OutOpt = None,
    out_dir: OutDirOpt = None,
    padding: PaddingOpt = "same",
    border: Annotated[
        str | None,
        typer.Option(
            help="What padding holds: reflect (default for images, like OpenCV), edge, "
            "or zero (default for matrices, what a CNN layer does)."
        ),
    ] = None,
    stride: StrideOpt = 1,
    flip: Annotated[
        bool, typer.Option("--flip", help="Turn the kernel 180 degrees: true convolution.")
    ] = False,
    absolute: Annotated[bool, typer.Option("--abs", help="Absolute value of the result.")] = False,
    offset: Annotated[float, typer.Option(help="Add this to the result (e.g. 128).")] = 0.0,
    normalize: Annotated[
        bool, typer.Option("--normalize", help="Stretch the result's range to the image's.")
    ] = False,
    steps: Annotated[
        bool, typer.Option("--steps", help="With --matrix: show each position's multiply-and-sum.")
    ] = False,
    gallery: Annotated[
        Path | None,
        typer.Option("--gallery", help="Write a sheet: the image and every named kernel's result."),
    ] = None,
    compress: CompressOpt = 1,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Apply a kernel (cross-correlation, as CNN layers compute it) to images or a matrix.

    Example: cnncli filter --kernel sharpen img.png  (writes img.sharpen.png in the current folder)
    """
    from cnncli.filters.files import FilterOptions, filter_files
    from cnncli.filters.matrices import filter_matrix

    if list_kernels:
        return _print_kernels(json_out)
    images = list(images or [])
    if matrix is not None:
        _matrix_alone(images)
        result = filter_matrix(
            matrix, kernel, scale, padding, border or "zero", stride, flip, steps
        )
        return _show_matrix(result, json_out)
    options = FilterOptions(padding, border or "reflect", stride, flip, absolute, offset, normalize)
    if gallery is not None:
        _gallery(images, gallery, options, overwrite)
        if kernel is None:
            return
    with ProgressBar("filtering", enabled=_bar(images, json_out)) as bar:
        written = filter_files(
            images,
            kernel,
            options,
            scale=scale,
            out=out,
            out_dir=out_dir,
            compress=compress,
            overwrite=overwrite,
            progress=bar,
        )
    _show_written(written, json_out)


def pool_command(
    images: ImagesArg = None,
    op: Annotated[str, typer.Option("--op", help="max, avg or min.")] = "max",
    size: Annotated[int, typer.Option("--size", help="Window size (N x N).")] = 2,
    stride: Annotated[int | None, typer.Option("--stride", help="Default: the size.")] = None,
    padding: Annotated[str, typer.Option("--padding", help="valid (default) or same.")] = "valid",
    matrix: MatrixOpt = None,
    out: OutOpt = None,
    out_dir: OutDirOpt = None,
    compress: CompressOpt = 1,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Max, average or min pooling of images (each channel) or a matrix, as tf.nn.pool does.

    Example: cnncli pool --op max --size 2 --stride 1 --matrix "3,2,2;4,2,4;5,1,4"
    """
    from cnncli.filters.files import pool_files
    from cnncli.filters.matrices import pool_matrix

    images = list(images or [])
    if matrix is not None:
        _matrix_alone(images)
        return _show_matrix(pool_matrix(matrix, op, size, stride, padding), json_out)
    with ProgressBar("pooling", enabled=_bar(images, json_out)) as bar:
        written = pool_files(
            images,
            op,
            size,
            stride,
            padding,
            out=out,
            out_dir=out_dir,
            compress=compress,
            overwrite=overwrite,
            progress=bar,
        )
    _show_written(written, json_out)


def _matrix_alone(images) -> None:
    from cnncli.errors import UsageError

    if images:
        raise UsageError("give images or --matrix, not both")


def _bar(images, json_out: bool) -> bool:
    return len(images) >= PROGRESS_FROM and not json_out


def _gallery(images, path, options, overwrite) -> None:
    from cnncli.cli import console
    from cnncli.errors import UsageError
    from cnncli.filters.files import require_images
    from cnncli.filters.gallery import write_gallery

    require_images(images, "name image files, or use --matrix or --list")
    if len(images) != 1:
        raise UsageError("--gallery takes one image", f"got {len(images)}")
    sheet = write_gallery(images[0], path, options, overwrite)
    console.info(f"wrote {path} (gallery of every named kernel, {sheet.width}x{sheet.height})")


def _show_written(written, json_out: bool) -> None:
    from cnncli.cli import console

    if json_out:
        return console.print_json([w.to_json() for w in written])
    for w in written:
        for note in w.notes:
            console.info(f"{w.source}: {note}")
        console.info(f"wrote {w.output} ({w.mode} {w.size[0]}x{w.size[1]})")


def _show_matrix(result, json_out: bool) -> None:
    from cnncli.cli import console

    data = result.data
    if json_out:
        return console.print_json(data)
    for s in data.get("steps", []):
        console.console.print(
            f"({s['row']},{s['col']}): {' + '.join(s['terms'])} = {_cell(s['value'])}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    rows = data["output"]
    columns = [""] + [str(j) for j in range(len(rows[0]))]
    console.console.print(result.title, markup=False)
    console.print_table(
        columns, [[str(i)] + [_cell(v) for v in r] for i, r in enumerate(rows)], numeric=columns[1:]
    )


def _cell(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}"


def _print_kernels(json_out: bool) -> None:
    from cnncli.cli import console
    from cnncli.filters import kernels as K
    from cnncli.filters.matrices import plain

    if json_out:
        return console.print_json(
            [
                {
                    "name": n,
                    "matrix": plain(K.named_kernel(n)),
                    "description": K.kernel_description(n),
                }
                for n in K.NAMED_KERNELS
            ]
        )
    rows = [
        (n, "\n".join(K.format_kernel(K.named_kernel(n))), K.kernel_description(n))
        for n in K.NAMED_KERNELS
    ]
    console.print_table(["kernel", "matrix", "what it does"], rows, title="Named kernels")
