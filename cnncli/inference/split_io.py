"""What every evaluation (a classifier's, a multi-label or regression model's) reads and
where it writes: the split chosen, the model checked against the dataset's images, the split
as batches through the training pipeline, the default place of its plots, and outputs that
exist refused before any work.

No output is written beside the model: by default (`DEFAULT_PLACE`) a plot goes to the
model's run folder (a run's best/last model or checkpoint) or the current folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.datasets.shards import SPLITS
from cnncli.errors import DatasetError, ModelError, OutputExistsError
from cnncli.training.rundir import RUN_JSON

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.inference.info import ModelInfo

DEFAULT_PLACE = "default"  # a plot: the run folder or the current folder (default_plot_path)


def default_split(info: DatasetInfo) -> str:
    """test when the dataset has test images, else val (else train)."""
    for split in ("test", "val", "train"):
        if info.count(split) > 0:
            return split
    raise DatasetError(f"dataset {info.path} has no images in any split")


def chosen_split(info: DatasetInfo, split: str | None) -> str:
    """The split to evaluate: the default one, or the one asked for if it has images."""
    if split is None:
        return default_split(info)
    if info.count(split) == 0:
        have = [f"{s} ({info.count(s)})" for s in SPLITS if info.count(s) > 0]
        raise DatasetError(
            f"dataset {info.path} has no {split!r} images",
            f"use --split with one of: {', '.join(have) or 'none'}",
        )
    return split


def run_folder_of(model_path: str | os.PathLike) -> Path | None:
    """The train run folder a model file belongs to: the folder beside it holding run.json
    (best.keras, last.keras), or the one above its checkpoints/ folder; else None."""
    parent = Path(model_path).parent
    for folder in (parent, parent.parent) if parent.name == "checkpoints" else (parent,):
        if (folder / RUN_JSON).is_file():
            return folder
    return None


def default_output_path(model: Any, name: str) -> Path:
    """Where an output named `name` goes by default: in the model's train run folder when
    it belongs to a writable one, else in the current folder; never beside a model from
    elsewhere (a shared or read-only folder). `model`: as model_path takes it."""
    path = model_path(model)
    run = run_folder_of(path) if path else None
    if run is not None and os.access(run, os.W_OK):
        return run / name
    return Path(name)


def default_plot_path(model: Any, split: str, kind: str = "confusion") -> Path:
    """Where a plot goes by default: `<model name>.<kind>-<split>.png`, placed by
    default_output_path."""
    path = model_path(model)
    return default_output_path(path, f"{path.stem if path else 'model'}.{kind}-{split}.png")


def model_path(model: Any) -> Path | None:
    """The file of a model given as a path, a LoadedModel or a ModelInfo (None in memory)."""
    if isinstance(model, (str, os.PathLike)):
        return Path(model)
    path = getattr(model, "path", None)
    return Path(path) if path else None


def check_outputs(paths: Iterable[str | os.PathLike | None], overwrite: bool) -> None:
    """Refuse an output that exists (unless `overwrite`) before any work is done."""
    for path in paths:
        if path is not None and Path(path).exists() and not overwrite:
            raise OutputExistsError(path)


def check_input_shape(model: ModelInfo, info: DatasetInfo) -> None:
    """Refuse a model (a ModelInfo) whose input cannot take the dataset's images."""
    want = tuple(model.model.inputs[0].shape[1:])
    have = tuple(info.image.shape)
    if len(want) != 3 or any(w is not None and w != h for w, h in zip(want, have, strict=False)):
        raise ModelError(
            f"the model expects images of shape {shape_text(want)} but the dataset's images "
            f"are {shape_text(have)} ({info.image.describe()})",
            "evaluate it on a dataset built with the same --size and --color",
        )


def shape_text(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def dataset_batches(
    info: DatasetInfo, split: str, batch_size: int, tf_data: bool = True
) -> Iterator[Any]:
    """(uint8-valued float images, labels, paths) batches of a split, through the training
    pipeline (cnncli.datasets.tfdata) when TensorFlow is there and `tf_data`, else from the
    records in pure Python (a model run without TensorFlow: its runtime imports none).
    Labels: class indices (N,) int64, or (N, L) / (N, T) float arrays of a multilabel or
    regression dataset."""
    make_tf_dataset: Callable[..., Any] | None = None
    if tf_data:
        try:
            from cnncli.datasets.tfdata import make_tf_dataset
        except ImportError:
            pass
    if make_tf_dataset is not None:
        ds = make_tf_dataset(info, split, batch_size=batch_size, cache="none", with_paths=True)
        for x, y, p in ds.as_numpy_iterator():
            yield x, _labels(y, info), [s.decode("utf-8") for s in p.reshape(-1)]
        return
    from cnncli.datasets.store import iter_records

    xs, ys, ps = [], [], []
    for rec in iter_records(info, split):
        xs.append(rec.image)
        ys.append(rec.label)
        ps.append(rec.path)
        if len(xs) == batch_size:
            yield np.stack(xs).astype(np.float32), _labels(np.array(ys), info), ps
            xs, ys, ps = [], [], []
    if xs:
        yield np.stack(xs).astype(np.float32), _labels(np.array(ys), info), ps


def _labels(y: np.ndarray, info) -> np.ndarray:
    if getattr(info, "task", "classify") == "classify":
        return y.astype(np.int64).reshape(-1)
    return np.asarray(y, np.float64).reshape(len(y), -1)
