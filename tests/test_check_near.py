"""Near duplicates of finely textured photos (issue 24): copies of the façade photos of
sample_data (brick walls, marble slabs; 128x128) shifted or cropped by a few pixels are
grouped with their photo, and nothing else is: not the distinct pictures of the same kinds
(each photo's quarters, resized to the photo's size: other brick walls, other marble)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cnncli.check.duplicates import groups_of, near_duplicate_pairs, working_images

FACADE = Path(__file__).resolve().parents[1] / "sample_data" / "facade"
PER_KIND = 3  # photos of each kind (brick, marble)


def _shifted(photo: np.ndarray, d: int, both: bool) -> np.ndarray:
    out = np.concatenate([photo[:, :d], photo[:, :-d]], axis=1)  # the edge repeated
    return np.concatenate([out[:d], out[:-d]], axis=0) if both else out


def _cropped(photo: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(photo.crop(box).resize(photo.size, Image.Resampling.BILINEAR))


def test_shifted_and_cropped_textured_copies_are_grouped_exactly():
    labels = pd.read_csv(FACADE / "labels.csv")
    names = [
        name
        for kind in sorted(set(labels["type"]))
        for name in sorted(labels.loc[labels["type"] == kind, "image"])[:PER_KIND]
    ]
    pictures, truth = [], []
    for name in names:
        photo = Image.open(FACADE / name).convert("RGB")
        w, h = photo.size
        arr = np.asarray(photo)
        group = [len(pictures)]
        pictures.append(arr)
        for copy in (
            _shifted(arr, 3, both=False),  # 3 px of 128
            _shifted(arr, 5, both=True),  # 5 px each way, 4% of the side
            _cropped(photo, (3, 3, w - 3, h - 3)),  # 3 px off each side, resized back
            _cropped(photo, (6, 6, w, h)),  # 6 px off one corner, resized back
        ):
            group.append(len(pictures))
            pictures.append(copy)
        truth.append(group)
    for name in names:  # distinct pictures of the same kinds: never grouped
        photo = Image.open(FACADE / name).convert("RGB")
        for x, y in ((0, 0), (64, 0), (0, 64), (64, 64)):
            quarter = photo.crop((x, y, x + 64, y + 64)).resize(photo.size)
            pictures.append(np.asarray(quarter))

    pairs = near_duplicate_pairs(working_images(pictures))

    assert len(set(labels["type"])) == 2 and len(truth) == 2 * PER_KIND
    assert groups_of(len(pictures), [(i, j) for i, j, _ in pairs]) == truth
