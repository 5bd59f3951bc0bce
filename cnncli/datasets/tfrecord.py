"""TFRecord files and `tf.train.Example` messages without TensorFlow.

A TFRecord file is a sequence of records, each framed as
  uint64 length (little endian), uint32 masked crc32c(length), data, uint32 masked crc32c(data).
The data of each record here is a serialized `tf.train.Example`:
  Example   { Features features = 1; }
  Features  { map<string, Feature> feature = 1; }      (map entry: key = 1, value = 2)
  Feature   { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                      Int64List int64_list = 3; } }
  BytesList { repeated bytes value = 1; }   Int64List { repeated int64 value = 1 [packed]; }
The encoder writes what TensorFlow writes (packed int64, keys in sorted order so the bytes are
deterministic); the decoder also accepts unpacked int64 and float lists.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

import google_crc32c

from cnncli.errors import DatasetError

_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord: length, its CRC, the data, the data's CRC."""
    length = _U64.pack(len(data))
    return b"".join((length, _U32.pack(masked_crc(length)), data, _U32.pack(masked_crc(data))))


def read_records(f: BinaryIO, name: str = "shard", verify: bool = True) -> Iterator[bytes]:
    """Yield each record's data from an open TFRecord file, checking both CRCs."""
    n = 0
    while True:
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise DatasetError(f"{name}: truncated record {n} (incomplete header)", _REBUILD)
        length_bytes = head[:8]
        if verify and _U32.unpack(head[8:])[0] != masked_crc(length_bytes):
            raise DatasetError(f"{name}: corrupt record {n} (length checksum mismatch)", _REBUILD)
        (length,) = _U64.unpack(length_bytes)
        data = f.read(length)
        tail = f.read(4)
        if len(data) < length or len(tail) < 4:
            raise DatasetError(f"{name}: truncated record {n}", _REBUILD)
        if verify and _U32.unpack(tail)[0] != masked_crc(data):
            raise DatasetError(f"{name}: corrupt record {n} (data checksum mismatch)", _REBUILD)
        n += 1
        yield data


_REBUILD = "build the dataset again with cnncli dataset build"


# ---------------------------------------------------------------- protobuf encoding
def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _feature(value) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        value = [value]
    if isinstance(value, (int, float)):
        value = [value]
    values = list(value)
    if values and all(isinstance(v, int) for v in values):
        packed = b"".join(_varint(v) for v in values)
        return _field(3, _field(1, packed))  # Int64List, packed
    if values and all(isinstance(v, float) for v in values):
        return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))  # FloatList
    items = []
    for v in values:
        if isinstance(v, str):
            v = v.encode("utf-8")
        items.append(_field(1, bytes(v)))
    return _field(1, b"".join(items))  # BytesList


def label_features(label: int | list) -> dict:
    """A record's label as Example features (docs/FORMAT.md): a class index (int) ->
    {"label": [index]}; a multi-hot list of ints -> {"label": [0/1, ...]}; a list of floats
    (regression targets, raw units) -> {"target": [values]}."""
    if isinstance(label, (list, tuple)) and label and all(isinstance(v, float) for v in label):
        return {"target": list(label)}
    return {"label": label}


def encode_example(features: dict) -> bytes:
    """Serialize a tf.train.Example from {name: bytes | str | int | float | list of those}."""
    entries = b"".join(
        _field(1, _field(1, key.encode("utf-8")) + _field(2, _feature(features[key])))
        for key in sorted(features)
    )
    return _field(1, entries)


def framed_size(features: dict, blob_key: str, blob_len: int) -> int:
    """len(frame(encode_example({**features, blob_key: <blob_len bytes>}))) without making
    the blob: the size of a raw-pixel record is known before its image is decoded, so a
    build on several machines can cut the shards where a local build cuts them."""

    def field_len(number: int, n: int) -> int:
        return len(_varint((number << 3) | 2)) + len(_varint(n)) + n

    feature = field_len(1, field_len(1, blob_len))  # BytesList holding one value
    entry = field_len(1, field_len(1, len(blob_key.encode("utf-8"))) + field_len(2, feature))
    entries = sum(
        len(_field(1, _field(1, k.encode("utf-8")) + _field(2, _feature(features[k]))))
        for k in features
    )
    return 16 + field_len(1, entries + entry)


# ---------------------------------------------------------------- protobuf decoding
def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field of a message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            value = buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            value = buf[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_feature(buf: memoryview):
    for kind, _wire, payload in _fields(buf):
        if kind == 1:  # BytesList
            return [bytes(v) for n, w, v in _fields(payload) if n == 1]
        if kind == 3:  # Int64List
            out = []
            for n, w, v in _fields(payload):
                if n != 1:
                    continue
                if w == 0:
                    out.append(_signed(v))
                else:  # packed
                    p = 0
                    while p < len(v):
                        x, p = _read_varint(v, p)
                        out.append(_signed(x))
            return out
        if kind == 2:  # FloatList
            out = []
            for n, _w, v in _fields(payload):
                if n == 1:
                    out.extend(struct.unpack(f"<{len(v) // 4}f", bytes(v)))
            return out
    return []


def decode_example(data: bytes) -> dict[str, list]:
    """Parse a serialized tf.train.Example into {name: list of bytes | int | float}."""
    out: dict[str, list] = {}
    for n, _w, features in _fields(memoryview(data)):
        if n != 1:
            continue
        for m, _w2, entry in _fields(features):
            if m != 1:
                continue
            key, value = "", []
            for k, _w3, v in _fields(entry):
                if k == 1:
                    key = bytes(v).decode("utf-8")
                elif k == 2:
                    value = _decode_feature(v)
            out[key] = value
    return out
