"""A Keras model file read once (`read_model_file` -> `ModelFile`): what every check made
before Keras needs, from one open of the file, so a command (predict, export, the fast
copy, load_model) reads it once and Keras a second time. The readers themselves (bounded,
without TensorFlow) are cnncli.models.files'."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli.errors import ModelFileError
from cnncli.models.declared import archive_weight_bytes
from cnncli.models.files import (
    CONFIG_LIMIT,
    H5_ATTRIBUTE,
    KERAS_MEMBER,
    METADATA_LIMIT,
    MIB,
    ZIP_ERRORS,
    archive_member,
    check_model_path,
    damaged,
    h5_attribute,
    h5_weights_only,
    missing_config,
    model_kind,
    open_h5,
    parse_config,
    parse_metadata,
    unreadable,
)


@dataclass
class ModelFile:
    """A Keras model file opened once and read before Keras loads it: its kind, sha256 and
    size on disk (`stamp`), the bytes of weights it stores, its cnncli metadata and its
    architecture config. Every check made before Keras (predict's, export's, the fast
    copy's, load_model's) takes it in place of the path, so a command opens the file once
    (`read_model_file`) and Keras a second time. Reading the metadata or the config may
    have failed: the error is raised where that part is asked for, as reading it then
    would have. `current()`: whether the file on disk is still the one read."""

    path: Path
    kind: str  # keras or h5
    sha256: str
    stamp: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
    weight_bytes: int  # what models.declared bounds the architecture by
    parts: dict[str, Any]  # "metadata", "config": the value, or the error reading it raised

    @property
    def metadata(self) -> dict | None:
        return self._part("metadata")

    @property
    def config(self) -> dict:
        return self._part("config")

    def _part(self, name: str) -> Any:
        value = self.parts[name]
        if isinstance(value, BaseException):
            raise value
        return value

    def current(self) -> bool:
        """Whether `path` is still the file read (not replaced or changed since)."""
        try:
            return _stamp(os.stat(self.path)) == self.stamp
        except OSError:
            return False


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_model_file(path: str | os.PathLike | ModelFile) -> ModelFile:
    """The ModelFile of `path`, from one open of the file: refused as check_model_file
    refuses (missing, a folder, not a model); the rest read as read_metadata, read_config
    and models.declared read them. A ModelFile whose file is unchanged is returned as it is."""
    if isinstance(path, ModelFile):
        if path.current():
            return path
        path = path.path
    path = Path(path)
    check_model_path(path)  # check_model_file's refusals, from the name and a stat
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; its error said as check_model_file
    except OSError as e:
        raise unreadable(path, e) from None
    with f:
        stamp = _stamp(os.fstat(f.fileno()))
        head = f.read(8)
        kind = model_kind(path, head)
        h = hashlib.sha256(head)
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
        f.seek(0)
        parts, weights = _read_parts(f, path, kind, stamp[2])
    return ModelFile(path, kind, h.hexdigest(), stamp, weights, parts)


def _read_parts(f, path: Path, kind: str, size: int) -> tuple[dict[str, Any], int]:
    """The metadata and config of the open model file `f` (each a value or its error), and
    the weight bytes it stores."""
    parts: dict[str, Any] = {}
    if kind == "keras":
        try:
            with zipfile.ZipFile(f) as z:
                weights = archive_weight_bytes(z, size)
                for name, member, limit in (
                    ("metadata", KERAS_MEMBER, METADATA_LIMIT),
                    ("config", "config.json", CONFIG_LIMIT),
                ):
                    try:
                        raw = archive_member(z, path, member, limit)
                    except ModelFileError as e:
                        parts[name] = e
                    except ZIP_ERRORS as e:
                        parts[name] = damaged(path, e)
                    else:
                        parts[name] = _parsed(name, raw, path, "keras")
        except ZIP_ERRORS as e:
            error = damaged(path, e)
            return {n: parts.get(n, error) for n in ("metadata", "config")}, size
        return parts, weights
    try:
        with open_h5(f, path) as h5:
            for name, attribute, limit in (
                ("metadata", H5_ATTRIBUTE, METADATA_LIMIT),
                ("config", "model_config", CONFIG_LIMIT),
            ):
                try:
                    raw = h5_attribute(h5, path, attribute, limit)
                    what = h5_weights_only(h5) if raw is None else ""
                    parts[name] = _parsed(name, raw, path, what)
                except ModelFileError as e:
                    parts[name] = e
    except ModelFileError as e:
        parts = {n: parts.get(n, e) for n in ("metadata", "config")}
    return parts, size


def _parsed(name: str, raw: bytes | None, path: Path, what: str) -> Any:
    try:
        if name == "metadata":
            return parse_metadata(raw, path)
        if raw is None:
            raise missing_config(path, what)
        return parse_config(raw, path)
    except ModelFileError as e:
        return e


__all__ = ["ModelFile", "read_model_file"]
