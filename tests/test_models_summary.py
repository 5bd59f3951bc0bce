"""`summarize` and `cnncli summary`: Keras' totals, concrete shapes, MACs checked by hand,
the JSON schema, and one-line errors with their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnncli.models.presets import build_architecture
from cnncli.models.summary import summarize

FIXTURES = Path(__file__).parent / "fixtures"
LAYER_KEYS = {"name", "type", "output_shape", "params", "trainable", "macs"}


def test_macs_of_conv2d_and_dense_by_hand():
    s = summarize(build_architecture("mnist"))
    rows = {r["type"]: r for r in s["layers"]}  # names depend on Keras' global counters
    conv = s["layers"][1]
    assert conv["type"] == "Conv2D" and conv["output_shape"] == [None, 26, 26, 32]
    assert conv["macs"] == 26 * 26 * 32 * (3 * 3 * 1)  # H_out*W_out*C_out*(kh*kw*C_in)
    conv2 = s["layers"][3]
    assert conv2["output_shape"] == [None, 11, 11, 64]
    assert conv2["macs"] == 11 * 11 * 64 * (3 * 3 * 32)
    dense = [r for r in s["layers"] if r["type"] == "Dense"]
    assert [d["macs"] for d in dense] == [576 * 64, 64 * 10]
    assert all(r["macs"] == 0 for r in s["layers"] if r["type"] in ("MaxPooling2D", "Flatten"))
    assert s["macs"] == sum(r["macs"] for r in s["layers"])
    assert rows["Flatten"]["activation_bytes"] == 576 * 4


def test_totals_are_keras_numbers_with_non_trainable_weights():
    import keras

    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(4, 3, groups=1),
            keras.layers.BatchNormalization(),
            keras.layers.DepthwiseConv2D(3),
            keras.layers.SeparableConv2D(6, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.layers[-1].trainable = False
    s = summarize(model)
    assert s["total_params"] == model.count_params()
    assert s["trainable_params"] == sum(int(w.numpy().size) for w in model.trainable_weights)
    assert s["non_trainable_params"] == 8 + 14  # BN moving mean/var + the frozen Dense
    assert s["trainable_params"] + s["non_trainable_params"] == s["total_params"]
    rows = s["layers"]
    assert rows[0]["type"] == "InputLayer" and rows[0]["output_shape"] == [None, 12, 12, 3]
    assert rows[3]["macs"] == 8 * 8 * 4 * 9  # depthwise: H*W*C_in*mult*k*k
    assert rows[4]["macs"] == 6 * 6 * 4 * 9 + 6 * 6 * 4 * 6  # separable: depthwise + pointwise
    assert rows[-1]["trainable"] is False


def test_shared_and_nested_layers_have_concrete_shapes_and_expand():
    import keras

    inner = build_architecture("tiny", input_shape=(16, 16, 3))
    shared = keras.layers.Dense(4)
    inp = keras.Input((16, 16, 3))
    x = inner(inp)
    out = keras.layers.Add()([shared(x), shared(x)])
    model = keras.Model(inp, out)
    flat = summarize(model)
    assert all(r["output_shape"] and None not in r["output_shape"][1:] for r in flat["layers"])
    assert [r["type"] for r in flat["layers"]] == ["InputLayer", "Sequential", "Dense", "Add"]
    assert flat["total_params"] == model.count_params() == 417 + 8
    deep = summarize(model, expand=True)
    inner_rows = [r for r in deep["layers"] if r["depth"] == 1]
    assert [r["type"] for r in inner_rows] == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "GlobalAveragePooling2D",
        "Dense",
    ]
    assert deep["macs"] == flat["macs"] == sum(r["macs"] for r in inner_rows) + 1 * 4
    assert deep["total_params"] == flat["total_params"]


def test_json_schema_through_the_cli(cli):
    result = cli("summary", "--arch", "mnist", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {
        "name",
        "input_shape",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "macs",
        "layers",
    }
    assert data["total_params"] == 93_322 and data["non_trainable_params"] == 0
    assert data["input_shape"] == [None, 28, 28, 1]
    assert all(set(r) >= LAYER_KEYS | {"activation_bytes"} for r in data["layers"])
    assert data["layers"][0]["type"] == "InputLayer"
    assert data["activation_bytes"] == sum(r["activation_bytes"] for r in data["layers"])


def test_table_shows_keras_numbers(cli):
    result = cli("summary", "--arch", "catsdogs")
    assert result.exit_code == 0, result.stderr
    assert "Total params: 3,453,121" in result.stdout
    assert "Trainable params: 3,453,121" in result.stdout
    assert "Non-trainable params: 0" in result.stdout
    assert "(None, 7, 7, 128)" in result.stdout and "multiple" not in result.stdout


def test_input_classes_and_export(cli, tmp_path):
    out = tmp_path / "spec.yaml"
    result = cli(
        "summary",
        "--arch",
        "facade",
        "--input",
        "500x500x3",
        "--classes",
        "3",
        "--export",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert f"wrote the spec of 'facade' to {out}" in result.stderr
    data = json.loads(result.stdout)
    assert data["layers"][-1]["output_shape"] == [None, 3]
    again = cli("summary", "--spec", out, "--json")
    assert json.loads(again.stdout)["total_params"] == data["total_params"]
    # a spec re-exported with other classes and input carries them
    out2 = tmp_path / "spec2.json"
    third = cli(
        "summary", "--spec", out, "--classes", "2", "--input", "600x600x3", "--export", out2
    )
    assert third.exit_code == 0, third.stderr
    spec2 = json.loads(out2.read_text(encoding="utf-8"))
    assert spec2["input_shape"] == [600, 600, 3]
    assert spec2["layers"][-1] == {"Dense": {"units": 1, "activation": "sigmoid"}}
    assert f"wrote the spec to {out2}" in third.stderr


def test_list_arch(cli):
    result = cli("summary", "--list-arch", "--json")
    assert result.exit_code == 0
    archs = {a["name"]: a for a in json.loads(result.stdout)}
    assert archs["mnist"]["params"] == 93_322 and archs["facade"]["input_shape"] == [500, 500, 4]
    table = cli("summary", "--list-arch")
    assert "3,156,098" in table.stdout and "lenet5" in table.stdout


def test_model_file_summary_states_defaults(cli):
    result = cli("summary", FIXTURES / "tf2_facade_small.h5", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total_params"] > 0
    assert "not saved by cnncli, using defaults: pixel scale: 1/255" in result.stderr


@pytest.mark.parametrize(
    "args,code,message",
    [
        (
            ["--arch", "resnet"],
            2,
            "error: unknown architecture 'resnet': choose one of facade, mnist",
        ),
        (
            ["--arch", "mnist", "--spec", "x.yaml"],
            2,
            "error: give exactly one of MODEL_FILE, --arch NAME or --spec FILE",
        ),
        (["--arch", "mnist", "--input", "28x28"], 2, "error: --input must be HxWxC"),
        (["--arch", "facade", "--input", "64x64x4"], 1, "the smallest input it takes is 500x500x4"),
        ([str(FIXTURES / "tf2_lambda.h5")], 1, "it contains a Lambda layer 'lambda'"),
        ([str(FIXTURES / "make_tf2_models.py")], 2, "unknown model file extension '.py'"),
    ],
)
def test_errors_are_one_line_with_exit_codes(cli, args, code, message):
    result = cli("summary", *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_not_a_model_and_truncated_through_the_cli(cli, tmp_path):
    (tmp_path / "x.keras").write_text("not a zip", encoding="utf-8")
    result = cli("summary", tmp_path / "x.keras")
    assert result.exit_code == 2  # a named input that is not a model: a usage error
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'x.keras'} is not a model file (not a .keras zip archive): "
        "give a Keras model file"
    )
    data = (FIXTURES / "tf2_facade_small.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:5000])
    result = cli("summary", tmp_path / "cut.h5")
    assert result.exit_code == 2
    assert "is truncated or damaged" in result.stderr and len(result.stderr.splitlines()) == 1


def test_summary_help_and_list_arch_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cnncli.cli.main import app\n"
        "r = CliRunner().invoke(app, ['summary', '--help'])\n"
        "assert r.exit_code == 0 and '--list-arch' in r.stdout, r.stdout\n"
        "r = CliRunner().invoke(app, ['summary', '--list-arch'])\n"
        "assert r.exit_code == 0 and '93,322' in r.stdout\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_a_model_without_input_is_one_clear_error():
    import keras

    from cnncli.errors import ModelError

    with pytest.raises(ModelError, match="has no input shape yet"):
        summarize(keras.Sequential([keras.layers.Dense(2)]))
