"""Fuzzing the readers of what a user hands cnncli: label tables, images and the metadata in
model files, and `dataset build` command lines with the task and table options (--task,
--label-cols, --target-col, --label-delim, --split-files) over tables made for them.
Whatever the bytes, only cnncli's own errors (CnnError: one line, exit 1 or 2) may come
out, never an "unexpected" IndexError, struct.error or UnicodeDecodeError.

Each example is one hypothesis draw of bytes that `Choices` reads as a program: which table
cells, which mutations of a small valid image or archive, which JSON values in which keys
(one draw keeps hypothesis' cost per example low, and it still shrinks a failure to a short
program). Derandomized and with no example database, so CI runs the same examples every
time; bench/probe_reliability.py's fuzz section runs many more, at random.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import warnings
import zipfile
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnncli.errors import CnnError
from cnncli.images import ImageSpec, load_image, probe_image

pytestmark = pytest.mark.slow  # whole runs of cnncli: the slow suite (.ci/run runs it)

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
TABLE_EXAMPLES = 1000
IMAGE_EXAMPLES = 2000
METADATA_EXAMPLES = 1500
program = st.binary(min_size=1, max_size=96)


def only_cnncli_errors(call, *args, **kwargs) -> None:
    """Run call(*args); a CnnError is an answer, anything else fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's "Truncated File Read", "Corrupt EXIF"
            call(*args, **kwargs)
    except CnnError as e:
        assert "\n" not in e.one_line()


class Choices:
    """Choices read from fuzz bytes, 0 once they run out (so a shorter program is a
    simpler input, and hypothesis shrinks toward it)."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at <= len(self.data) else 0

    def number(self) -> int:
        return int.from_bytes(bytes(self.byte() for _ in range(3)), "big")

    def pick(self, options):
        return options[self.byte() % len(options)]


# --- byte mutations, shared by the three readers ---------------------------------------
WORDS = (0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def mutate(data: bytes, c: Choices, most: int = 4) -> bytes:
    """1..`most` mutations of `data` (positions in the first 160 bytes, the headers, half
    the time): set a byte, delete or insert a run, cut the rest off, write a 32-bit word."""
    d = bytearray(data)
    for _ in range(1 + c.byte() % most):
        if not d:
            break
        k = (c.byte() % 160 if c.byte() % 2 else c.number()) % len(d)
        op, byte = c.byte() % 5, c.byte()
        if op == 0:
            d[k] = byte
        elif op == 1:
            del d[k : k + 1 + byte % 16]
        elif op == 2:
            d[k:k] = bytes([byte]) * (1 + c.byte() % 8)
        elif op == 3:
            del d[k:]
        else:
            d[k : k + 4] = struct.pack(">I", c.pick(WORDS))
    return bytes(d)


# --- label tables ----------------------------------------------------------------------
CELLS = [
    "a.png",
    "b.png",
    "sub/c.png",
    "../a.png",
    "/etc/passwd",
    "C:/x.png",
    "0",
    "1",
    "2",
    "O",
    "1.0",
    "-1",
    "+1",
    "",
    " ",
    "9" * 400,
    "a.png\x00",
    "벽돌",
    "x,y",
    '"q',
    "nan",
    "y",
    "label",
    "type",
    "image",
    "Unnamed: 0",
    "index",
    "train",
    "val",
    "test",
    "a" * 300,
    "é",
    "e\u0301",
    "\ufeff",
    "\u2028",
    "\ud800",
    "\x1f",
    "😀",
    "'",
    '"',
    "\\",
]
SEPARATORS = [",", ",", "\t", ";", "\n", "\n", "\r\n", '"']
ENCODINGS = ["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp949", "latin-1"]


def table_bytes(c: Choices) -> bytes:
    """A table-like text (cells and separators) in some encoding, mutated now and then."""
    form = c.byte() % 8
    if form == 0:  # any bytes at all
        return c.data[c.at :]
    tokens = [c.pick(CELLS) if i % 2 == 0 else c.pick(SEPARATORS) for i in range(c.byte() % 40)]
    data = "".join(tokens).encode(c.pick(ENCODINGS), "replace")
    return mutate(data, c, 3) if form == 1 else data


def images_folder(root):
    """IMAGES_DIR for the tables: a.png, b.png, sub/c.png, 0.png ... 7.png (4x4)."""
    for name in ("a.png", "b.png", "sub/c.png", *(f"{k}.png" for k in range(8))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / name)
    return root


def table_example(data: bytes, work) -> None:
    """One label table from the program `data`, read alone and against images_folder(work)."""
    from cnncli.datasets.labels import load_label_table
    from cnncli.datasets.tables import read_table

    c = Choices(data)
    encoding = c.pick([None, None, None, None, "utf-16", "cp949"])
    table = work.parent / f"{work.name}.csv"
    table.write_bytes(table_bytes(c))
    only_cnncli_errors(read_table, table, encoding)
    only_cnncli_errors(load_label_table, table, work, encoding=encoding)


def test_label_tables(tmp_path_factory):
    work = images_folder(tmp_path_factory.mktemp("fuzz_images"))

    @settings(FUZZ, max_examples=TABLE_EXAMPLES)
    @given(program)
    def examples(data):
        table_example(data, work)

    examples()


# --- dataset build command lines: the task options and their tables ---------------------
COMMAND_EXAMPLES = 60
IMAGE_NAMES = [f"{k}.png" for k in range(8)]
IMAGE_CELLS = IMAGE_NAMES + ["sub/c.png", "d.png", "../0.png", "", "/etc/passwd", "0.png"]
NUMBERS = [
    "0",
    "1",
    "2",
    "1.5",
    "-2",
    "+1",
    "0.0",
    "3.4e38",
    "3.5e38",
    "1e308",
    "-1e300",
    "1e-40",
    "1e-46",
    "nan",
    "inf",
    "1e999",
    "",
    "x",
]
COLUMNS = {  # a column name -> the values its cells take
    "y": ["0", "1"] * 4 + NUMBERS + ["벽돌"],
    "brightness": ["0.5", "2", "1e3", "-4"] * 3 + NUMBERS,
    "tags": ["a;b", "a", "b", "a;b", "b;a", "a|b", "a;a", "", "c", " a ; b "],
    "a": ["0", "1", "1", "0"] * 4 + ["2", "", "x", "1.0"],
    "b": ["1", "0", "1"] * 5 + ["2", "", "-1"],
    "split": ["train", "val", "train", "test", "train", "val", "", "x"],
    "name": ["a", "b", "a", "b", "c", ""],
    "": ["0", "1", "2"],
    " y": NUMBERS[:7],
    "Y": NUMBERS[:7],
    "a.1": ["0", "1"],
}
OPTION_VALUES = {
    "--task": ["classify", "multilabel", "multilabel", "regression", "regression", "bogus"],
    "--label-cols": ["a,b", "a,b", "a,a,b", ",", "a", "tags", "zz", "a,,b", " a , b ", "a.1,b"],
    "--target-col": ["y", "y", "brightness", "y,brightness", ",", "zz", " y", "a.1", "y,y", "a"],
    "--label-col": ["tags", "tags", "y", "zz", "a", ""],
    "--label-delim": [";", ";", ",", "", "|", ";;", " ", "\t"],
    "--split-files": [
        "train.txt,val.txt",
        "train.txt,val.txt",
        "val=val.txt",
        "x.txt",
        "train=train.txt,train=val.txt",
        ",",
        "train.txt,val.txt,test.txt,val.txt",
        "test=missing.txt",
        "train.txt,val.txt,test.txt",
    ],
    "--split-col": ["split", "split", "zz", "y"],
    "--image-col": ["image", "image", "y", "zz"],
    "--name-col": ["name", "tags"],
    "--classes": ["a,b", "a,a", ",", "0,1"],
    "--val": ["0.25", "0.5", "0", "0.99", "-1"],
}
TASK_FLAGS = {  # the options each task takes, drawn more often than the others
    "classify": ["--split-col", "--split-files", "--classes", "--name-col", "--image-col"],
    "multilabel": ["--label-cols", "--label-col", "--label-delim", "--split-files"],
    "regression": ["--target-col", "--target-col", "--split-files", "--split-col"],
    "bogus": [],
}


def task_table(c: Choices, columns: list[str]) -> bytes:
    """A label table with an image column, `columns` and cells their kind takes (a name
    now and then twice), or (one time in 16) any table-like bytes."""
    if c.byte() % 16 == 15:
        return table_bytes(c)
    cols = ["image"] + columns
    if c.byte() % 16 == 15:
        cols.append(c.pick(cols))
    sep = c.pick([",", ",", ",", "\t", ";"])
    lines = [sep.join(cols)]
    for row in range(4 + c.byte() % 10):  # cell `row` of each list, or one further on
        cells = [IMAGE_CELLS if col == "image" else COLUMNS[col] for col in cols]
        lines.append(sep.join(v[(row + c.byte()) % len(v)] for v in cells))
    return "\n".join(lines).encode()


def build_command(c: Choices, work) -> list[str]:
    """`dataset build` arguments from the program: a task, the option it needs (mostly), up
    to two more (mostly the task's own; a flag may come twice), a table holding the columns
    they name plus a few others (written beside `work`), and split files listing images."""
    task = c.pick(OPTION_VALUES["--task"])
    options = ["--task", task]
    if task in ("multilabel", "regression") and c.byte() % 4 != 3:  # what it needs, mostly
        flag = c.pick(["--label-cols", "--label-col"]) if task == "multilabel" else "--target-col"
        options += [flag, OPTION_VALUES[flag][0]]
    for _ in range(c.byte() % 8 // 3):
        own = TASK_FLAGS[task] if c.byte() % 4 != 3 and TASK_FLAGS[task] else list(OPTION_VALUES)
        flag = c.pick(own)
        options += [flag, c.pick(OPTION_VALUES[flag])]
    named = [n.strip() for v in options[1::2] for n in v.split(",")]
    columns = [n for n in COLUMNS if n in named or c.byte() % 4 == 3]
    table = work.parent / f"{work.name}-task.csv"
    table.write_bytes(task_table(c, columns))
    for name in ("train.txt", "val.txt", "test.txt"):
        lines = [
            IMAGE_CELLS[(k + c.byte()) % 13] + c.pick(["", " 1", "\t0", " a;b"])
            for k in range(c.byte() % 8)
        ]
        (work.parent / name).write_text("\n".join(lines), encoding="utf-8")
    args = [
        "dataset",
        "build",
        str(work),
        "--labels",
        str(table),
        "-o",
        str(work.parent / "ds"),
        "--overwrite",
        "--workers",
        "1",
        *options,
    ]
    if c.byte() % 2:
        args.append("--skip-bad")
    return args


@functools.cache
def _command():
    """cnncli's click command, built once (typer's CliRunner builds it again on every call:
    0.4 s, most of an example's time)."""
    from typer.main import get_command

    from cnncli.cli.main import app

    return get_command(app)


def run_command(args: list[str], cwd) -> tuple[int, str]:
    """Run cnncli in-process in `cwd` -> (exit code, stderr)."""
    from typer.testing import CliRunner

    here = os.getcwd()
    os.chdir(cwd)
    try:
        with CliRunner().isolation() as (_out, err, _both):
            try:
                _command().main(args=args, prog_name="cnncli")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            return code, err.getvalue().decode("utf-8", "replace")
    finally:
        os.chdir(here)


def command_example(data: bytes, work) -> None:
    """One `dataset build` command line from the program `data`, run in-process from the
    folder that holds `work`: exit 0, or one "error:" line and exit 1 or 2; never an
    "unexpected ..." error or a traceback."""
    args = build_command(Choices(data), work)
    code, err = run_command(args, work.parent)  # the split files' relative names
    assert "unexpected" not in err and "Traceback" not in err, (args, err)
    assert code in (0, 1, 2), (args, code, err)
    if code:
        last = [line for line in err.splitlines() if line.strip()][-1]
        assert last.startswith("error: "), (args, err)


def test_build_command_lines(tmp_path_factory):
    """--task multilabel/regression, --label-cols, --target-col, --label-delim,
    --split-files (issue 23): random command lines over random tables."""
    work = images_folder(tmp_path_factory.mktemp("fuzz_commands") / "images")

    @settings(FUZZ, max_examples=COMMAND_EXAMPLES)
    @given(program)
    def examples(data):
        command_example(data, work)

    examples()


# --- images ----------------------------------------------------------------------------
def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_with_late_chunk(data: bytes, cid: bytes, body: bytes) -> bytes:
    """`data` (a PNG) with a chunk put just before IEND, after the pixel data."""
    chunk = struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body))
    end = data.rindex(b"\0\0\0\0IEND")
    return data[:end] + chunk + data[end:]


def small_images() -> dict[str, bytes]:
    """One small valid file per format and variant the loader meets."""
    rgb = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    turned = Image.Exif()
    turned[0x0112] = 6
    frames = [img.quantize(8), Image.fromarray(rgb[::-1]).quantize(8)]
    return {
        "png": _encode(img, "PNG"),
        "png-late-exif": png_with_late_chunk(_encode(img, "PNG"), b"eXIf", turned.tobytes()[6:]),
        "png-16bit": _encode(Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), "PNG"),
        "png-palette": _encode(frames[0], "PNG", transparency=0),
        "jpg": _encode(img, "JPEG", exif=turned),
        "jpg-progressive": _encode(img.convert("L"), "JPEG", progressive=True),
        "jpg-cmyk": _encode(img.convert("CMYK"), "JPEG"),
        "mpo": _encode(img, "MPO", save_all=True, append_images=[img.rotate(90)]),
        "gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "tif": _encode(img, "TIFF"),
        "tif-lzw": _encode(img.convert("RGBA"), "TIFF", compression="tiff_lzw"),
        "tif-pages": _encode(img, "TIFF", save_all=True, append_images=[img.convert("L")]),
        "bmp": _encode(img, "BMP"),
        "webp": _encode(img, "WEBP", lossless=True, exif=turned),
    }


SPECS = [
    ImageSpec(6, 6, color, fit)
    for color, fit in (("rgb", "stretch"), ("grayscale", "crop"), ("rgba", "pad"))
]


def image_example(data: bytes, work, bases: dict[str, bytes]) -> None:
    """One mutation of a small valid image (`bases`: small_images()), probed and loaded."""
    c = Choices(data)
    kind, spec = c.pick(sorted(bases)), c.pick(SPECS)
    path = work / f"image.{kind.split('-')[0]}"
    path.write_bytes(mutate(bases[kind], c))
    only_cnncli_errors(probe_image, path)
    only_cnncli_errors(load_image, path, spec)


def test_images(tmp_path_factory):
    work, bases = tmp_path_factory.mktemp("fuzz_image"), small_images()

    @settings(FUZZ, max_examples=IMAGE_EXAMPLES)
    @given(program)
    def examples(data):
        image_example(data, work, bases)

    examples()


# --- model metadata and config -----------------------------------------------------------
STRINGS = [
    "",
    "a",
    "rgb",
    "rgba",
    "grayscale",
    "RGB",
    "stretch",
    "crop",
    "pad",
    "1",
    "abc",
    "1/255",
    "uint8",
    "벽돌",
    "\ud800",
    "x" * 300,
]
KEYS = [
    "height",
    "width",
    "channels",
    "color",
    "fit",
    "dtype",
    "format_version",
    "class_names",
    "image",
    "pixel_scale",
    "",
]
FLOATS = [0.5, 1 / 255, -1.0, 0.0, 1e308, float("inf"), float("-inf"), float("nan"), 8.0]


def json_value(c: Choices, depth: int = 0):
    """Any JSON value (NaN and Infinity too, as Python's json writes and reads them)."""
    kind = c.byte() % (10 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return bool(c.byte() % 2)
    if kind == 2:
        return c.number() % 70_004 - 3  # around image sizes, negative ones too
    if kind == 3:
        return 10 ** (c.byte() * 2) + c.byte()  # up to 500 digits
    if kind == 4:
        return c.pick(FLOATS)
    if kind in (5, 6):
        return c.pick(STRINGS)
    if kind in (7, 8):
        return [json_value(c, depth + 1) for _ in range(c.byte() % 4)]
    return {c.pick(KEYS): json_value(c, depth + 1) for _ in range(c.byte() % 4)}


def image_spec(c: Choices) -> dict:
    """An image spec as cnncli stores it, with each key kept, dropped or replaced."""
    plausible = {
        "height": 8,
        "width": 8,
        "channels": 3,
        "color": "rgb",
        "fit": "stretch",
        "dtype": "uint8",
    }
    out = {}
    for key, good in plausible.items():
        how = c.byte() % 4
        if how in (0, 1):
            out[key] = good if how == 0 else c.pick([1, 2, 4, 16, 60_000, 65_535])
        elif how == 2:
            out[key] = json_value(c)
    return out


def metadata(c: Choices) -> dict:
    """Stored metadata with each key kept, dropped or of any type."""
    plausible = {
        "format_version": 1,
        "class_names": ["a", "b"],
        "image": None,
        "pixel_scale": 1 / 255,
    }
    out = {}
    for key, good in plausible.items():
        how = c.byte() % 3
        if how == 0:
            out[key] = image_spec(c) if key == "image" else good
        elif how == 1:
            out[key] = json_value(c)
    return out


SEQUENTIAL = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}}
CONFIGS = [
    b"{}",
    b"[]",
    b'"x"',
    b"{",
    b"\xff\xfe{}",
    b"[" * 100_000,
    b"{}" * 3,
    json.dumps(SEQUENTIAL).encode(),
]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def fake_model(input_shape, units: int):
    """What cnncli.models.metadata reads of a Keras model, without Keras."""
    return SimpleNamespace(
        inputs=[SimpleNamespace(shape=input_shape)],
        outputs=[SimpleNamespace(shape=(None, units))],
        layers=[],
    )


MODELS = [fake_model((None, 8, 8, 3), 2), fake_model((None, None, None, 1), 1)]


def _use(meta, path) -> None:
    from cnncli.models.metadata import check_stored, model_metadata

    stored = check_stored(meta, path)
    for model in MODELS:
        model_metadata(model, stored, path)


def model_example(data: bytes, work) -> None:
    """One model archive from the program `data` (metadata of any types, a config, the
    member or the whole archive mutated): its metadata and config read, the metadata used."""
    from cnncli.models.files import read_config, read_metadata

    c = Choices(data)
    where, config, meta = c.byte() % 4, c.pick(CONFIGS), metadata(c)
    member = json.dumps(meta).encode()
    if where == 1:
        member = mutate(member, c, 3)
    archive = _zip({"config.json": config, "cnncli.json": member, "model.weights.h5": b""})
    path = work / "m.keras"
    path.write_bytes(mutate(archive, c, 3) if where == 2 else archive)
    only_cnncli_errors(read_metadata, path)
    only_cnncli_errors(read_config, path)
    only_cnncli_errors(_use, meta, path)


def test_model_metadata_and_config(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz_model")

    @settings(FUZZ, max_examples=METADATA_EXAMPLES)
    @given(program)
    def examples(data):
        model_example(data, work)

    examples()
