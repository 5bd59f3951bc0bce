"""Exported model files checked before a runtime reads them, without the runtime, TensorFlow
or the `onnx` package (predict needs only onnxruntime to run an .onnx file):

- `exported_kind`: which exported format a path is, by its name.
- `check_litert_file`: a LiteRT (.tflite) file is a FlatBuffer with the identifier "TFL3";
  an empty, cut or foreign file is one line ("not a valid TensorFlow Lite file").
- `check_onnx_file`: an ONNX file's tensors that keep their data in other files (external
  data) name plain files inside the model's folder, and each declares no more bytes than
  its file holds. The file is read as protobuf wire format (ModelProto -> graph,
  functions -> initializers, sparse initializers, node attributes and subgraphs), skipping
  the tensors' data, so a 3 TB tensor or a `../../etc/passwd` location is refused before
  onnxruntime opens anything.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnncli.errors import ModelFileError, bytes_text
from cnncli.models.sidecar import AGAIN

_MAX_DEPTH = 64  # subgraphs inside subgraphs: far beyond what a converter writes
# bytes per element of ONNX TensorProto.DataType (4-bit types counted as 1: a lower bound
# is not needed, an upper one is); STRING (8) and unknown types are not checked
_ELEMENT_BYTES = {
    1: 4,
    2: 1,
    3: 1,
    4: 2,
    5: 2,
    6: 4,
    7: 8,
    9: 1,
    10: 2,
    11: 8,
    12: 4,
    13: 8,
    14: 8,
    15: 16,
    16: 2,
    17: 1,
    18: 1,
    19: 1,
    20: 1,
    21: 1,
    22: 1,
    23: 1,
}


def check_litert_file(path: str | os.PathLike) -> None:
    """ModelFileError unless `path` starts as a TensorFlow Lite FlatBuffer does (a root
    offset, then the identifier "TFL3")."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    size = path.stat().st_size
    if size < 16 or head[4:8] != b"TFL3" or int.from_bytes(head[:4], "little") >= size:
        what = "empty" if size == 0 else "not a valid TensorFlow Lite file"
        raise ModelFileError(f"{path} is {what}", AGAIN)


def exported_kind(path: str | os.PathLike) -> str | None:
    """'litert' (.tflite), 'onnx' (.onnx) or 'savedmodel' (a folder with saved_model.pb) for
    an exported model at `path`, else None. Reads names only."""
    path = Path(path)
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").is_file() else None
    return {".tflite": "litert", ".onnx": "onnx"}.get(path.suffix.lower())


class _Invalid(Exception):
    pass


def _varint(buf, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise _Invalid
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message in buf[start:end]: a varint's
    value, a length-delimited field's (start, end), None for fixed-size fields."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, end)
            yield number, wire, value
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            yield number, wire, None
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise _Invalid
            yield number, wire, (i, i + n)
            i += n
        else:
            raise _Invalid
    if i != end:
        raise _Invalid


def _tensors(buf, start: int, end: int, kind: str, depth: int = 0):
    """Every TensorProto (start, end) reachable from the message of `kind` (model, graph,
    function, node, attribute, sparse) in buf[start:end]."""
    if depth > _MAX_DEPTH:
        raise _Invalid
    # kind -> {field number: kind of the message there}
    where = {
        "model": {7: "graph", 25: "function"},
        "graph": {1: "node", 5: "tensor", 15: "sparse"},
        "function": {7: "node"},
        "node": {5: "attribute"},
        "attribute": {
            5: "tensor",
            6: "graph",
            10: "tensor",
            11: "graph",
            22: "sparse",
            23: "sparse",
        },
        "sparse": {1: "tensor", 2: "tensor"},
    }[kind]
    for number, wire, value in _fields(buf, start, end):
        inner = where.get(number)
        if inner is None or wire != 2:
            continue
        if inner == "tensor":
            yield value
        else:
            yield from _tensors(buf, value[0], value[1], inner, depth + 1)  # (start, end)


def _tensor_info(buf, start: int, end: int) -> tuple[list[int], int, bool, dict]:
    """A TensorProto's dims, data type, whether its data is external, and its external_data
    entries (key -> value)."""
    dims: list[int] = []
    dtype, external, entries = 0, False, {}
    for number, wire, value in _fields(buf, start, end):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            i, stop = value
            while i < stop:
                d, i = _varint(buf, i, stop)
                dims.append(d)
        elif number == 2 and wire == 0:
            dtype = value
        elif number == 14 and wire == 0:
            external = value == 1
        elif number == 13 and wire == 2:
            pair = {n: bytes(buf[v[0] : v[1]]) for n, w, v in _fields(buf, *value) if w == 2}
            entries[pair.get(1, b"").decode("utf-8", "replace")] = pair.get(2, b"").decode(
                "utf-8", "replace"
            )
    return dims, dtype, external, entries


def check_onnx_file(path: str | os.PathLike) -> None:
    """ModelFileError when the ONNX file `path` is not protobuf, or a tensor's external data
    names a file outside the model's folder (an absolute path, `..`, a link out of it), a
    file that is missing or not a regular file, or more bytes than that file holds."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path} is empty", AGAIN)
    folder = path.resolve().parent
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            for span in _tensors(buf, 0, size, "model"):
                dims, dtype, external, entries = _tensor_info(buf, *span)
                if external or entries:
                    _check_external(path, folder, dims, dtype, entries)
        except _Invalid:
            raise ModelFileError(f"{path} is not a valid ONNX file", AGAIN) from None


def _check_external(path: Path, folder: Path, dims, dtype: int, entries: dict) -> None:
    location = entries.get("location", "")
    outside = ModelFileError(
        f"{path}: the ONNX file refers to data outside its folder ({location[:80]!r})",
        "keep an ONNX model's data files in its folder, or export it again",
    )
    if not location or "\0" in location or os.path.isabs(location) or "\\" in location:
        raise outside
    target = folder / location
    try:
        real = target.resolve()
    except (OSError, RuntimeError):
        raise outside from None
    if folder not in real.parents:
        raise outside
    if target.is_symlink() or not real.is_file():
        raise ModelFileError(
            f"{path}: its data file {location[:80]!r} is missing or not a regular file",
            "copy the model with its data files, or export it again",
        )
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise ModelFileError(
            f"{path} is not a valid ONNX file (external data offset)", AGAIN
        ) from None
    available = real.stat().st_size - offset
    if offset < 0 or available < 0 or (length is not None and not 0 <= length <= available):
        raise ModelFileError(
            f"{path}: a tensor's data lies past the end of {location[:80]!r}", AGAIN
        )
    declared = _ELEMENT_BYTES.get(dtype, 0)
    for d in dims:
        declared *= d
    if declared > (available if length is None else length):
        raise ModelFileError(
            f"{path}: a tensor declares {bytes_text(declared)} of data but "
            f"{location[:80]!r} holds {bytes_text(max(available, 0))}",
            AGAIN,
        )
