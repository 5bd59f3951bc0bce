"""The agreement check: the exported model and the Keras model run on the same images, and
their outputs compared: top-1 agreement, the largest absolute difference of the outputs, and
(when the images carry the model's labels) the accuracy of each.

A multilabel or regression model is compared on its own metric too (F1 per label and
subset accuracy; MAE and R^2 per target), by cnncli.export.check_tasks.

The images are a dataset split (read by cnncli.datasets.store, as the dataset holds them)
or, when no dataset is given, a few images of the bundled sample data converted to the
model's image size by cnncli.images.load_image, as predict converts a file.
A float export fails when an output differs by more than FLOAT_TOLERANCE (times the largest
output's size when that is over 1, for logits); an int8 export reports what it lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cnncli.export.check_tasks import task_figures
from cnncli.inference.split_io import dataset_batches as split_batches
from cnncli.models.head import outputs_to_probabilities, predicted_classes
from cnncli.progress import Counter, Progress

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.images.spec import ImageSpec
    from cnncli.inference.info import ModelInfo
    from cnncli.models.head import Head

FLOAT_TOLERANCE = 1e-4
SAMPLE_IMAGES = 16
BATCH = 64


@dataclass
class CheckResult:
    images_from: str  # a dataset's path, or "sample data"
    split: str | None
    images: int
    top1_agreement: float | None  # None: the head names no classes
    max_abs_diff: float
    tolerance: float | None  # None: int8, not held to a tolerance
    keras_accuracy: float | None  # None: the images have no class labels
    exported_accuracy: float | None
    task: str = "classify"  # the model's: classify, multilabel, regression
    # multilabel: the share of images given the same label set (with or without labels)
    label_agreement: float | None = None
    # regression, labelled images: per target name, keras_mae, exported_mae, mae_cost,
    # keras_r2, exported_r2, r2_lost (cnncli.export.check_tasks)
    targets: list[dict] = field(default_factory=list)
    # multilabel, labelled images: per label name, threshold, keras_f1, exported_f1, f1_lost
    labels: list[dict] = field(default_factory=list)
    keras_subset_accuracy: float | None = None
    exported_subset_accuracy: float | None = None

    @property
    def passed(self) -> bool:
        return self.tolerance is None or self.max_abs_diff <= self.tolerance

    @property
    def accuracy_lost(self) -> float | None:
        if self.keras_accuracy is None or self.exported_accuracy is None:
            return None
        return self.keras_accuracy - self.exported_accuracy

    @property
    def subset_accuracy_lost(self) -> float | None:
        if self.keras_subset_accuracy is None or self.exported_subset_accuracy is None:
            return None
        return self.keras_subset_accuracy - self.exported_subset_accuracy

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "passed": self.passed,
            "accuracy_lost": self.accuracy_lost,
            "subset_accuracy_lost": self.subset_accuracy_lost,
        }


def dataset_batches(dataset: DatasetInfo, split: str, labelled: bool) -> Iterator[tuple]:
    """(images N x H x W x C in 0..255, labels or None) batches of a dataset split, read as
    evaluate reads them (cnncli.inference.split_io): class indices (N,), or (N, L) labels or
    (N, T) targets of a multilabel or regression dataset."""
    for x, y, _paths in split_batches(dataset, split, BATCH):
        yield x, y if labelled else None


def sample_batches(spec: ImageSpec, count: int = SAMPLE_IMAGES) -> Iterator[tuple]:
    """A few images of the bundled sample data (shapes, then façades), converted to `spec`."""
    from cnncli.demo.run import sample_data_dir
    from cnncli.images import find_images, load_image

    files = find_images(sample_data_dir())
    step = max(1, len(files) // count)
    images = [load_image(f, spec) for f in files[::step][:count]]
    yield np.stack(images), None


def outputs(info: ModelInfo, images: np.ndarray) -> np.ndarray:
    """The model's raw outputs (N, units) for uint8 images, pixels scaled as `info` says."""
    x = np.asarray(images, dtype=np.float32) * np.float32(info.pixel_scale)
    out = np.asarray(info.model.predict_on_batch(x), dtype=np.float64)
    return out.reshape(len(x), -1)


def top1(out: np.ndarray, head: Head) -> np.ndarray | None:
    """The class each output names (as predict reads it), or None for a head of no classes."""
    if head.kind not in ("binary", "categorical"):
        return None
    return predicted_classes(outputs_to_probabilities(out, head), head)


def compare(
    keras_info: ModelInfo,
    exported_info: ModelInfo,
    batches: Iterable[tuple],
    total: int,
    int8: bool,
    images_from: str,
    split: str | None = None,
    progress: Progress | None = None,
) -> CheckResult:
    """Run both models over `batches` ((images, labels or None) pairs, `total` images) and
    compare what they give; a multilabel or regression model on its own metric too."""
    counter = Counter(progress, total)
    counter.start()
    n = agree = right_keras = right_export = 0
    labelled, diff, peak, named = True, 0.0, 0.0, True
    refs, gots, ys = [], [], []  # multilabel and regression: the metrics need every image
    task = keras_info.task
    for images, labels in batches:
        ref, got = outputs(keras_info, images), outputs(exported_info, images)
        if task != "classify":
            refs.append(ref)
            gots.append(got)
            ys.append(labels)
        diff = max(diff, float(np.max(np.abs(ref - got))))
        peak = max(peak, float(np.max(np.abs(ref))))
        a, b = top1(ref, keras_info.head), top1(got, keras_info.head)
        named = named and a is not None
        if a is not None:
            agree += int(np.sum(a == b))
            if labels is not None and labels.ndim == 1:
                right_keras += int(np.sum(a == labels))
                right_export += int(np.sum(b == labels))
            else:
                labelled = False
        n += len(images)
        counter.add(len(images))
    labelled = labelled and named and n > 0
    figures: dict = {}
    if task != "classify" and n:
        with_labels = all(y is not None and y.ndim == 2 for y in ys)
        figures = task_figures(
            keras_info,
            np.concatenate(ys) if with_labels else None,
            np.concatenate(refs),
            np.concatenate(gots),
        )
    return CheckResult(
        images_from=images_from,
        split=split,
        images=n,
        top1_agreement=agree / n if named and n else None,
        max_abs_diff=diff,
        tolerance=None if int8 else FLOAT_TOLERANCE * max(1.0, peak),
        keras_accuracy=right_keras / n if labelled else None,
        exported_accuracy=right_export / n if labelled else None,
        task=task,
        **figures,
    )
