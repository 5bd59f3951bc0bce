"""cnncli.training.precision: which device trains, --precision (fp32, bf16, auto), the steps
per execution, and a bf16 run end to end (float32 models saved for use, the precision in
run.json and the model metadata, one model serialisation per epoch, exact resume)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnncli.errors import UsageError
from cnncli.training.precision import (
    Device,
    choose_precision,
    choose_steps_per_execution,
    device_from,
)

XEON = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n"  # noqa: E501
ZEN4 = "model name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
OLD = "model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma\n"


def test_the_device_is_read_from_cpu_flags_and_gpu_capability():
    assert device_from(XEON) == Device(
        "cpu", "Intel(R) Xeon(R) Platinum 8488C", bf16=True, evidence="AMX-BF16"
    )
    assert device_from(ZEN4).bf16 is False and device_from(ZEN4).evidence == (
        "AVX512-BF16 without AMX"
    )
    assert device_from(OLD).describe() == "AMD EPYC (CPU)"
    h200 = device_from(OLD, [("NVIDIA H200", (9, 0))])
    assert (h200.kind, h200.bf16, h200.describe()) == ("gpu", True, "NVIDIA H200 (GPU)")
    t4 = device_from(OLD, [("Tesla T4", (7, 5))])
    assert (t4.bf16, t4.fp16) == (False, True)


def test_auto_picks_bf16_only_where_it_is_native_and_the_model_gains():
    amx, plain = device_from(XEON), device_from(OLD)
    assert choose_precision("auto", amx, 5.6).describe() == "precision bf16: this CPU has AMX-BF16"
    small = choose_precision("auto", amx, 0.01)
    assert small.name == "fp32" and "too small to gain" in small.reason
    assert choose_precision("auto", plain, 500).describe() == (
        "precision fp32: this CPU has no AMX-BF16: bf16 would be emulated"
    )
    asked = choose_precision("bf16", plain, 5.6)
    assert (asked.name, asked.policy) == ("bf16", "mixed_bfloat16")
    assert "emulated and likely slower" in asked.reason
    assert choose_precision("fp32", amx, 500).name == "fp32"
    gpu = choose_precision("auto", device_from(OLD, [("Tesla T4", (7, 5))]), 0.01)
    assert (gpu.name, gpu.policy) == ("fp16", "mixed_float16")


def test_steps_per_execution_divide_an_epoch():
    assert choose_steps_per_execution(24, 1e6) == (12, "short steps")  # at most 16
    assert choose_steps_per_execution(23, 1e6)[0] == 1  # a prime: Keras would add steps
    assert choose_steps_per_execution(24, 1e12) == (1, "long steps")
    n, why = choose_steps_per_execution(23, 1e6, asked=8)
    assert n == 1 and "largest divisor of the 23 steps" in why
    assert choose_steps_per_execution(24, 1e12, asked=8) == (8, "as asked")
    assert choose_steps_per_execution(24, 1e6, run_steps=48) == (1, "a short run (48 steps)")
    assert choose_steps_per_execution(45, 1e6, run_steps=225) == (15, "short steps")


def test_bad_precision_options_are_refused(cli, tmp_path):
    from cnncli.training.options import TrainOptions

    with pytest.raises(UsageError, match="unknown --precision 'fp16'"):
        TrainOptions(precision="fp16").check()
    with pytest.raises(UsageError, match="--steps-per-execution must be at least 1"):
        TrainOptions(steps_per_execution=0).check()
    r = cli("train", tmp_path, "--arch", "tiny", "--precision", "fp8")
    assert r.exit_code == 2 and "unknown --precision 'fp8'" in r.stderr


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory, tiny):
    """`cnncli train --precision bf16` for 1 epoch, then `--resume --epochs 2`, counting
    Keras model serialisations."""
    import keras
    from typer.testing import CliRunner

    from cnncli.cli.main import app

    root = tmp_path_factory.mktemp("bf16")
    ds = tiny.build(tiny.make_images(root / "images", ["a", "b"], per_class=8), root / "ds")
    saves = []
    original = keras.Model.save
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            keras.Model,
            "save",
            lambda self, path, *a, **k: (saves.append(str(path)), original(self, path, *a, **k))[1],
        )
        args = [
            "train",
            ds,
            "--arch",
            "tiny",
            "-o",
            root / "run",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--precision",
            "bf16",
            "--save-every-epoch",
        ]
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.stderr
        again = CliRunner().invoke(app, ["train", "--resume", str(root / "run"), "--epochs", "2"])
        assert again.exit_code == 0, again.stderr
    return ds, root / "run", r, saves


@pytest.mark.slow
def test_a_bf16_run_says_so_and_saves_float32_models(bf16_run):
    import keras

    from cnncli.inference.model import open_model, probabilities
    from cnncli.models.io import read_config, read_metadata
    from cnncli.training.callbacks import load_variables

    ds, run, result, saves = bf16_run
    assert "device: " in result.stderr and "(CPU)" in result.stderr
    assert "precision bf16: as asked (--precision bf16)" in result.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["precision"]["name"] == "bf16" and meta["precision"]["policy"] == "mixed_bfloat16"
    assert meta["device"]["kind"] == "cpu" and meta["device"]["name"]
    assert read_metadata(run / "last.keras")["training_precision"] == "bf16"
    # the training model computes in bf16 with a float32 head; the saved models in float32
    assert "mixed_bfloat16" in json.dumps(read_config(run / "state" / "model.keras"))
    for name in ("last.keras", "best.keras", "checkpoints/save-01-"):
        path = next(run.glob(name + "*")) if name.endswith("-") else run / name
        assert "mixed_" not in json.dumps(read_config(path)), name
    # one model serialisation per epoch (the model for use), plus the training model once
    names = [p.rsplit("/", 1)[-1] for p in saves]
    assert names == ["model.keras", "last-epoch-0001.keras", "last-epoch-0002.keras"], names
    assert (run / "best.keras").stat().st_ino == (run / "last.keras").stat().st_ino  # a link

    info = open_model(run / "last.keras")
    x = np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    assert info.model(x).dtype == "float32"
    training = keras.models.load_model(run / "state" / "model.keras")
    load_variables(training, run / "state" / "epoch-0002.npz")
    assert training(x).dtype == "float32"  # the head and the loss are float32
    np.testing.assert_allclose(probabilities(info, x)[:, 1], training(x)[:, 0], atol=0.02)
    # the resumed run went on in bf16, and its last.keras holds the training model's weights
    assert meta["resumes"][0]["at_epoch"] == 1 and meta["status"] == "finished"
    for a, b in zip(info.model.get_weights(), training.get_weights(), strict=True):
        assert np.array_equal(a, b)
