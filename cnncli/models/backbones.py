"""Pretrained backbones from keras.applications, offline: the table of those cnncli trains
(`--backbone`), their smallest input and widths, the preprocessing each expects built INTO
the model as built-in layers (so a saved model loads without --unsafe and every command
gives it raw 0..255 pixels), the grayscale/RGBA -> RGB conversion, and the weights: never
downloaded; `--weights none`, a file path, or the official file found by its name in
$KERAS_HOME/models or ~/.keras/models (where keras.utils.get_file caches it).

The checks (name, width, weights file, input size) need no TensorFlow; `build_backbone_model`
imports Keras.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli.errors import InputError, UsageError
from cnncli.models.backbone_files import check_official_hash, official_rows, where_to_get

if TYPE_CHECKING:
    from cnncli.images.spec import ImageSpec

BACKBONE_LAYER = "backbone"  # how the nested keras.applications model is named in a model
PREPROCESSINGS = ("builtin", "tf", "caffe", "torch")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torch mode, RGB, after /255
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    """One keras.applications backbone: `factory` its function name, `preprocessing` what
    its weights expect ("builtin": inside the Keras model already; "tf": [-1, 1]; "caffe":
    BGR minus the ImageNet mean; "torch": [0, 1] normalized by the ImageNet mean and std),
    `alphas` the widths it takes (first: the default), `min_size` its smallest input side."""

    name: str
    factory: str
    preprocessing: str
    alphas: tuple = (1.0,)
    min_size: int = 32
    notop: str = ""  # the official no-top weights file name ({alpha}, {rows} filled in)

    def weights_file(self, alpha: float | None, size: int) -> str:
        """The official include_top=False weights file name, as keras.applications asks
        get_file for it (MobileNet: the nearest official input size, like Keras)."""
        alpha = self.alphas[0] if alpha is None else alpha
        rows = size if size in official_rows(self.name) else 224
        text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(alpha, "")
        return self.notop.format(alpha=float(alpha), rows=rows, alpha_text=text)

    def describe(self, alpha: float | None = None) -> str:
        alpha = self.alphas[0] if alpha is None else alpha
        return self.name if len(self.alphas) == 1 else f"{self.name} (alpha {alpha:g})"


BACKBONES = {
    b.name: b
    for b in (
        Backbone(
            "mobilenet",
            "MobileNet",
            "tf",
            (1.0, 0.75, 0.5, 0.25),
            notop="mobilenet_{alpha_text}_{rows}_tf_no_top.h5",
        ),
        Backbone(
            "mobilenetv2",
            "MobileNetV2",
            "tf",
            (1.0, 0.35, 0.5, 0.75, 1.3, 1.4),
            notop="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5",
        ),
        Backbone(
            "mobilenetv3small",
            "MobileNetV3Small",
            "builtin",
            (1.0, 0.75),
            notop="weights_mobilenet_v3_small_224_{alpha}_float_no_top_v2.h5",
        ),
        Backbone(
            "mobilenetv3large",
            "MobileNetV3Large",
            "builtin",
            (1.0, 0.75),
            notop="weights_mobilenet_v3_large_224_{alpha}_float_no_top_v2.h5",
        ),
        Backbone("efficientnetb0", "EfficientNetB0", "builtin", notop="efficientnetb0_notop.h5"),
        Backbone(
            "resnet50",
            "ResNet50",
            "caffe",
            notop="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        Backbone(
            "densenet121",
            "DenseNet121",
            "torch",
            notop="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
    )
}


def get_backbone(name: str) -> Backbone:
    """The table entry for `name` (case-insensitive); UsageError listing them otherwise."""
    bb = BACKBONES.get(str(name).lower().replace("-", "").replace("_", ""))
    if bb is None:
        raise UsageError(f"unknown backbone {name!r}", f"use one of {', '.join(BACKBONES)}")
    return bb


def check_alpha(bb: Backbone, alpha: float | None) -> float:
    """The width to build (`alpha` None: the backbone's default)."""
    if alpha is None:
        return bb.alphas[0]
    if float(alpha) not in bb.alphas:
        if len(bb.alphas) == 1:
            raise UsageError(
                f"--alpha is for MobileNet backbones; {bb.name} has one width", "leave out --alpha"
            )
        raise UsageError(
            f"{bb.name} takes --alpha {', '.join(f'{a:g}' for a in bb.alphas)}, got {alpha:g}"
        )
    return float(alpha)


def cache_folders() -> list[Path]:
    """Where keras.utils.get_file keeps keras.applications' weights: $KERAS_HOME/models
    (when set), then ~/.keras/models."""
    out = []
    if os.environ.get("KERAS_HOME"):
        out.append(Path(os.environ["KERAS_HOME"]) / "models")
    out.append(Path.home() / ".keras" / "models")
    return out


def resolve_weights(
    bb: Backbone, alpha: float | None, weights: str | None, size: int = 224
) -> Path | None:
    """The weights file a run loads: None for `--weights none`; a given path; a bare file
    name found in the Keras cache folders; no --weights (or "imagenet"): the official file
    for this backbone, width and size in the cache. Never downloads: a missing file is an
    InputError naming the file expected and where it was looked for."""
    if weights is not None and str(weights).lower() == "none":
        return None
    official = bb.weights_file(alpha, size)
    name = official if weights is None or str(weights).lower() == "imagenet" else str(weights)
    path = Path(name).expanduser()
    if path.is_file():
        check_official_hash(path)
        return path
    if path.exists():
        raise InputError(f"--weights {name} is not a file")
    for folder in cache_folders():
        if len(path.parts) == 1 and (folder / path.name).is_file():
            check_official_hash(folder / path.name)
            return folder / path.name
    where = " or ".join(str(f) for f in cache_folders())
    if weights is None or str(weights).lower() == "imagenet":
        raise InputError(
            f"no weights for {bb.describe(alpha)}: {official} is not in {where} "
            "(cnncli never downloads)",
            f"copy {official} there (download it{where_to_get(official)}), give --weights "
            "PATH, or train from scratch with --weights none",
        )
    raise InputError(
        f"weights file {name} not found (looked here and in {where})",
        f"give the path of a weights file ({official} for {bb.describe(alpha)}) or --weights none",
    )


def check_input(bb: Backbone, image: ImageSpec) -> str | None:
    """Refuse images smaller than the backbone takes (before building it); say what the
    model does with grayscale or RGBA images (`image`: an ImageSpec). Returns that note."""
    h, w = image.height, image.width
    if min(h, w) < bb.min_size:
        raise UsageError(
            f"{bb.name} needs images of at least {bb.min_size}x{bb.min_size} pixels; the "
            f"dataset's are {h}x{w}",
            f"rebuild the dataset with --size {bb.min_size} or larger, or use --arch",
        )
    if image.color == "grayscale":
        return (
            f"{bb.name} takes RGB: the model copies the grayscale channel into R, G and B "
            "(build the dataset with --color rgb to train on colour)"
        )
    if image.color == "rgba":
        return (
            f"{bb.name} takes RGB: the model drops the alpha channel "
            "(build the dataset with --color rgb to flatten it yourself)"
        )
    return None


# --------------------------------------------------------------------------- Keras
def build_backbone_model(
    name: str,
    input_shape: tuple[int, int, int],
    head_layer: Any,
    *,
    alpha: float | None = None,
    weights: Path | None = None,
    frozen: bool = False,
    dropout: float = 0.2,
) -> Any:
    """Raw pixels (H, W, C) -> RGB -> the backbone's preprocessing -> the backbone (nested
    model named `BACKBONE_LAYER`; called with training=False when pretrained, so its
    BatchNorm stays in inference mode when unfrozen, as the Keras transfer learning guide
    does) -> global average pooling -> dropout -> `head_layer`. Built-in layers only."""
    import keras

    bb = get_backbone(name)
    alpha = check_alpha(bb, alpha)
    h, w, c = input_shape
    kwargs = {"input_shape": (h, w, 3), "include_top": False, "weights": None}
    if len(bb.alphas) > 1:
        kwargs["alpha"] = alpha
    base = getattr(keras.applications, bb.factory)(**kwargs, name=BACKBONE_LAYER)
    if weights is not None:
        load_backbone_weights(base, Path(weights), bb, alpha, h)
    base.trainable = not frozen
    inputs = keras.Input(shape=(h, w, c), name="pixels")
    x = rgb_layers(inputs, c)
    x = preprocessing_layers(x, bb.preprocessing)
    x = base(x, training=False) if weights is not None else base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, head_layer(x), name=f"{bb.name}_transfer")


def _fixed_conv(x, kernel, bias, name):
    import keras
    import numpy as np

    layer = keras.layers.Conv2D(
        kernel.shape[1], 1, use_bias=bias is not None, name=name, trainable=False
    )
    y = layer(x)
    layer.set_weights(
        [np.asarray(kernel, "float32")[None, None]]
        + ([np.asarray(bias, "float32")] if bias is not None else [])
    )
    return y


def rgb_layers(x: Any, channels: int) -> Any:
    """A fixed 1x1 convolution making 3 channels: grayscale copied to R, G, B; RGBA's alpha
    dropped; RGB unchanged."""
    import numpy as np

    if channels == 3:
        return x
    kernel = np.ones((1, 3)) if channels == 1 else np.eye(channels, 3)
    return _fixed_conv(x, kernel, None, "to_rgb")


def preprocessing_layers(x: Any, kind: str) -> Any:
    """What the backbone's weights expect, from raw 0..255 RGB, as built-in layers."""
    import keras
    import numpy as np

    if kind == "tf":  # keras.applications.mobilenet_v2.preprocess_input
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(x)
    if kind == "caffe":  # RGB -> BGR, minus the ImageNet mean (resnet50.preprocess_input)
        return _fixed_conv(x, np.eye(3)[:, ::-1], -np.array(_CAFFE_MEAN_BGR), "preprocess")
    if kind == "torch":  # /255, then (x - mean) / std per channel (densenet.preprocess_input)
        x = keras.layers.Rescaling(1 / 255, name="preprocess_scale")(x)
        return keras.layers.Normalization(
            mean=_IMAGENET_MEAN, variance=np.square(_IMAGENET_STD), name="preprocess"
        )(x)
    return x  # builtin: the keras.applications model rescales itself


def load_backbone_weights(base: Any, path: Path, bb: Backbone, alpha: float, size: int) -> None:
    """Load `path` into the backbone `base`: a Keras weights file (.h5, .weights.h5, the
    official no-top files) or a cnncli model (.keras/.h5 with a backbone of the same kind).
    A file that does not fit is one InputError naming what was expected."""
    expected = (
        f"expected {bb.weights_file(alpha, size)} (include_top=False) or weights "
        f"saved from a {bb.describe(alpha)} backbone"
    )
    source = _nested_backbone(path)
    try:
        if source is not None:
            want = [tuple(v.shape) for v in base.weights]
            got = [tuple(v.shape) for v in source.weights]
            if want != got:
                raise ValueError(f"{len(got)} arrays, {len(want)} expected")
            base.set_weights(source.get_weights())
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            base.load_weights(str(path))
        bad = [str(w.message) for w in caught if "load" in str(w.message).lower()]
        if bad:
            raise ValueError(bad[0].splitlines()[0][:160])
    except (ValueError, KeyError, OSError, TypeError) as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise InputError(
            f"{path} does not fit the {bb.describe(alpha)} backbone ({reason})", expected
        ) from None


def _nested_backbone(path: Path):
    """The backbone inside a cnncli model file, or None for a weights-only file."""
    if path.name.endswith(".weights.h5") or path.suffix not in (".keras", ".h5"):
        return None
    if path.suffix == ".h5":  # a whole model stores its config; a weights file does not
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "model_config" not in f.attrs:
                    return None
        except OSError:
            return None  # load_weights says what is wrong
    from cnncli.models.io import load_model

    model = load_model(path, compile=False).model
    try:
        return model.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise InputError(
            f"{path} is a model without a backbone to take weights from",
            "give a model trained with --backbone, or a weights file",
        ) from None


def backbone_of(model: Any) -> Any:
    """The nested backbone of a model cnncli built (None when it has none)."""
    for layer in getattr(model, "layers", []):
        if layer.name == BACKBONE_LAYER and hasattr(layer, "layers"):
            return layer
        inner = backbone_of(layer) if hasattr(layer, "layers") else None
        if inner is not None:
            return inner
    return None


def backbone_for_run(info: Any, opts: Any) -> Any:
    """The model `cnncli train --backbone` trains on the dataset `info` (a DatasetInfo),
    from the run's options: width, weights (resolved offline), frozen at the start when
    --freeze or --fine-tune-at, and the head of the dataset's task."""
    import keras

    from cnncli.models.spec import head_entry

    bb = get_backbone(opts.backbone)
    weights = resolve_weights(bb, opts.alpha, opts.weights, info.image.height)
    _, kwargs = head_entry(info.output_size, info.task)
    head = keras.layers.Dense(**kwargs, name="predictions")
    frozen = bool(opts.freeze or opts.fine_tune_at is not None)
    return build_backbone_model(
        bb.name, info.image.shape, head, alpha=opts.alpha, weights=weights, frozen=frozen
    )


def summary_model(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    alpha: float | None = None,
) -> Any:
    """`cnncli summary --backbone NAME`: the model --backbone trains (random weights, the
    backbone frozen as a run starts) for `input_shape` (default 224x224x3) and `classes`."""
    import keras

    from cnncli.images.spec import ImageSpec
    from cnncli.models.spec import head_entry

    bb = get_backbone(name)
    alpha = check_alpha(bb, alpha)
    h, w, c = input_shape or (224, 224, 3)
    check_input(bb, ImageSpec(h, w, {1: "grayscale", 3: "rgb", 4: "rgba"}.get(c, "rgb")))
    _, kwargs = head_entry(classes or 2)
    head = keras.layers.Dense(**kwargs, name="predictions")
    return build_backbone_model(bb.name, (h, w, c), head, alpha=alpha, frozen=True)
