"""One pass over a built dataset's records (every split, in manifest order) keeping, per
image, only what the checks need: its name, split and label, a hash of its pixels, its
small working picture for the near-duplicate search, downsampled pixels for the label model
and its brightness and contrast. About 2 kB an image (5 kB for images of 64 pixels or more:
their working picture is 64x64), whatever the image size, so 20,000 images of any size fit
in some 100 MB."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnncli.check.duplicates import pixel_hash, working_image, working_side
from cnncli.datasets.store import DatasetInfo, iter_records
from cnncli.progress import Counter

FEATURE_SIDE = 16  # the label model sees each image as FEATURE_SIDE^2 pixels per channel


@dataclass
class Scanned:
    """What the checks read of a dataset, one entry per image in record order."""

    names: list[str]
    splits: list[str]
    labels: list  # class index, multi-hot float32 array, or float32 targets
    hashes: list[str]
    work: np.ndarray  # (N, side, side) uint8: duplicates.working_side of the image size
    features: np.ndarray  # (N, FEATURE_SIDE^2 * C) uint8
    brightness: np.ndarray  # (N,) mean pixel value 0..255
    contrast: np.ndarray  # (N,) pixel standard deviation

    def __len__(self) -> int:
        return len(self.names)


def feature_pixels(image: np.ndarray) -> np.ndarray:
    """H x W x C uint8 -> FEATURE_SIDE x FEATURE_SIDE x C uint8 (area resize), flattened."""
    from PIL import Image

    chans = [
        np.asarray(
            Image.fromarray(image[:, :, c]).resize(
                (FEATURE_SIDE, FEATURE_SIDE), Image.Resampling.BOX
            )
        )
        for c in range(image.shape[2])
    ]
    return np.stack(chans, axis=2).reshape(-1)


def record_order(info: DatasetInfo) -> list[str]:
    """The splits in the order they are read."""
    return [s for s in ("train", "val", "test") if info.count(s) > 0] + [
        s for s in info.splits if s not in ("train", "val", "test") and info.count(s) > 0
    ]


def scan_dataset(info: DatasetInfo, counter: Counter | None = None) -> Scanned:
    """Read every record of `info` once (see the module's docstring); `counter.add()`
    after each image."""
    names, splits, labels, hashes = [], [], [], []
    work, feats, bright, contrast = [], [], [], []
    side = working_side(info.image.height, info.image.width)
    for split in record_order(info):
        for r in iter_records(info, split):
            img = r.image
            names.append(r.path)
            splits.append(split)
            labels.append(r.label)
            hashes.append(pixel_hash(img))
            work.append(working_image(img, side))
            feats.append(feature_pixels(img))
            bright.append(float(img.mean()))
            contrast.append(float(img.std()))
            if counter is not None:
                counter.add()
    return Scanned(
        names,
        splits,
        labels,
        hashes,
        np.stack(work) if work else np.zeros((0, side, side), np.uint8),
        np.stack(feats) if feats else np.zeros((0, 0), np.uint8),
        np.asarray(bright, np.float32),
        np.asarray(contrast, np.float32),
    )
