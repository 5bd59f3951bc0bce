"""The official `include_top=False` weights file of every backbone and width cnncli trains
(`--backbone`), as keras.applications names, fetches and checks it: the file name, its
download address and the hash Keras' `get_file` checks after downloading it. Taken from
Keras' own source (keras/src/applications/*.py: BASE_WEIGHT_PATH, WEIGHTS_HASHES, the
`file_hash=` of each `get_file` call). Keras publishes MD5 hashes (32 hex digits, checked by
get_file's "auto" algorithm) for MobileNetV3, EfficientNet, ResNet and DenseNet, and none
for MobileNet and MobileNetV2: those files are checked by their structure only.

No sha256 is published by Keras for any of them, and cnncli never downloads, so none is
invented here: the hash checked is Keras' own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cnncli.errors import InputError

_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"
MOBILENET_ROWS = (128, 160, 192, 224)  # the input sizes MobileNet v1/v2 weights exist for
MOBILENETV2_ROWS = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class OfficialFile:
    backbone: str
    alpha: float
    rows: int | None  # the input size the weights were trained at (MobileNet v1/v2)
    name: str
    url: str
    md5: str | None  # the hash Keras' get_file checks; None: Keras gives none


def _files() -> list[OfficialFile]:
    out = []
    for alpha, text in ((1.0, "1_0"), (0.75, "7_5"), (0.5, "5_0"), (0.25, "2_5")):
        for rows in MOBILENET_ROWS:
            name = f"mobilenet_{text}_{rows}_tf_no_top.h5"
            out.append(
                OfficialFile("mobilenet", alpha, rows, name, f"{_APPS}mobilenet/{name}", None)
            )
    for alpha in (1.0, 0.35, 0.5, 0.75, 1.3, 1.4):
        for rows in MOBILENETV2_ROWS:
            name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
            out.append(
                OfficialFile("mobilenetv2", alpha, rows, name, f"{_APPS}mobilenet_v2/{name}", None)
            )
    v3 = {
        ("small", 1.0): "d3e8ec802a04aa4fc771ee12a9a9b836",
        ("small", 0.75): "ebdb5cc8e0b497cd13a7c275d475c819",
        ("large", 1.0): "07fb09a5933dd0c8eaafa16978110389",
        ("large", 0.75): "40af19a13ebea4e2ee0c676887f69a2e",
    }
    for (kind, alpha), md5 in v3.items():
        name = f"weights_mobilenet_v3_{kind}_224_{alpha}_float_no_top_v2.h5"
        out.append(
            OfficialFile(
                f"mobilenetv3{kind}", alpha, None, name, f"{_APPS}mobilenet_v3/{name}", md5
            )
        )
    out += [
        OfficialFile(
            "efficientnetb0",
            1.0,
            None,
            "efficientnetb0_notop.h5",
            f"{_EFFICIENTNET}efficientnetb0_notop.h5",
            "50bc09e76180e00e4465e1a485ddc09d",
        ),
        OfficialFile(
            "resnet50",
            1.0,
            None,
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            f"{_APPS}resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "4d473c1dd8becc155b73f8504c6f6626",
        ),
        OfficialFile(
            "densenet121",
            1.0,
            None,
            "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            f"{_APPS}densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "30ee3e1110167f948a6b9946edeeb738",
        ),
    ]
    return out


OFFICIAL_FILES = {f.name: f for f in _files()}


def official_rows(backbone: str) -> tuple[int, ...]:
    """The input sizes a MobileNet's official weights exist for (others: 224 alone);
    keras.applications uses the 224 file for any other size."""
    return {"mobilenet": MOBILENET_ROWS, "mobilenetv2": MOBILENETV2_ROWS}.get(backbone, (224,))


def official_file(name: str) -> OfficialFile | None:
    """The official file of that name, or None."""
    return OFFICIAL_FILES.get(Path(name).name)


def where_to_get(name: str) -> str:
    """ "from URL (md5 HASH)" for an official file name; "" for another name."""
    f = official_file(name)
    if f is None:
        return ""
    return f" from {f.url}" + (f" (md5 {f.md5})" if f.md5 else "")


def check_official_hash(path: str | Path) -> None:
    """Refuse (InputError, one line) a file named as an official weights file whose MD5 is
    not the one Keras publishes for it (a damaged copy, or another file renamed); a name
    Keras gives no hash for, or another name, is left to the structure check."""
    path = Path(path)
    f = official_file(path.name)
    if f is None or f.md5 is None:
        return
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise InputError(f"cannot read weights file {path} ({e.strerror or e})") from None
    if digest.hexdigest() != f.md5:
        raise InputError(
            f"{path} is not the official {f.name}: its md5 is {digest.hexdigest()}, Keras "
            f"publishes {f.md5}",
            f"download it again from {f.url}",
        )
