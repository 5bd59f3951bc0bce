"""What cnncli stores with a model (docs/FORMAT.md), checked as it is read, and what a loaded
model gets from it: `ModelMetadata` (task, class or label names, the thresholds of a
multi-label model, the targets of a regression model, image conversion, pixel scale), with
the defaults for a model saved elsewhere stated in its notes. `task_metadata` is what a
training run stores for its dataset's task.

A model file can come from anywhere, so every stored key is checked for its type before it
is used (`check_stored`: `class_names: 5`, an image without a width, `pixel_scale: "abc"`
are one clear line each, not a crash later), and the stored image size is held to Pillow's
decompression-bomb limit and to the model's own input shape (`model_metadata`): a 100 KB
file cannot make a command allocate gigabytes for images the model cannot take anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnncli.errors import ModelFileError, UsageError
from cnncli.images.spec import ImageSpec, shown
from cnncli.models.head import DEFAULT_THRESHOLD, TASKS, Head, rescales_input

# 2: multilabel and regression models (task, thresholds, targets); a classifier is still
# stored as version 1, so an older cnncli keeps reading it
METADATA_VERSION = 2
_AGAIN = "save the model again with cnncli"
_TARGET_KEYS = ("name", "mean", "std", "min", "max")


@dataclass
class ModelMetadata:
    class_names: list[str]
    image: ImageSpec | None
    pixel_scale: float
    from_cnncli: bool
    raw: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the defaults used for a model saved elsewhere
    task: str = "classify"  # classify, multilabel or regression
    thresholds: list[float] | None = None  # multilabel: one per label
    targets: list[dict] = field(default_factory=list)  # regression: name, mean, std, min, max

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access (`metadata.get("pixel_scale")`), for callers that treat the
        metadata as the stored dict: fields first, then the stored keys."""
        if key in self.__dataclass_fields__:
            return getattr(self, key)
        return self.raw.get(key, default)


def check_stored(meta: object, path: str | os.PathLike) -> dict:
    """The metadata read from the model file `path` (parsed JSON) -> the same dict, once
    each key cnncli reads has the right type; else ModelFileError naming the key."""

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: the stored cnncli metadata {what}", _AGAIN)

    if not isinstance(meta, dict):
        raise bad("is not a JSON object")
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(
            f"{path}: cnncli model metadata format_version must be a whole number, "
            f"got {shown(version)}",
            _AGAIN,
        )
    if version > METADATA_VERSION:
        raise ModelFileError(
            f"{path}: cnncli model metadata format_version {version} is newer than this "
            f"cnncli understands ({METADATA_VERSION})",
            "upgrade cnncli",
        )
    check_model_keys(meta, bad)
    return meta


def check_model_keys(meta: dict, bad: Callable[[str], Exception]) -> None:
    """The keys a model's metadata and an exported model's sidecar share (class_names,
    image, pixel_scale, task, thresholds, targets), each checked for its type and range:
    THE one check of what a model file or a sidecar says about its use. `bad(what)` makes
    the error to raise (the caller names the file)."""
    names = meta.get("class_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, (str, int)) for n in names)
    ):
        raise bad(f"has class_names {shown(names)}, not a list of names")
    repeated = _repeated([str(n) for n in names or []])
    if repeated:
        raise bad(f"names the class {shown(repeated[0])} more than once")
    if meta.get("image"):
        try:
            ImageSpec.from_dict(meta["image"])
        except UsageError as e:
            raise bad(f"has an image conversion that cannot be used: {e.message}") from None
    scale = meta.get("pixel_scale")
    if "pixel_scale" in meta and pixel_scale_problem(scale):
        raise bad(f"has pixel_scale {shown(scale)}, {pixel_scale_problem(scale)}")
    _check_task(meta, bad)


# A pixel scale multiplies 0..255 pixels before the model. 1/255 and 1 are what cnncli and
# the course use; 1/65535 (16-bit images) is the smallest a real one needs, and past 1000
# a pixel of 255 is 2.55e5, beyond any input a model was trained on. Outside these bounds
# a stored scale is damage (1e308 overflows float32 and gives NaN probabilities), not a
# choice, so it is refused rather than used.
PIXEL_SCALE_MIN = 1e-6
PIXEL_SCALE_MAX = 1e3


def pixel_scale_problem(value: Any) -> str | None:
    """Why `value` cannot be a pixel scale (not a number, not finite, outside
    PIXEL_SCALE_MIN..PIXEL_SCALE_MAX), or None when it can."""
    if not _finite(value) or not value > 0:
        return "not a positive number"
    if not PIXEL_SCALE_MIN <= float(value) <= PIXEL_SCALE_MAX:
        return f"outside {PIXEL_SCALE_MIN:g}..{PIXEL_SCALE_MAX:g}"
    return None


def _repeated(names: list[str]) -> list[str]:
    seen: set[str] = set()
    again = []
    for n in names:
        if n in seen:
            again.append(n)
        seen.add(n)
    return again


def check_names_fit(
    n_names: int, head: Head, path: str | os.PathLike | None, what: str = "its metadata"
) -> None:
    """ModelFileError (exit 2) when `what` names another number of classes, labels or
    targets than the model's `head` gives outputs for."""
    if n_names != head.num_classes:
        unit = " (one sigmoid unit: 2 classes)" if head.kind == "binary" else ""
        raise ModelFileError(
            f"{path or 'the model'}: the model's output has {head.units} unit(s){unit} but "
            f"{what} names {n_names}",
            "save or export the model again with cnncli, or check which model file this is",
        )


def _check_task(meta: dict, bad) -> None:
    """The task keys: a known task, thresholds in 0..1 (one per label), targets with a
    name and finite numbers (std positive), one per output."""
    task = meta.get("task", "classify")
    if task not in TASKS:
        raise bad(f"has task {shown(task)}, not one of {', '.join(TASKS)}")
    thresholds = meta.get("thresholds")
    if thresholds is not None:
        names = meta.get("class_names") or []
        if not (isinstance(thresholds, list) and all(_unit_number(t) for t in thresholds)):
            raise bad(f"has thresholds {shown(thresholds)}, not a list of numbers in 0..1")
        if names and len(thresholds) != len(names):
            raise bad(f"has {len(thresholds)} thresholds for {len(names)} labels")
    targets = meta.get("targets")
    if task == "regression" and not targets:
        raise bad("has task regression but no targets")
    if targets is not None and not (
        isinstance(targets, list)
        and all(
            isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and all(_finite(t.get(k)) for k in _TARGET_KEYS[1:])
            for t in targets
        )
    ):
        raise bad(f"has targets {shown(targets)}, not a list of name, mean, std, min and max")
    for t in targets or []:
        if not t["std"] > 0:
            raise bad(f"has target {t['name']!r} with std {shown(t['std'])}, not positive")
    repeated = _repeated([t["name"] for t in targets or []])
    if repeated:
        raise bad(f"names the target {shown(repeated[0])} more than once")


def _finite(value) -> bool:
    try:
        return _number(value) and math.isfinite(float(value))
    except OverflowError:
        return False


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _unit_number(value) -> bool:
    return _number(value) and 0 <= value <= 1


def default_metadata(model: Any) -> ModelMetadata:
    """What `load_model` reports for a model saved without cnncli metadata (a keras.Model
    in memory, say): the defaults, each stated in `notes`."""
    return model_metadata(model, None)


def model_metadata(
    model: Any, stored: dict | None, path: str | os.PathLike | None = None
) -> ModelMetadata:
    """The metadata of a loaded Keras `model` from what its file `path` stored (checked by
    `check_stored`; None: saved elsewhere), with the defaults used stated in `notes`. A
    stored image size that the model's input cannot take is a ModelFileError."""
    notes: list[str] = []
    stored = stored or {}
    units = _output_units(model)
    task = stored.get("task", "classify")
    targets = [dict(t) for t in stored.get("targets") or []]

    names = [t["name"] for t in targets] if task == "regression" else stored.get("class_names")
    if task == "regression" and units is not None and len(targets) != units:
        raise ModelFileError(
            f"{path or 'the model'}: the model gives {units} value(s) but its metadata names "
            f"{len(targets)} target(s)",
            _AGAIN,
        )
    if not names:
        n = 2 if units == 1 else (units or 0)
        names = [str(i) for i in range(n)]
        notes.append(
            f"class names: the output indices {', '.join(names[:4])}"
            + (", ..." if len(names) > 4 else "")
            + (" (one sigmoid unit: 2 classes)" if units == 1 else "")
        )
    image = None
    if stored.get("image"):
        image = ImageSpec.from_dict(stored["image"])
        _check_input(image, model, path)
    else:
        try:
            image = ImageSpec.for_input_shape(model.inputs[0].shape)
            notes.append(f"image conversion: {image.describe()}, from the model's input shape")
        except Exception:
            notes.append("image conversion: the model's input has no fixed size")
    if "pixel_scale" in stored:
        scale = float(stored["pixel_scale"])
    elif rescales_input(model):
        scale = 1.0
        notes.append("pixel scale: 1 (the model's first layer scales the pixels itself)")
    else:
        scale = 1 / 255
        notes.append("pixel scale: 1/255 (pixels divided by 255, as the course's notebooks do)")
    thresholds = None
    if task == "multilabel":
        thresholds = [float(t) for t in stored.get("thresholds") or []]
        thresholds = thresholds or [DEFAULT_THRESHOLD] * len(names)
    return ModelMetadata(
        class_names=[str(n) for n in names],
        image=image,
        pixel_scale=scale,
        from_cnncli=bool(stored),
        raw=dict(stored),
        notes=notes,
        task=task,
        thresholds=thresholds,
        targets=targets,
    )


def format_version_for(meta: dict) -> int:
    """The metadata version a dict needs: 2 for a multilabel or regression model, else 1."""
    return 1 if meta.get("task", "classify") == "classify" else METADATA_VERSION


def task_metadata(info: Any) -> dict:
    """What a model trained on the dataset `info` (a DatasetInfo) stores about its task,
    beside its class names: nothing more for a classifier (format version 1, readable by
    an older cnncli); a multi-label model its task and a threshold per label (0.5 until
    `evaluate --tune-thresholds` picks them); a regression model its task and targets
    (name, mean, std, min, max of the train split: what its outputs mean). The format
    version is set where the model is saved (format_version_for), nowhere else."""
    task = getattr(info, "task", "classify")
    if task == "multilabel":
        thresholds = [DEFAULT_THRESHOLD] * len(info.class_names)
        return {"task": task, "thresholds": thresholds}
    if task == "regression":
        targets = [{k: getattr(t, k) for k in _TARGET_KEYS} for t in info.targets]
        return {"task": task, "class_names": [], "targets": targets}
    return {}


def _check_input(image: ImageSpec, model, path) -> None:
    """The stored image (height, width, channels) against the model's input shape, where
    the model fixes them."""
    try:
        dims = tuple(model.inputs[0].shape)[-3:]
    except Exception:  # no inputs to compare with
        return
    if len(dims) != 3 or all(
        d is None or d == want for d, want in zip(dims, image.shape, strict=True)
    ):
        return
    fixed = "x".join("?" if d is None else str(d) for d in dims)
    raise ModelFileError(
        f"{path or 'the model'}: the image size stored with it, "
        f"{'x'.join(map(str, image.shape))}, does not fit the model's input {fixed}",
        "save the model again with cnncli, or check which model file this is",
    )


def _output_units(model) -> int | None:
    try:
        return int(model.outputs[0].shape[-1])
    except Exception:
        return None
