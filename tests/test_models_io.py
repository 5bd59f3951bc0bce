"""Model files: round trips with metadata, the tf.keras 2.x fixture, refusing code, and one
clear line for files that are not models."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnncli.errors import InputError, ModelError
from cnncli.images import ImageSpec
from cnncli.models.io import load_model, read_metadata, save_model
from cnncli.models.presets import build_architecture

FIXTURES = Path(__file__).parent / "fixtures"
META = {
    "class_names": ["벽돌", "대리석", "유리"],
    "image": {"height": 24, "width": 24, "channels": 4, "color": "rgba", "fit": "stretch"},
    "pixel_scale": 1.0,
    "dataset_sha256": "abc",
}


@pytest.fixture(scope="module")
def tiny():
    return build_architecture("tiny", input_shape=(24, 24, 4), num_classes=3)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_round_trip_keeps_weights_and_metadata(tmp_path, tiny, ext):
    path = save_model(tiny, tmp_path / f"m{ext}", META)
    assert path.exists() and not list(tmp_path.glob(".*"))  # atomic: no temporary left
    stored = read_metadata(path)
    assert stored["class_names"] == META["class_names"]
    assert stored["format_version"] == 1 and stored["cnncli_version"]
    if ext == ".keras":
        assert "cnncli.json" in zipfile.ZipFile(path).namelist()
    else:
        import h5py

        with h5py.File(path, "r") as f:
            assert json.loads(f.attrs["cnncli_metadata"])["dataset_sha256"] == "abc"
    loaded = load_model(path)
    m = loaded.metadata
    assert m.from_cnncli and m.notes == []
    assert m.class_names == ["벽돌", "대리석", "유리"]
    assert m.image == ImageSpec(24, 24, "rgba")
    assert m.pixel_scale == 1.0 and m.raw["dataset_sha256"] == "abc"
    assert m.get("pixel_scale") == 1.0 and m.get("dataset_sha256") == "abc"  # dict-style
    assert loaded.path == path
    x = np.random.default_rng(0).random((2, 24, 24, 4), dtype=np.float32)
    np.testing.assert_allclose(
        loaded.model.predict(x, verbose=0), tiny.predict(x, verbose=0), atol=1e-6
    )


def test_tf_keras_2_h5_fixture_loads_and_predicts_as_tf_keras_did():
    loaded = load_model(FIXTURES / "tf2_facade_small.h5")
    ref = np.load(FIXTURES / "tf2_facade_small.npz")
    np.testing.assert_allclose(loaded.model.predict(ref["x"], verbose=0), ref["y"], atol=1e-5)
    m = loaded.metadata
    assert not m.from_cnncli
    assert m.class_names == ["0", "1"]  # one sigmoid unit
    assert m.image == ImageSpec(50, 50, "rgba")
    assert m.pixel_scale == pytest.approx(1 / 255)
    assert len(m.notes) == 3 and any("1/255" in n for n in m.notes)
    assert "LeakyReLU" in [type(x).__name__ for x in loaded.model.layers]


def test_external_softmax_model_gets_index_class_names(tmp_path):
    import keras

    model = build_architecture("tiny", input_shape=(16, 16, 1), num_classes=4)
    model.save(tmp_path / "plain.keras")  # saved by Keras, not cnncli
    assert read_metadata(tmp_path / "plain.keras") is None
    m = load_model(tmp_path / "plain.keras").metadata
    assert m.class_names == ["0", "1", "2", "3"]
    assert m.image == ImageSpec(16, 16, "grayscale")
    assert isinstance(keras.Model, type)


@pytest.mark.parametrize(
    "name,what",
    [("tf2_lambda.h5", "Lambda layer 'lambda'"), ("tf2_custom.h5", "custom layer class 'Scale'")],
)
def test_tf2_models_that_would_run_code_are_refused(name, what):
    with pytest.raises(ModelError) as err:
        load_model(FIXTURES / name)
    text = str(err.value)
    assert text.startswith(
        f"refusing to load {FIXTURES / name}: it contains a {what}".replace("a custom", "custom")
    )
    assert "--unsafe" in text


def test_unsafe_accepts_the_lambda_model_and_still_cannot_guess_a_custom_class():
    loaded = load_model(FIXTURES / "tf2_lambda.h5", unsafe=True)
    x = np.ones((1, 8, 8, 1), dtype=np.float32)
    assert loaded.model.predict(x, verbose=0).shape == (1, 2)
    with pytest.raises(ModelError, match="custom object Keras does not know"):
        load_model(FIXTURES / "tf2_custom.h5", unsafe=True)


def test_keras3_lambda_and_custom_objects_are_refused_before_deserialising(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="cnncli_test")
    class Double(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Dense(2)(Double()(inp))).save(tmp_path / "custom.keras")
    keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t + 1)(inp))).save(
        tmp_path / "lambda.keras"
    )
    with pytest.raises(ModelError, match="custom object 'cnncli_test>Double'.*--unsafe"):
        load_model(tmp_path / "custom.keras")
    with pytest.raises(ModelError, match="Lambda layer"):
        load_model(tmp_path / "lambda.keras")
    # registered in this process, so with unsafe=True it loads
    assert load_model(tmp_path / "custom.keras", unsafe=True).model.count_params() == 10
    assert load_model(tmp_path / "lambda.keras", unsafe=True).model.count_params() == 10


def _truncate(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def test_files_that_are_not_models(tmp_path, tiny):
    (tmp_path / "notes.h5").write_text("hello", encoding="utf-8")
    with pytest.raises(ModelError, match=r"notes.h5 is not a model file \(not an HDF5 file\)"):
        load_model(tmp_path / "notes.h5")
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.keras")
    good_keras = save_model(tiny, tmp_path / "good.keras")
    good_h5 = save_model(tiny, tmp_path / "good.h5")
    (tmp_path / "model.txt").write_bytes(good_keras.read_bytes())
    with pytest.raises(InputError, match="unknown model file extension '.txt'"):
        load_model(tmp_path / "model.txt")
    for bad in (
        _truncate(good_keras, tmp_path / "cut.keras"),
        _truncate(good_h5, tmp_path / "cut.h5"),
    ):
        with pytest.raises(ModelError, match="is truncated or damaged"):
            load_model(bad)
    tiny.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(InputError, match="a weights-only file is not supported"):
        load_model(tmp_path / "w.weights.h5")
    (tmp_path / "empty.keras").write_bytes(b"")
    with pytest.raises(ModelError, match="is empty"):
        load_model(tmp_path / "empty.keras")
    # a .keras archive misnamed .h5 still loads (the content decides)
    misnamed = tmp_path / "misnamed.h5"
    misnamed.write_bytes(good_keras.read_bytes())
    assert load_model(misnamed).model.count_params() == tiny.count_params()


def test_read_metadata_does_not_import_tensorflow():
    code = (
        "import sys; from cnncli.models.io import read_metadata; "
        f"print(read_metadata({str(FIXTURES / 'tf2_facade_small.h5')!r})); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False", "False"]


def test_archives_and_hdf5_files_that_hold_no_model(tmp_path):
    import h5py

    with zipfile.ZipFile(tmp_path / "photos.keras", "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(ModelError, match="has no config.json: not a Keras model archive"):
        load_model(tmp_path / "photos.keras")
    with h5py.File(tmp_path / "weights.h5", "w") as f:  # tf.keras 2.x save_weights('w.h5')
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense")
    with pytest.raises(ModelError, match="holds weights only, not a whole model"):
        load_model(tmp_path / "weights.h5")
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ModelError, match="holds no model architecture, not a whole model"):
        load_model(tmp_path / "data.h5")


def test_unsafe_flag_through_the_cli(cli):
    refused = cli("summary", FIXTURES / "tf2_lambda.h5")
    assert refused.exit_code == 1 and "--unsafe" in refused.stderr
    allowed = cli("summary", FIXTURES / "tf2_lambda.h5", "--unsafe", "--json")
    assert allowed.exit_code == 0, allowed.stderr
    data = json.loads(allowed.stdout)
    assert [r["type"] for r in data["layers"]] == ["InputLayer", "Lambda", "Flatten", "Dense"]
    assert data["total_params"] == 130


# --- hostile files: bounded reads, checked metadata, one line each (issue 13) ----------------
def _archive(path: Path, members: dict) -> Path:
    """A .keras-shaped zip: {member: bytes or a (chunk, times) pair streamed compressed}."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if isinstance(data, tuple):
                chunk, times = data
                with z.open(name, "w") as f:
                    for _ in range(times):
                        f.write(chunk)
            else:
                z.writestr(name, data)
    return path


def _peak_mib(fn) -> tuple[float, float]:
    """(peak MiB Python allocated, seconds) while fn() runs (and raises, as expected here)."""
    import time
    import tracemalloc

    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
    except ModelError:
        pass
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, seconds


def test_zip_bomb_members_are_refused_unread(tmp_path, cli):
    from cnncli.models.io import read_config

    mib = b" " * 2**20
    bomb = _archive(tmp_path / "bomb.keras", {"config.json": (mib, 65)})  # 65 MiB in ~65 KB
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ModelError) as err:
        read_config(bomb)
    assert str(err.value).startswith(
        f"{bomb}: its config.json unpacks to 65.0 MiB, over the 64 MiB that cnncli reads"
    )
    peak, seconds = _peak_mib(lambda: read_config(bomb))
    assert peak < 4 and seconds < 2  # was: the whole member read (2.8 GB, 8-12 s for 1 GiB)
    meta = _archive(tmp_path / "meta.keras", {"config.json": b"{}", "cnncli.json": (mib, 2)})
    with pytest.raises(ModelError, match=r"its cnncli.json unpacks to 2.0 MiB, over the 1 MiB"):
        read_metadata(meta)
    result = cli("summary", bomb)  # the command: exit 2, one line, nothing from Keras
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "over the 64 MiB that cnncli reads" in result.stderr


def test_a_zip_directory_that_lies_about_a_size_reads_no_more(tmp_path):
    path = _archive(tmp_path / "liar.keras", {"config.json": (b" " * 2**20, 8)})
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the member's central directory entry
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")  # "100 bytes unpacked"
    path.write_bytes(bytes(data))
    from cnncli.models.io import read_config

    peak, _ = _peak_mib(lambda: read_config(path))
    assert peak < 4
    with pytest.raises(ModelError, match="is truncated or damaged"):
        read_config(path)


@pytest.mark.parametrize(
    "stored,message",
    [
        ({"class_names": 5}, "has class_names 5, not a list of names"),
        (
            {"image": {"height": 8, "color": "rgb"}},
            "image conversion that cannot be used: the image spec has no width",
        ),
        ({"pixel_scale": "abc"}, "has pixel_scale 'abc', not a positive number"),
        ({"image": {"height": 8, "width": "x", "color": "rgb"}}, "the image width 'x' is not"),
        (
            {"image": {"height": 60000, "width": 60000, "color": "rgb"}},
            "image size 60000x60000 is over Pillow's decompression-bomb limit of 89,478,485",
        ),
        ({"format_version": "1"}, "format_version must be a whole number, got '1'"),
    ],
)
def test_stored_metadata_of_the_wrong_type_is_one_line(tmp_path, stored, message):
    path = _archive(tmp_path / "m.keras", {"config.json": b"{}", "cnncli.json": json.dumps(stored)})
    with pytest.raises(InputError) as err:  # exit 2, like any input that is not what it should be
        load_model(path)
    assert message in str(err.value) and str(err.value).startswith(f"{path}: ")


def test_text_that_is_not_utf8_and_a_damaged_hdf5_heap(tmp_path, tiny):
    from cnncli.models.io import read_config

    latin = _archive(tmp_path / "latin.keras", {"config.json": b'{"name": "caf\xe9"}'})
    with pytest.raises(InputError, match=r"damaged \(its model config is not UTF-8 text"):
        read_config(latin)
    meta = _archive(tmp_path / "meta.keras", {"config.json": b"{}", "cnncli.json": b"\xff{}"})
    with pytest.raises(InputError, match="the stored cnncli metadata is not valid JSON"):
        read_metadata(meta)
    good = save_model(tiny, tmp_path / "good.h5", META)
    data = bytearray(good.read_bytes())
    heap = data.index(b"GCOL")  # the global heap that holds the string attributes
    data[heap : heap + 4] = b"XXXX"
    (tmp_path / "heap.h5").write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        load_model(tmp_path / "heap.h5")
    assert str(err.value).startswith(
        f"{tmp_path / 'heap.h5'} is truncated or damaged (its attribute 'model_config' cannot"
    )


@pytest.fixture(scope="module")
def any_size_model():
    """A model that takes images of any size (global pooling), as a hostile file can hold."""
    import keras

    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def test_a_stored_image_size_is_held_to_pillows_limit_and_the_models_input(
    tmp_path, any_size_model, cli, write_image
):
    huge = {
        "class_names": ["a", "b"],
        "pixel_scale": 1.0,
        "image": {"height": 60000, "width": 60000, "color": "rgb"},
    }
    path = save_model(any_size_model, tmp_path / "huge.keras", huge)
    assert path.stat().st_size < 100_000
    image = write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    result = cli("predict", path, image)  # was: 8 GB+ allocated before anything refused it
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "image size 60000x60000 is over Pillow's decompression-bomb limit" in result.stderr
    fixed = build_architecture("tiny", input_shape=(8, 8, 3), num_classes=2)
    other = save_model(
        fixed,
        tmp_path / "other.keras",
        {**huge, "image": {"height": 16, "width": 16, "color": "rgb"}},
    )
    with pytest.raises(InputError) as err:
        load_model(other)
    assert str(err.value) == (
        f"{other}: the image size stored with it, 16x16x3, does not fit the model's input "
        "8x8x3: save the model again with cnncli, or check which model file this is"
    )
    ok = save_model(
        any_size_model,
        tmp_path / "ok.keras",
        {**huge, "image": {"height": 16, "width": 12, "color": "rgb"}},
    )
    assert load_model(ok).metadata.image == ImageSpec(16, 12, "rgb")  # any size fits


def test_saving_builds_keras_reference_objects_once_not_per_save(tmp_path, tiny, monkeypatch):
    """Keras 3 rebuilds reference Layer/Optimizer/Metric objects at every save (its cache
    is written and read under two different keys); cnncli remembers them: the part of an
    epoch's save that was pure overhead. The files still load with the same weights."""
    from keras.src.saving import saving_lib

    calls: dict[str, int] = {}
    original = saving_lib.get_attr_skipset

    def counting(obj_type):
        calls[obj_type] = calls.get(obj_type, 0) + 1
        return original(obj_type)

    monkeypatch.setattr(saving_lib, "get_attr_skipset", counting)
    tiny.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for i in range(3):
        save_model(tiny, tmp_path / f"m{i}.keras", META)
    loaded = load_model(tmp_path / "m2.keras", compile=True).model
    assert calls and set(calls.values()) == {1}, calls  # once per type, not once per save
    assert {"Sequential", "Optimizer"} <= set(calls) or {"Functional", "Optimizer"} <= set(calls)
    for a, b in zip(tiny.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
