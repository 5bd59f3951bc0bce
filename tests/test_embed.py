"""cnncli embed: vectors equal the Keras sub-model's output, default layer, dataset folders,
class folders, seeded clustering (reproducible), cluster sheets and the PCA plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnncli.inference.embed import embed

CLASSES = ("벽돌", "대리석")  # the course's façade classes: Korean names in sheets and plots


def _model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 12, 4))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(2, 3, activation="tanh", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # 3 x 3 x 2 = 18 values
    out = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "facade_like.keras"
    _model().save(path)
    return path


@pytest.fixture
def class_dir(tmp_path, write_image):
    rng = np.random.default_rng(5)
    root = tmp_path / "imgs"
    for ci, name in enumerate(CLASSES):
        for i in range(6):
            arr = (rng.random((12, 12, 4)) * 120 + ci * 120).astype(np.uint8)
            arr[:, :, 3] = 255
            write_image(root / name / f"{name}_{i}.png", arr)
    return root


def _pixels(files):
    from cnncli.images import ImageSpec, load_image

    spec = ImageSpec(12, 12, "rgba")
    return np.stack([load_image(f, spec) for f in files]).astype(np.float32) / 255.0


def test_vectors_equal_submodel_output(model_path, class_dir, tmp_path):
    import keras

    out = tmp_path / "vectors.csv"
    result = embed(model_path, [class_dir], out_csv=out)
    assert result.layer == "flatten" and result.dims == 18 and result.count == 12
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["file", "class", "predicted", "probability", "split"]
    assert sorted(set(table["class"])) == sorted(CLASSES)
    model = keras.models.load_model(model_path, compile=False)
    sub = keras.Model(model.inputs, model.get_layer("flatten").output)
    expected = np.asarray(sub(_pixels(table["file"])))
    vec_cols = [f"v{i}" for i in range(18)]
    np.testing.assert_allclose(table[vec_cols].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-5, atol=1e-6)


def test_layer_choice_by_name_and_default_without_flatten(model_path, class_dir, tmp_path):
    import keras

    r = embed(model_path, [class_dir], layer="pool", out_csv=tmp_path / "p.csv")
    assert r.dims == 5 * 5 * 3
    # no Flatten: the layer before the head
    keras.utils.set_random_seed(1)
    inp = keras.Input((12, 12, 4))
    x = keras.layers.Conv2D(3, 3, name="c")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    r2 = embed(keras.Model(inp, out), [class_dir], out_csv=tmp_path / "g.csv")
    assert r2.layer == "gap" and r2.dims == 3


def test_clusters_reproducible_sheets_and_projection(model_path, class_dir, tmp_path):
    a = embed(model_path, [class_dir], out_csv=tmp_path / "a.csv", clusters=2, seed=7)
    b = embed(model_path, [class_dir], out_csv=tmp_path / "b.csv", clusters=2, seed=7)
    np.testing.assert_array_equal(a.clusters, b.clusters)
    from sklearn.cluster import KMeans

    ref = KMeans(n_clusters=2, random_state=7, n_init=10).fit_predict(a.vectors.astype(np.float64))
    np.testing.assert_array_equal(a.clusters, ref)
    assert sorted(a.cluster_sizes) == sorted(np.bincount(ref).tolist())
    assert [p.name for p in a.cluster_sheets] == ["cluster_00.png", "cluster_01.png"]
    assert all(p.is_file() for p in a.cluster_sheets) and a.projection.is_file()
    table = pd.read_csv(tmp_path / "a.csv")
    assert table["cluster"].tolist() == a.clusters.tolist()


def test_dataset_folder_input(model_path, class_dir, tmp_path):
    from cnncli.datasets.build import build_dataset

    ds = tmp_path / "ds"
    build_dataset(class_dir, ds, val=0.34, seed=0)
    r = embed(model_path, [ds], out_csv=tmp_path / "v.csv")
    table = pd.read_csv(tmp_path / "v.csv")
    assert r.count == 12 and set(table["split"]) == {"train", "val"}
    assert sorted(set(table["class"])) == sorted(CLASSES)
    files = [class_dir / f for f in table["file"]]  # paths relative to the images folder
    direct = embed(model_path, files, out_csv=tmp_path / "d.csv")
    np.testing.assert_allclose(r.vectors, direct.vectors, rtol=1e-6, atol=1e-7)


def test_cli_embed(cli, model_path, class_dir, tmp_path):
    out = tmp_path / "vectors.csv"
    result = cli("embed", model_path, class_dir, "-o", out, "--clusters", "2", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "vectors_clusters" / "projection.png").is_file()
    assert "12 x 18 from flatten" in result.stdout
    again = cli("embed", model_path, class_dir, "-o", out)
    assert again.exit_code == 2 and "already exists" in again.stderr
    too_many = cli("embed", model_path, class_dir, "-o", tmp_path / "k.csv", "--clusters", "50")
    assert too_many.exit_code == 2
    assert "--clusters 50 is more than the 12 images" in too_many.stderr
    assert not (tmp_path / "k.csv").exists()


@pytest.mark.slow
def test_ten_classes_ten_clusters_no_warning_on_the_terminal(model_path, tmp_path, write_image):
    """`embed --clusters 10` on ten classes, run as a user runs it: the terminal shows no
    library warning (matplotlib's "Tight layout not applied" did); the legends themselves
    are checked in tests/test_plots.py."""
    import os
    import re
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    images = tmp_path / "ten"
    for c in range(10):
        for i in range(8):  # 80 images: enough (class, cluster) pairs to break the old plot
            arr = (rng.random((12, 12, 4)) * 255).astype(np.uint8)
            write_image(images / f"class_{c}" / f"{c}_{i}.png", arr)
    out = tmp_path / "v.csv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnncli",
            "embed",
            str(model_path),
            str(images),
            "-o",
            str(out),
            "--clusters",
            "10",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert not re.search(r"Warning|warn\(", run.stderr), run.stderr
    assert (tmp_path / "v_clusters" / "projection.png").is_file()
    assert len(list((tmp_path / "v_clusters").glob("cluster_*.png"))) == 10
