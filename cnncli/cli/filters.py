"""`cnncli filter` and `cnncli pool`: thin commands over cnncli.filters (NumPy + Pillow)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

PROGRESS_FROM = 4  # images: show a progress bar from this many on

ImagesArg = Annotated[
    list[Path] | None, typer.Argument(help="Image files.", show_default=False)
]  # fmt: skip
MatrixOpt = Annotated[
    str | None,
    typer.Option("--matrix", help="A matrix instead of images: '1,2,3;4,5,6' or a .csv/.txt file."),
]
OutOpt = Annotated[
    Path | None, typer.Option("-o", "--out", help="Output file (one image).")
]  # fmt: skip
OutDirOpt = Annotated[
    Path | None,
    typer.Option("--out-dir", help="Folder for the outputs (default: beside each input)."),
]
PaddingOpt = Annotated[
    str, typer.Option("--padding", help="same (TensorFlow's rule) or valid.")
]  # fmt: skip
StrideOpt = Annotated[int, typer.Option("--stride", help="Step between output positions.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
CompressOpt = Annotated[
    int,
    typer.Option(
        "--compress",
        min=0,
        max=9,
        help="PNG compression 0-9, a speed/size trade-off (pixels are identical): 0 stores "
        "uncompressed (fastest, 3 bytes a pixel for RGB); 1-3 use zlib's run-length strategy "
        "(default 1: on a 12 MP photo about 3x faster to write than Pillow's encoder, file "
        "within 2% of ImageMagick's); 4-9 zlib's default strategy, slower, smaller on flat "
        "or synthetic images.",
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
        ),  # fmt: skip
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
        ),  # fmt: skip
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

    Example: cnncli filter --kernel sharpen img.png  (writes img.sharpen.png beside it)
    """
    from cnncli.errors import UsageError
    from cnncli.filters import kernels as K

    if list_kernels:
        return _print_kernels(json_out)
    images = list(images or [])
    if matrix is not None:
        if images:
            raise UsageError("give images or --matrix, not both")
        if kernel is None:
            raise UsageError("--kernel is required", "name one (see --list) or give its rows")
        return _filter_matrix(matrix, K.parse_kernel(kernel, scale), padding, border or "zero",
                              stride, flip, steps, json_out)  # fmt: skip
    if not images:
        raise UsageError("no images given", "name image files, or use --matrix or --list")
    from cnncli.filters.engine import check_options
    from cnncli.filters.files import FilterOptions

    border = border or "reflect"
    check_options(padding, border, stride)
    options = FilterOptions(padding, border, stride, flip, absolute, offset, normalize)
    if gallery is not None:
        _gallery(images, gallery, options, overwrite)
        if kernel is None:
            return
    if kernel is None:
        raise UsageError("--kernel is required", "name one (see --list) or give its rows")
    k = K.parse_kernel(kernel, scale)
    key = K.ALIASES.get(kernel.strip().lower(), kernel.strip().lower())
    tag = key if key in K.NAMED_KERNELS else "filtered"
    from cnncli.filters.files import filter_arrays, stream_filter

    def stream(img, target):
        return stream_filter(img, k, options, target, compress, overwrite)

    _run_images(images, tag, out, out_dir, lambda c, a: filter_arrays(c, a, k, options),
                compress, overwrite, json_out, "filtering", stream)  # fmt: skip


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
    from cnncli.errors import UsageError
    from cnncli.filters.engine import pool
    from cnncli.filters.kernels import parse_matrix

    images = list(images or [])
    if matrix is not None:
        if images:
            raise UsageError("give images or --matrix, not both")
        m = parse_matrix(matrix)
        result = pool(m, op, size, stride, padding)
        data = {"op": op, "size": size, "stride": stride or size, "padding": padding,
                "input": _plain(m), "output": _plain(result)}  # fmt: skip
        return _show_matrix(data, f"{op} pool {size}x{size}, stride {stride or size}, {padding}",
                            json_out)  # fmt: skip
    if not images:
        raise UsageError("no images given", "name image files, or use --matrix")
    pool(__import__("numpy").zeros((size, size)), op, size, stride, "valid")  # check options early
    from cnncli.filters.files import pool_arrays

    _run_images(images, f"{op}pool{size}", out, out_dir,
                lambda c, a: pool_arrays(c, a, op, size, stride, padding),
                compress, overwrite, json_out, "pooling")  # fmt: skip


def _run_images(images, tag, out, out_dir, apply, compress, overwrite, json_out, verb,
                stream=None):  # fmt: skip
    from cnncli.cli import console
    from cnncli.errors import UsageError
    from cnncli.filters.files import output_path, process_files

    if out is not None and len(images) > 1:
        raise UsageError("-o names one output but several images were given", "use --out-dir")
    if out is not None and out_dir is not None:
        raise UsageError("give -o or --out-dir, not both")
    targets = [output_path(p, tag, out, out_dir) for p in images]
    bar = len(images) >= PROGRESS_FROM and not json_out
    ctx = console.progress_bar(verb, len(images)) if bar else nullcontext(None)
    with ctx as advance:
        written = process_files(images, targets, apply, compress, overwrite, advance, stream)
    if json_out:
        console.print_json([
            {"input": str(w.source), "output": str(w.output), "mode": w.mode,
             "width": w.size[0], "height": w.size[1], "notes": w.notes}
            for w in written
        ])  # fmt: skip
        return
    for w in written:
        for note in w.notes:
            console.info(f"{w.source}: {note}")
        console.info(f"wrote {w.output} ({w.mode} {w.size[0]}x{w.size[1]})")


def _gallery(images, path, options, overwrite):
    from cnncli.cli import console
    from cnncli.errors import UsageError
    from cnncli.filters.files import check_outputs, open_input, save_image
    from cnncli.filters.gallery import filter_gallery

    if len(images) != 1:
        raise UsageError("--gallery takes one image", f"got {len(images)}")
    check_outputs([(images[0], path)], overwrite)
    sheet = filter_gallery(open_input(images[0]), options=options)
    save_image(sheet, path, compress=6, overwrite=overwrite)
    console.info(f"wrote {path} (gallery of every named kernel, {sheet.width}x{sheet.height})")


def _filter_matrix(text, kernel, padding, border, stride, flip, steps, json_out):
    from cnncli.filters.engine import correlate, correlation_steps
    from cnncli.filters.kernels import parse_matrix

    m = parse_matrix(text)
    result = correlate(m, kernel, padding, border, stride, flip)
    data = {"kernel": _plain(kernel), "padding": padding, "border": border, "stride": stride,
            "flip": flip, "input": _plain(m), "output": _plain(result)}  # fmt: skip
    if steps:
        data["steps"] = correlation_steps(m, kernel, padding, border, stride, flip)
        for s in data["steps"]:
            s["value"] = _plain(s["value"])
    what = "convolution" if flip else "cross-correlation"
    _show_matrix(data, f"{what}, padding {padding}, border {border}, stride {stride}", json_out)


def _show_matrix(data, title, json_out):
    from cnncli.cli import console

    if json_out:
        return console.print_json(data)
    for s in data.get("steps", []):
        console.console.print(
            f"({s['row']},{s['col']}): {' + '.join(s['terms'])} = {_cell(s['value'])}",
            soft_wrap=True, highlight=False, markup=False,
        )  # fmt: skip
    rows = data["output"]
    columns = [""] + [str(j) for j in range(len(rows[0]))]
    console.console.print(title, markup=False)
    console.print_table(columns, [[str(i)] + [_cell(v) for v in r] for i, r in enumerate(rows)],
                        numeric=columns[1:])  # fmt: skip


def _plain(a):
    """NumPy -> nested lists, whole numbers as int."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    if np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64).tolist()
    return np.round(a, 10).tolist()


def _cell(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}"


def _print_kernels(json_out: bool) -> None:
    from cnncli.cli import console
    from cnncli.filters import kernels as K

    if json_out:
        return console.print_json([
            {"name": n, "matrix": _plain(K.named_kernel(n)), "description": K.kernel_description(n)}
            for n in K.NAMED_KERNELS
        ])  # fmt: skip
    rows = [(n, "\n".join(K.format_kernel(K.named_kernel(n))), K.kernel_description(n))
            for n in K.NAMED_KERNELS]  # fmt: skip
    console.print_table(["kernel", "matrix", "what it does"], rows, title="Named kernels")
