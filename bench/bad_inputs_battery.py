"""The battery of bench/bad_inputs_probe.py (issue 13, items 4, 8, 9 and 13): about 60 bad
inputs, each a `Case` whose setup makes its files in a folder and returns the `cnncli`
arguments to run and the strings stderr must hold (the bad file, the table line)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Case:
    item: int
    name: str
    setup: Callable  # (folder) -> (cnncli arguments, strings stderr must hold)
    model: bool = False  # needs the tiny model (TensorFlow)
    may_decode: bool = False  # damaged at random: it may still be a valid image (exit 0)
    max_seconds: float | None = None
    max_lines: int | None = None


# ------------------------------------------------------------------------------ inputs
def _arr(shape=(6, 5), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), np.uint8)


def _encoded(fmt: str, shape=(32, 24), **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_arr(shape, 1)).save(buf, fmt, **save)
    return buf.getvalue()


def _images(folder: Path, n: int = 6, shape=(6, 5)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        Image.fromarray(_arr(shape, i)).save(folder / f"{i}.png")
        names.append(f"{i}.png")
    return names


def _table(root: Path, rows: list[str], header: str = "image,y") -> Path:
    path = root / "t.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _build(root: Path, table: Path | None = None, *extra) -> list[str]:
    args = ["dataset", "build", str(root / "imgs"), "-o", str(root / "ds"), "--val", "0"]
    return args + (["--labels", str(table)] if table else []) + list(extra)


def labels_case(labels: list[str], named: list[str], *extra):
    """Six good images labelled `labels` (one per image, as written)."""

    def setup(root: Path):
        _images(root / "imgs", len(labels))
        table = _table(root, [f"{i}.png,{lab}" for i, lab in enumerate(labels)])
        return _build(root, table, *extra), named

    return setup


def one_bad_file(name: str, data: bytes | Callable, *extra):
    """Six good images (two classes) and one bad file `name` in class 0, in a table; all
    converted to 6x5 (the bad file is 32x24)."""

    def setup(root: Path):
        good = _images(root / "imgs")
        path = root / "imgs" / name
        if callable(data):
            data(path)
        else:
            path.write_bytes(data)
        rows = [f"{g},{i % 2}" for i, g in enumerate(good)] + [f"{name},0"]
        size = () if "--size" in extra else ("--size", "6x5")
        return _build(root, _table(root, rows), *extra, *size), [name]

    return setup


def with_blocker(blocker: str, bad_name: str, bad_data: bytes):
    """A problem that stops the whole build, and a damaged image: both must be listed."""

    def setup(root: Path):
        good = _images(root / "imgs", 8)
        labels = [i % 2 for i in range(8)]
        rows, named, extra = [], [bad_name], []
        if blocker == "gap":
            labels = [2 * (i % 2) for i in range(8)]
            named.append("must run 0..K-1")
        rows = [f"{g},{lab}" for g, lab in zip(good, labels, strict=True)]
        if blocker == "long name":
            rows.append("x" * 300 + ".png,1")
            named.append("file name too long")
        if blocker == "odd size":
            Image.fromarray(_arr((9, 9))).save(root / "imgs" / "odd.png")
            rows.append("odd.png,1")
            named.append("(odd.png)")
        if blocker == "class too small":
            Image.fromarray(_arr()).save(root / "imgs" / "only.png")
            rows.append("only.png,2")
            named.append("class '2' has 1 image")
        (root / "imgs" / bad_name).write_bytes(bad_data)
        rows.append(f"{bad_name},0")
        if not bad_name.endswith(".png"):
            extra = ["--size", "6x5"]
        args = _build(root, _table(root, rows), *extra)
        args[args.index("--val") + 1] = "0.2"
        return args, named

    return setup


def _cut(data: bytes, fraction: float = 0.6) -> bytes:
    return data[: int(len(data) * fraction)]


def _flipped(data: bytes, seed: int, n: int = 3) -> bytes:
    rnd = random.Random(seed)
    out = bytearray(data)
    for _ in range(n):
        at = rnd.randrange(8, len(out))
        out[at] = rnd.randrange(256)
    return bytes(out)


def _tiff_without_width() -> bytes:
    data = bytearray(_encoded("TIFF"))
    ifd = int.from_bytes(data[4:8], "little")
    count = int.from_bytes(data[ifd : ifd + 2], "little")
    for k in range(count):
        at = ifd + 2 + 12 * k
        if int.from_bytes(data[at : at + 2], "little") == 256:  # ImageWidth
            data[at : at + 2] = (65000).to_bytes(2, "little")
    return bytes(data)


def _jpeg_segment(length: int, marker: bytes = b"\xff\xc0") -> bytes:
    """A JPEG whose `marker` segment claims `length` bytes."""
    data = bytearray(_encoded("JPEG"))
    at = data.find(marker)
    data[at + 2 : at + 4] = length.to_bytes(2, "big")
    return bytes(data)


def _gif_variant(offset: int, value: int) -> bytes:
    data = bytearray(_encoded("GIF"))
    data[offset] = value
    return bytes(data)


def _gif_lzw_size(value: int) -> bytes:
    data = bytearray(_encoded("GIF"))
    at = data.find(b"\x2c")  # the image descriptor; the LZW minimum code size follows it
    data[at + 10] = value
    return bytes(data)


def _lzw_tiff_damaged() -> bytes:
    data = bytearray(_encoded("TIFF", compression="tiff_lzw"))
    data[20:60] = b"\xff" * 40
    return bytes(data)


def _corrupt_exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 1
    buf = io.BytesIO()
    Image.fromarray(_arr()).save(buf, "JPEG", exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    at = data.find(b"Exif\x00\x00") + 6
    data[at + 4 : at + 8] = b"\xff\xff\xff\x00"
    return bytes(data)


def utf16_odd(root: Path):
    _images(root / "imgs", 4)
    text = "image,y\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(4))
    (root / "t.csv").write_bytes(b"\xff\xfe" + text.encode("utf-16-le") + b"\x00")
    return _build(root, root / "t.csv"), ["t.csv"]


def non_utf8_name(root: Path):
    for cls in ("a", "b"):
        _images(root / "imgs" / cls, 3)
    bad = os.path.join(os.fsencode(root / "imgs" / "a"), b"caf\xe9.png")
    with open(bad, "wb") as f:
        f.write(_encoded("PNG", (6, 5)))
    return _build(root), ["caf\\xe9.png"]


def output_under_a_file(root: Path):
    _images(root / "imgs" / "a", 2)
    _images(root / "imgs" / "b", 2)
    (root / "afile").write_text("not a folder")
    return ["dataset", "build", str(root / "imgs"), "-o", str(root / "afile" / "out")], ["afile"]


def mixed_sizes(root: Path):
    _images(root / "imgs" / "a", 3)
    _images(root / "imgs" / "b", 2)
    Image.fromarray(_arr((9, 7))).save(root / "imgs" / "b" / "big.png")
    return _build(root), ["(first a/0.png)", "(b/big.png)"]


def folder_named_png(root: Path):
    good = _images(root / "imgs")
    (root / "imgs" / "dir.png").mkdir()
    rows = [f"{g},{i % 2}" for i, g in enumerate(good)] + ["dir.png,0"]
    return _build(root, _table(root, rows)), ["dir.png", "is a folder, not an image"]


def dataset_version_text(root: Path):
    args, _ = labels_case(["0", "1"] * 3, [])(root)
    subprocess.run([sys.executable, "-m", "cnncli", *args], capture_output=True, check=True)
    manifest = json.loads((root / "ds" / "manifest.json").read_text())
    manifest["format_version"] = "1"
    (root / "ds" / "manifest.json").write_text(json.dumps(manifest))
    return ["dataset", "info", str(root / "ds")], ["format_version must be a whole number"]


def many_missing(n: int):
    def setup(root: Path):
        good = _images(root / "imgs", 4)
        rows = [f"{g},{i % 2}" for i, g in enumerate(good)]
        rows += [f"gone{i}.png,{i % 2}" for i in range(n)]
        return _build(root, _table(root, rows)), [f"all {n:,} problems are listed in"]

    return setup


# ------------------------------------------------------------------------------ models
_MODEL: dict = {}


def _tiny_model(workdir: Path, suffix: str = ".keras") -> bytes:
    """A model file of a 6x5 RGB classifier with cnncli's metadata (made once per suffix)."""
    if suffix not in _MODEL:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        from cnncli.models.io import save_model

        model = keras.Sequential(
            [keras.Input((6, 5, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
        )
        path = workdir / f"tiny{suffix}"
        save_model(
            model,
            path,
            {
                "class_names": ["a", "b"],
                "pixel_scale": 1 / 255,
                "image": {"height": 6, "width": 5, "color": "rgb"},
            },
        )
        _MODEL[suffix] = path.read_bytes()
    return _MODEL[suffix]


def hostile_model(member: str, content: bytes):
    """The tiny model with one zip member replaced by `content`; predict one image."""

    def setup(root: Path):
        _images(root / "imgs", 1)
        src = zipfile.ZipFile(io.BytesIO(_tiny_model(root.parent)))
        with zipfile.ZipFile(root / "m.keras", "w") as out:
            for info in src.infolist():
                out.writestr(info, content if info.filename == member else src.read(info))
        return ["predict", str(root / "m.keras"), str(root / "imgs" / "0.png")], ["m.keras"]

    return setup


def damaged_h5(shift: int):
    """The tiny model saved as .h5, bytes after its metadata attribute's name overwritten."""

    def setup(root: Path):
        _images(root / "imgs", 1)
        data = bytearray(_tiny_model(root.parent, ".h5"))
        at = data.find(b"cnncli_metadata") + len("cnncli_metadata") + shift
        data[at : at + 16] = b"\xa5" * 16
        (root / "m.h5").write_bytes(bytes(data))
        return ["predict", str(root / "m.h5"), str(root / "imgs" / "0.png")], []

    return setup


def metadata(**changes) -> bytes:
    meta = {
        "format_version": 1,
        "class_names": ["a", "b"],
        "pixel_scale": 1 / 255,
        "image": {"height": 6, "width": 5, "color": "rgb"},
    }
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return json.dumps(meta).encode("utf-8")


# ------------------------------------------------------------------------------ the battery
def battery() -> list[Case]:
    # fmt: off
    png, jpg = _encoded("PNG"), _encoded("JPEG")
    cases = [
        Case(4, "label 'O' for 0", labels_case(["0", "1", "1", "O", "0", "1"], ["line 5"])),
        Case(4, "label 'O' for 0, --skip-bad", labels_case(["0", "1", "1", "O", "0", "1"],
                                                           ["3.png", "line 5"], "--skip-bad")),
        Case(4, "label with a NUL byte", labels_case(["0", "1", "0\x00", "1", "0", "1"],
                                                     ["line 4"], "--encoding", "utf-8")),
        Case(4, "label 1.5", labels_case(["0", "1", "1.5", "1", "0", "1"], ["line 4"])),
        Case(4, "two typos in 20 rows", labels_case(["0", "1"] * 9 + ["O", "l"],
                                                    ["line 20", "line 21"])),
        Case(4, "400-digit label", labels_case(["0", "1", "9" * 400, "1", "0", "1"], ["line 4"])),
        Case(4, "label -1", labels_case(["0", "1", "-1", "1", "0", "1"], ["found -1, 0, 1"])),
        Case(8, "GIF: bad packed field", one_bad_file("p.gif", _gif_variant(10, 0xFF)),
             may_decode=True),
        Case(8, "GIF: LZW code size 0", one_bad_file("z.gif", _gif_lzw_size(0)), may_decode=True),
        Case(8, "GIF: LZW code size 12", one_bad_file("t.gif", _gif_lzw_size(12)),
             may_decode=True),
        Case(8, "TIFF without width", one_bad_file("w.tif", _tiff_without_width())),
        Case(8, "JPEG: SOF length 2", one_bad_file("s.jpg", _jpeg_segment(2))),
        Case(8, "JPEG: APP0 length 2", one_bad_file("a.jpg", _jpeg_segment(2, b"\xff\xe0")),
             may_decode=True),
        Case(8, "JPEG: DQT length 3", one_bad_file("q.jpg", _jpeg_segment(3, b"\xff\xdb"))),
        Case(8, "300-character name", _long_name),
        Case(8, "UTF-16 table, odd byte count", utf16_odd),
        Case(8, "non-UTF-8 file name (folders)", non_utf8_name),
        Case(8, "-o under a file", output_under_a_file),
        Case(9, "index gap + truncated PNG", with_blocker("gap", "c.png", _cut(png))),
        Case(9, "long name + truncated PNG", with_blocker("long name", "c.png", _cut(png))),
        Case(9, "odd size + truncated PNG", with_blocker("odd size", "c.png", _cut(png))),
        Case(9, "class too small + truncated PNG",
             with_blocker("class too small", "c.png", _cut(png))),
        Case(9, "two blockers + truncated PNG", _two_blockers),
        Case(9, "index gap + truncated JPEG", with_blocker("gap", "c.jpg", _cut(jpg, 0.9))),
        Case(9, "index gap + truncated GIF", with_blocker("gap", "c.gif", _cut(_encoded("GIF")))),
        Case(9, "index gap + truncated TIFF",
             with_blocker("gap", "c.tif", _cut(_encoded("TIFF")))),
        Case(9, "index gap + truncated BMP", with_blocker("gap", "c.bmp", _cut(_encoded("BMP")))),
        Case(13, "mixed sizes name their files", mixed_sizes),
        Case(13, "a folder named dir.png", folder_named_png),
        Case(13, "corrupt EXIF (JPEG)", one_bad_file("e.jpg", _corrupt_exif_jpeg(), "--skip-bad",
                                                     "--size", "6x5")),
        Case(13, "libtiff lines (LZW TIFF)", one_bad_file("l.tif", _lzw_tiff_damaged(),
                                                          "--skip-bad", "--size", "6x5")),
        Case(13, "dataset format_version '1'", dataset_version_text),
        Case(13, "100,000 missing rows", many_missing(100_000), max_seconds=20, max_lines=60),
        Case(13, "empty file", one_bad_file("empty.png", b"")),
        Case(13, "text named .png", one_bad_file("text.png", b"I am not a picture")),
    ]
    fmts = {"png": ("PNG", {}), "jpg": ("JPEG", {}), "gif": ("GIF", {}), "tif": ("TIFF", {}),
            "bmp": ("BMP", {}), "webp": ("WEBP", {"lossless": True})}
    for ext, (fmt, save) in fmts.items():
        data = _encoded(fmt, **save)
        cases.append(Case(8, f"truncated {ext}", one_bad_file(f"cut.{ext}", _cut(data, 0.5),
                                                              "--size", "6x5")))
        for seed in (1, 2):
            cases.append(Case(8, f"{ext}: bytes flipped ({seed})", one_bad_file(
                f"flip{seed}.{ext}", _flipped(data, seed)), may_decode=True))
    cases += [
        Case(8, "model: class_names 5", hostile_model("cnncli.json", metadata(class_names=5)),
             model=True),
        Case(8, "model: image without width", hostile_model(
            "cnncli.json", metadata(image={"height": 6, "color": "rgb"})), model=True),
        Case(8, "model: pixel_scale 'abc'", hostile_model("cnncli.json",
                                                          metadata(pixel_scale="abc")), model=True),
        Case(8, "model: non-UTF-8 config.json", hostile_model("config.json", b"{\"a\": \"\xff\"}"),
             model=True),
        Case(8, "model: .h5 attribute heap damaged (1)", damaged_h5(8), model=True),
        Case(8, "model: .h5 attribute heap damaged (2)", damaged_h5(40), model=True),
        Case(8, "model: metadata not JSON", hostile_model("cnncli.json", b"{nope"), model=True),
        Case(13, "model: format_version '1'", hostile_model("cnncli.json",
                                                            metadata(format_version="1")),
             model=True),
    ]
    # fmt: on
    return cases


def _two_blockers(root: Path):
    args, named = with_blocker("gap", "c.png", _cut(_encoded("PNG")))(root)
    Image.fromarray(_arr((9, 9))).save(root / "imgs" / "odd.png")
    with (root / "t.csv").open("a") as f:
        f.write("odd.png,0\n")
    return args, [*named, "(odd.png)"]


def _long_name(root: Path):
    good = _images(root / "imgs")
    rows = [f"{g},{i % 2}" for i, g in enumerate(good)] + ["x" * 300 + ".png,0"]
    return _build(root, _table(root, rows)), ["line 8"]
