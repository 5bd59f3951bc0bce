"""cnncli activations: raw values against Keras sub-models, files and order, normalisation,
index.html (in a browser: tests/test_html_pages.py), Grad-CAM against an independent
GradientTape computation, nested models, grayscale/RGBA, .h5, small models shown enlarged,
1x1 maps as values, and the CLI's default output folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from cnncli.drawing.grids import activation_grid, normalize
from cnncli.inference.activations import activations
from cnncli.inference.gradcam import resize_map
from cnncli.inference.trace import select_layers, trace_model


def _functional(channels=4, size=16, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, channels), name="img")
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv_a")(inp)
    x = keras.layers.MaxPooling2D(name="pool_a")(x)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="conv_b")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def rgba_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "rgba.keras"
    _functional(4).save(path)
    return path


@pytest.fixture
def rgba_image(tmp_path, write_image):
    arr = (np.random.default_rng(1).random((20, 24, 4)) * 255).astype(np.uint8)
    return write_image(tmp_path / "img.png", arr)


def _input(path, size=16, color="rgba"):
    from cnncli.images import ImageSpec, load_image

    return load_image(path, ImageSpec(size, size, color)).astype(np.float32)[None] / 255.0


def test_raw_equals_keras_submodel_cut_at_each_layer(rgba_model, rgba_image, tmp_path):
    import keras

    out = tmp_path / "out"
    result = activations(rgba_model, [rgba_image], out, layers="all", raw=True)
    model = keras.models.load_model(rgba_model, compile=False)
    x = _input(rgba_image)
    names = [lo.name for lo in result.images[0].layers]
    assert names == ["conv_a", "pool_a", "conv_b", "flat", "drop", "head"]
    for lo in result.images[0].layers:
        sub = keras.Model(model.inputs, model.get_layer(lo.name).output)
        expected = np.asarray(sub(x, training=False))[0]
        got = np.load(out / lo.npy)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the predicted class and probability are the model's output
    probs = np.asarray(model(x))[0]
    r = result.images[0]
    assert r.predicted_index == int(np.argmax(probs))
    assert r.probability == pytest.approx(float(probs.max()), rel=1e-5)


def test_default_files_counts_order_and_html(rgba_model, rgba_image, tmp_path):
    out = tmp_path / "out"
    result = activations(rgba_model, [rgba_image], out)
    # default: spatial layers plus Flatten and Dense (not the vector Dropout)
    expected = ["00_conv_a.png", "01_pool_a.png", "02_conv_b.png", "03_flat.png", "05_head.png"]
    assert [lo.file for lo in result.images[0].layers] == expected
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(expected + ["input.png"])
    assert sorted(p.name for p in out.glob("*.csv")) == ["03_flat.csv", "05_head.csv"]
    assert not list(out.glob("*.npy"))
    html = (out / "index.html").read_text(encoding="utf-8")
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs == ["input.png"] + expected  # every PNG written, in layer order
    assert "(None, 14, 14, 6)" in html and "Predicted class" in html
    assert not re.search(r'(src|href)="(/|file:|http)', html)  # relative links only
    # the flatten CSV holds every value
    flat = np.loadtxt(out / "03_flat.csv", delimiter=",", skiprows=1)
    assert flat.shape == (5 * 5 * 5, 2)
    # the grid has one numbered cell per channel: 6 channels -> one row of 6
    from PIL import Image

    with Image.open(out / "00_conv_a.png") as im:
        assert im.mode == "P" and im.width >= 6 * 64  # palette PNG: the colormap, then greys


def test_constant_channel_is_flat_never_nan():
    a = np.zeros((5, 5, 3), np.float32)
    a[:, :, 1] = np.arange(25).reshape(5, 5)
    a[:, :, 2] = 7.0
    n = normalize(a, "channel")
    assert not np.isnan(n).any()
    assert (n[:, :, 0] == 128).all() and (n[:, :, 2] == 128).all()
    ch = a[:, :, 1]
    course = np.clip((ch - ch.mean()) / ch.std() * 64 + 128, 0, 255)
    np.testing.assert_allclose(n[:, :, 1], course, rtol=1e-5)
    # layer norm: one mean and std for all channels
    whole = np.clip((a - a.mean()) / a.std() * 64 + 128, 0, 255)
    np.testing.assert_allclose(normalize(a, "layer"), whole, rtol=1e-5)
    grid = activation_grid(np.full((4, 4, 2), 3.0, np.float32), per_row=2, cmap="gray")
    img = np.asarray(grid.convert("RGB")).astype(int)
    flat_grey = (img == 128).all(axis=2)  # both constant maps: 4x4 enlarged to 64x64, grey 128
    assert flat_grey.sum() == 2 * 64 * 64


def test_wide_layers_capped_with_note(rgba_model, rgba_image, tmp_path):
    result = activations(rgba_model, [rgba_image], tmp_path / "o", layers="conv_a", max_channels=4)
    assert any("first 4" in n for n in result.notes)
    assert result.images[0].layers[0].note == "first 4 of 6 channels"


def test_gradcam_equals_independent_gradient_tape(rgba_model, rgba_image, tmp_path):
    import keras
    import tensorflow as tf

    out = tmp_path / "out"
    result = activations(rgba_model, [rgba_image], out, gradcam=True, raw=True, class_index=2)
    r = result.images[0]
    assert r.gradcam_layer == "conv_b" and r.gradcam == "gradcam.png"
    model = keras.models.load_model(rgba_model, compile=False)
    grad_model = keras.Model(model.inputs, [model.get_layer("conv_b").output, model.output])
    x = tf.constant(_input(rgba_image))
    with tf.GradientTape() as tape:
        conv, pred = grad_model(x)
        score = pred[:, 2]
    grads = tape.gradient(score, conv)[0].numpy()
    weights = grads.mean(axis=(0, 1))
    cam = np.maximum((conv[0].numpy() * weights).sum(-1), 0)
    cam = cam / cam.max() if cam.max() > 0 else cam
    np.testing.assert_allclose(r.gradcam_map, cam, rtol=1e-4, atol=1e-5)
    full = np.load(out / "gradcam.npy")
    assert full.shape == (16, 16)  # the input image as the model sees it
    np.testing.assert_allclose(full, resize_map(cam, 16, 16), atol=1e-4)
    from PIL import Image

    with Image.open(out / "gradcam.png") as im:
        assert im.size == (224, 224)  # 16x16 shown at 14x, nearest neighbour
    assert 'src="gradcam.png"' in (out / "index.html").read_text(encoding="utf-8")


def test_nested_models_expand_inner_layers(tmp_path, rgba_image):
    import keras

    keras.utils.set_random_seed(3)
    inner = keras.Sequential(
        [
            keras.layers.Conv2D(3, 3, activation="relu", name="ic"),
            keras.layers.MaxPooling2D(name="ip"),
        ],
        name="block",
    )
    inp = keras.Input((16, 16, 4))
    x = keras.layers.Conv2D(4, 3, name="c0")(inp)
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(2, activation="softmax", name="d")(x)
    model = keras.Model(inp, out)
    probe = trace_model(model)
    assert [li.name for li in probe.layers] == ["c0", "block/ic", "block/ip", "gap", "d"]
    result = activations(model, [rgba_image], tmp_path / "n", layers="all", raw=True)
    files = [lo.file for lo in result.images[0].layers]
    assert files[1] == "01_block-ic.png"
    got = np.load(tmp_path / "n" / "02_block-ip.npy")
    x = _input(rgba_image)
    expected = inner(model.get_layer("c0")(x))[0]
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-6)
    # the nested layer is selectable by its own name
    assert [li.name for li in select_layers(probe.layers, "ic,-1")] == ["block/ic", "d"]


def test_sequential_without_input_grayscale_h5_other_size(tmp_path, write_image):
    import keras

    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, activation="relu", name="c"),
            keras.layers.MaxPooling2D(name="p"),
            keras.layers.Flatten(name="f"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    model.build((None, 12, 12, 1))
    h5 = tmp_path / "mnist.h5"
    model.save(h5)  # the legacy HDF5 format that tf.keras 2.x wrote
    img = write_image(
        tmp_path / "digit.png", (np.arange(30 * 40) % 256).astype(np.uint8).reshape(30, 40)
    )
    result = activations(h5, [img], tmp_path / "o", raw=True, layers="conv")
    assert result.conversion == (
        "images converted to 12x12 grayscale (stretch), from the model's input shape "
        "(none stored with the model); pixels x 1/255"
    )
    got = np.load(tmp_path / "o" / "00_c.npy")
    assert got.shape == (10, 10, 4)
    x = _input(img, 12, "grayscale")
    np.testing.assert_allclose(got, np.asarray(model.layers[0](x))[0], rtol=1e-5, atol=1e-6)


def test_several_images_one_subfolder_each(rgba_model, tmp_path, write_image):
    rng = np.random.default_rng(2)
    folder = tmp_path / "imgs"
    for name in ("a", "b"):
        write_image(folder / f"{name}.png", (rng.random((16, 16, 4)) * 255).astype(np.uint8))
    calls = []
    result = activations(
        rgba_model, [folder], tmp_path / "out", progress=lambda d, t: calls.append((d, t))
    )
    assert [r.out_dir.name for r in result.images] == ["a", "b"]
    assert (tmp_path / "out" / "b" / "index.html").is_file()
    assert calls == [(1, 2), (2, 2)]


def test_cli_default_folder_table_and_refusal(cli, rgba_model, rgba_image, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("activations", rgba_model, rgba_image)
    assert result.exit_code == 0, result.output
    folder = Path("activations") / "img"
    assert (folder / "index.html").is_file() and (folder / "00_conv_a.png").is_file()
    assert "activations/img" in result.stderr and "images converted to 16x16 RGBA" in result.stderr
    assert "conv_a" in result.stdout and "(None, 14, 14, 6)" in result.stdout
    again = cli("activations", rgba_model, rgba_image)
    assert again.exit_code == 2
    assert "already exists" in again.stderr and "--overwrite" in again.stderr
    assert cli("activations", rgba_model, rgba_image, "--overwrite").exit_code == 0
    # --overwrite replaces its own earlier output and nothing else
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    refused = cli("activations", rgba_model, rgba_image, "-o", tmp_path / "mine", "--overwrite")
    assert refused.exit_code == 2 and "is not an activations folder" in refused.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_bad_input_one_line(cli, rgba_model, rgba_image, tmp_path):
    bad = cli("activations", rgba_model, rgba_image, "-o", tmp_path / "x", "--layers", "nope")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --layers: no layer or group named 'nope'")
    assert "Traceback" not in bad.output
    missing = cli("activations", tmp_path / "none.keras", rgba_image, "-o", tmp_path / "y")
    assert missing.exit_code == 2 and "not found" in missing.stderr  # a named input: usage
    cmap = cli("activations", rgba_model, rgba_image, "-o", tmp_path / "z", "--cmap", "nocmap")
    assert cmap.exit_code == 2 and "unknown colormap 'nocmap'" in cmap.stderr
    assert not (tmp_path / "z").exists()
    lone = cli("activations", rgba_model, rgba_image, "-o", tmp_path / "c", "--class", "1")
    assert (
        lone.exit_code == 2 and "--class chooses the Grad-CAM class: add --gradcam" in lone.stderr
    )


def _write_tf_keras2_h5(path: Path, kernel: np.ndarray, bias: np.ndarray, dense_w, dense_b):
    """An .h5 file laid out as tf.keras 2.15 wrote it (config style, weight names with ':0',
    keras_version 2.15.0), written with h5py so the test needs no TF 2.x install."""
    import json

    import h5py

    def layer(cls, name, **cfg):
        return {
            "class_name": cls,
            "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
        }

    init = {"class_name": "GlorotUniform", "config": {"seed": None}}
    zeros = {"class_name": "Zeros", "config": {}}
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {
                        "batch_input_shape": [None, 10, 10, 1],
                        "dtype": "float32",
                        "sparse": False,
                        "ragged": False,
                        "name": "conv2d_input",
                    },
                },
                layer(
                    "Conv2D",
                    "conv2d",
                    batch_input_shape=[None, 10, 10, 1],
                    filters=2,
                    kernel_size=[3, 3],
                    strides=[1, 1],
                    padding="valid",
                    data_format="channels_last",
                    dilation_rate=[1, 1],
                    groups=1,
                    activation="relu",
                    use_bias=True,
                    kernel_initializer=init,
                    bias_initializer=zeros,
                    kernel_regularizer=None,
                    bias_regularizer=None,
                    activity_regularizer=None,
                    kernel_constraint=None,
                    bias_constraint=None,
                ),
                layer(
                    "MaxPooling2D",
                    "max_pooling2d",
                    pool_size=[2, 2],
                    padding="valid",
                    strides=[2, 2],
                    data_format="channels_last",
                ),
                layer("Flatten", "flatten", data_format="channels_last"),
                layer(
                    "Dense",
                    "dense",
                    units=3,
                    activation="softmax",
                    use_bias=True,
                    kernel_initializer=init,
                    bias_initializer=zeros,
                    kernel_regularizer=None,
                    bias_regularizer=None,
                    activity_regularizer=None,
                    kernel_constraint=None,
                    bias_constraint=None,
                ),
            ],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["model_config"] = json.dumps(config)
        g = f.create_group("model_weights")
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = "2.15.0"
        g.attrs["layer_names"] = np.array([b"conv2d", b"max_pooling2d", b"flatten", b"dense"])
        for name, weights in (
            ("conv2d", {"kernel:0": kernel, "bias:0": bias}),
            ("max_pooling2d", {}),
            ("flatten", {}),
            ("dense", {"kernel:0": dense_w, "bias:0": dense_b}),
        ):
            lg = g.create_group(name)
            lg.attrs["weight_names"] = np.array([f"{name}/{w}".encode() for w in weights])
            for w, value in weights.items():
                lg.create_dataset(f"{name}/{w}", data=value)


def test_tf_keras2_h5_file(tmp_path, write_image):
    rng = np.random.default_rng(9)
    kernel = rng.normal(size=(3, 3, 1, 2)).astype(np.float32)
    bias = np.array([0.1, -0.2], np.float32)
    dense_w = rng.normal(size=(32, 3)).astype(np.float32)
    dense_b = np.zeros(3, np.float32)
    h5 = tmp_path / "old.h5"
    _write_tf_keras2_h5(h5, kernel, bias, dense_w, dense_b)
    img = write_image(tmp_path / "d.png", (rng.random((10, 10)) * 255).astype(np.uint8))
    result = activations(h5, [img], tmp_path / "o", layers="all", raw=True)
    assert [lo.name for lo in result.images[0].layers] == [
        "conv2d",
        "max_pooling2d",
        "flatten",
        "dense",
    ]
    # an independent NumPy forward pass with the file's weights
    x = _input(img, 10, "grayscale")[0, :, :, 0]
    conv = np.zeros((8, 8, 2), np.float32)
    for i in range(8):
        for j in range(8):
            conv[i, j] = np.tensordot(x[i : i + 3, j : j + 3], kernel[:, :, 0, :], axes=2) + bias
    conv = np.maximum(conv, 0)
    np.testing.assert_allclose(
        np.load(tmp_path / "o" / "00_conv2d.npy"), conv, rtol=1e-5, atol=1e-6
    )
    pooled = conv.reshape(4, 2, 4, 2, 2).max(axis=(1, 3))
    logits = pooled.reshape(-1) @ dense_w + dense_b
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(
        np.load(tmp_path / "o" / "03_dense.npy"), probs, rtol=1e-5, atol=1e-6
    )
    assert result.images[0].predicted_class == str(int(np.argmax(probs)))


def test_cli_json_norm_and_gradcam(cli, rgba_model, rgba_image, tmp_path):
    import json

    out = tmp_path / "j"
    result = cli(
        "activations",
        rgba_model,
        rgba_image,
        "-o",
        out,
        "--json",
        "--norm",
        "global",
        "--layers",
        "conv,1",
        "--gradcam",
        "--class",
        "0",
        "--cmap",
        "gray",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (image,) = data["images"]
    assert [la["name"] for la in image["layers"]] == ["conv_a", "pool_a", "conv_b"]
    assert image["gradcam"] == str(out / "gradcam.png")
    assert all(Path(la["file"]).is_file() for la in image["layers"])
    assert data["conversion"].startswith("images converted to 16x16 RGBA")


def test_help_does_not_import_tensorflow():
    import subprocess
    import sys

    probe = (
        "import sys; from typer.testing import CliRunner; from cnncli.cli.main import app\n"
        "for cmd in ('activations', 'embed'):\n"
        "    r = CliRunner().invoke(app, [cmd, '--help'])\n"
        "    assert r.exit_code == 0 and '--layer' in r.stdout, r.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_vector_csv_holds_the_raw_values(rgba_model, rgba_image, tmp_path):
    out = tmp_path / "v"
    activations(rgba_model, [rgba_image], out, layers="dense", raw=True)
    for stem in ("03_flat", "05_head"):
        table = np.loadtxt(out / f"{stem}.csv", delimiter=",", skiprows=1)
        np.testing.assert_array_equal(table[:, 0], np.arange(len(table)))
        np.testing.assert_allclose(table[:, 1], np.load(out / f"{stem}.npy"), rtol=1e-7)


def test_preset_with_stored_metadata_korean_classes(tmp_path, write_image):
    from cnncli.models.io import save_model
    from cnncli.models.presets import build_architecture

    model = build_architecture("tiny", input_shape=(20, 20, 3), num_classes=2)
    path = tmp_path / "tiny.keras"
    spec = {"height": 20, "width": 20, "channels": 3, "color": "rgb", "fit": "stretch"}
    save_model(model, path, {"class_names": ["벽돌", "대리석"], "image": spec, "pixel_scale": 1.0})
    img = write_image(tmp_path / "wall.png", np.full((30, 30, 3), 90, np.uint8))
    result = activations(path, [img], tmp_path / "o", gradcam=True)
    assert result.conversion == (
        "images converted to 20x20 RGB (stretch), as the dataset was built "
        "(stored with the model); pixels x 1"
    )
    r = result.images[0]
    assert r.predicted_class in ("벽돌", "대리석") and r.gradcam_class == r.predicted_class
    html = (tmp_path / "o" / "index.html").read_text(encoding="utf-8")
    assert f"<b>{r.predicted_class}</b>" in html and "대리석" in html
    pngs = {p.name for p in (tmp_path / "o").glob("*.png")}
    assert pngs == {lo.file for lo in r.layers} | {"input.png", "gradcam.png"}


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory):
    """A 28x28 grayscale model (MNIST-sized) whose last pooling leaves 1x1 maps."""
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)  # 26x26
    x = keras.layers.MaxPooling2D(name="pool")(x)  # 13x13
    x = keras.layers.Conv2D(5, 3, activation="relu", name="conv2")(x)  # 11x11
    x = keras.layers.MaxPooling2D(11, name="last_pool")(x)  # 1x1x5
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    path = tmp_path_factory.mktemp("digits") / "digits.keras"
    keras.Model(inp, out).save(path)
    return path


@pytest.fixture
def digit_image(tmp_path, write_image):
    arr = (np.random.default_rng(8).random((28, 28)) * 255).astype(np.uint8)
    return write_image(tmp_path / "digit.png", arr)


def test_small_model_pictures_enlarged_nearest_raw_kept(digit_model, digit_image, tmp_path):
    from PIL import Image

    from cnncli.images import ImageSpec, load_image
    from cnncli.inference.activations import to_json

    out = tmp_path / "o"
    result = activations(digit_model, [digit_image], out, gradcam=True, raw=True)
    pixels = load_image(digit_image, ImageSpec(28, 28, "grayscale"))[:, :, 0]
    with Image.open(out / "input.png") as im:  # 28 px shown at 8x: 224 px, each pixel a block
        np.testing.assert_array_equal(np.asarray(im), pixels.repeat(8, 0).repeat(8, 1))
    with Image.open(out / "gradcam.png") as im:
        cam = np.asarray(im.convert("RGB"))
    assert cam.shape == (224, 224, 3)
    np.testing.assert_array_equal(cam, cam[::8, ::8].repeat(8, 0).repeat(8, 1))
    assert np.load(out / "gradcam.npy").shape == (28, 28)  # --raw keeps the true size
    assert np.load(out / "00_conv.npy").shape == (26, 26, 4)
    with Image.open(out / "00_conv.png") as im:  # 26 px maps shown at 3x: 78 px tiles
        assert im.width >= 4 * 78 and im.height >= 78
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.count("shown at 8x (nearest neighbour; the model sees 28x28 pixels)") == 2
    assert to_json(result)["images"][0]["display_scale"] == 8
    # a model input of 224 px or more is shown as it is
    big = activation_grid(np.zeros((300, 300, 1), np.float32))
    assert big.height < 300 + 60


def test_one_by_one_maps_are_a_value_strip_with_csv(digit_model, digit_image, tmp_path):
    from PIL import Image

    out = tmp_path / "o"
    result = activations(digit_model, [digit_image], out, raw=True, max_channels=2)
    layers = {lo.name: lo for lo in result.images[0].layers}
    last = layers["last_pool"]
    assert last.csv == "03_last_pool.csv" and last.note.startswith("1x1 maps: one value")
    table = np.loadtxt(out / last.csv, delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 1], np.load(out / last.npy).ravel(), rtol=1e-7)
    assert table.shape == (5, 2)
    with Image.open(out / last.file) as im:  # a strip of 5 coloured cells, not blank tiles
        strip = np.asarray(im.convert("RGB"))
    colours, counts = np.unique(strip.reshape(-1, 3), axis=0, return_counts=True)
    cells = [tuple(c) for c, n in zip(colours, counts, strict=True) if n > 300]
    assert len(set(cells) - {(255, 255, 255)}) >= 4  # one colour per value (5 channels)
    assert layers["conv2"].csv is None  # real maps stay a grid
    # the channel cap speaks of grids only; the 5 values are all drawn
    assert not any("last_pool" in n for n in result.notes)
    assert any("conv2 has 5 channels" in n for n in result.notes)


def test_augmentation_layers_of_an_older_model_are_left_out(rgba_image, tmp_path):
    """A model saved with its augmentation inside (by hand, or by an earlier cnncli) shows
    no identity maps for those layers by default, and says so; --layers all still has them."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 4))
    x = keras.layers.RandomFlip("horizontal", name="aug_flip")(inp)
    x = keras.layers.RandomRotation(0.1, name="aug_rotation")(x)
    x = keras.layers.Conv2D(3, 3, name="conv")(x)
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="head")(x))
    result = activations(model, [rgba_image], tmp_path / "out")
    names = [lo.name for lo in result.images[0].layers]
    assert names == ["conv", "flat", "head"]
    assert any(
        n.startswith("augmentation layers left out") and "aug_flip, aug_rotation" in n
        for n in result.notes
    )
    everything = activations(model, [rgba_image], tmp_path / "all", layers="all")
    assert "aug_flip" in [lo.name for lo in everything.images[0].layers]
