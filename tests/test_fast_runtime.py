"""predict and evaluate on a .keras model (or a run folder) answer through its checked ONNX
copy, made once and kept in .cnncli-cache beside it, keyed by the model's sha256; later calls
import no TensorFlow. A changed model, a tampered copy, a failed check, a read-only folder,
a copy being made by another process and missing packages each do what docs/train.md says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from cnncli.export.cache import PREFERRED  # noqa: E402  (what --runtime auto makes)

SUFFIX = {"litert": ".tflite", "onnx": ".onnx"}[PREFERRED]
SHOWN = {"litert": "LiteRT", "onnx": "onnxruntime"}[PREFERRED]


@pytest.fixture(scope="module", autouse=True)
def auto_runtime(tmp_path_factory):
    """--runtime's default as a user has it (conftest sets keras for the other tests), and
    the user cache folder in tmp."""
    saved = {k: os.environ.get(k) for k in ("CNNCLI_RUNTIME", "XDG_CACHE_HOME")}
    os.environ["CNNCLI_RUNTIME"] = "auto"
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny, auto_runtime):
    """A tiny run folder (run.json, best.keras) and images; predicted once through Keras and
    once with --runtime auto (which makes the copy)."""
    from typer.testing import CliRunner

    from cnncli.cli.main import app

    root = tmp_path_factory.mktemp("fast")
    tiny.make_images(root / "images", tiny.SHAPES, per_class=4)
    run = root / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    tiny.save_with_metadata(tiny.model(3), run / "best.keras", tiny.SHAPES, 1.0)
    keras_rows = CliRunner().invoke(
        app,
        ["predict", str(run / "best.keras"), str(root / "images"), "--json", "--runtime", "keras"],
    )
    first = CliRunner().invoke(app, ["predict", str(run), str(root / "images"), "--json"])
    return {"root": root, "run": run, "keras": keras_rows, "first": first}


def _probs(result) -> dict:
    data = json.loads(result.stdout)
    return {p["file"]: p["probability"] for p in data["predictions"]}


def _copies(run):
    return sorted(p.name for p in (run / ".cnncli-cache").glob(f"*{SUFFIX}"))


def _fresh_run(made, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(made["run"], run)
    return run


def test_first_call_makes_the_copy_and_gives_keras_answers(made):
    first, keras_r = made["first"], made["keras"]
    assert first.exit_code == 0, first.stderr
    assert f"made the fast {PREFERRED} copy of best.keras once" in first.stderr
    assert f"runtime: {SHOWN}" in first.stderr and "runtime: Keras" in keras_r.stderr
    assert json.loads(first.stdout)["runtime"] == PREFERRED
    assert json.loads(keras_r.stdout)["runtime"] == "keras"
    a, b = _probs(keras_r), _probs(first)
    assert a.keys() == b.keys() and len(a) == 12
    assert max(abs(a[k] - b[k]) for k in a) < 1e-4
    copies = _copies(made["run"])
    assert len(copies) == 1
    record = json.loads((made["run"] / ".cnncli-cache" / (copies[0] + ".record.json")).read_text())
    assert record["status"] == "ok" and record["check"]["passed"]


def test_later_calls_load_no_tensorflow(made, fresh_cli, tmp_path, tiny):
    run = _fresh_run(made, tmp_path)
    images = made["root"] / "images"
    ds = tiny.build(images, tmp_path / "ds")
    results, heavy = fresh_cli(
        [
            ["predict", run, images, "--csv"],
            ["predict", run / "best.keras", images],
            ["evaluate", run, ds, "--no-confusion"],
        ],
        tmp_path,
    )
    assert [code for code, _ in results] == [0, 0, 0], results
    assert all(f"runtime: {SHOWN}" in err and "made the fast" not in err for _, err in results)
    assert heavy == []


def test_a_changed_model_never_uses_the_stale_copy(made, cli, tiny, tmp_path):
    run = _fresh_run(made, tmp_path)
    tiny.save_with_metadata(tiny.model(3, seed=7), run / "best.keras", tiny.SHAPES, 1.0)
    images = made["root"] / "images"
    fast = cli("predict", run, images, "--json")
    keras_r = cli("predict", run, images, "--json", "--runtime", "keras")
    assert fast.exit_code == 0 and f"made the fast {PREFERRED} copy" in fast.stderr
    a, b = _probs(keras_r), _probs(fast)
    assert max(abs(a[k] - b[k]) for k in a) < 1e-4
    assert (
        max(abs(a[k] - _probs(made["keras"])[k.replace(str(run), str(made["run"]))]) for k in a)
        > 1e-3
    )  # the new model answers otherwise
    assert len(_copies(run)) == 2  # the old one is another model's, keyed by its sha256


def test_a_tampered_copy_is_refused_and_made_again(made, cli, tmp_path):
    run = _fresh_run(made, tmp_path)
    copy = run / ".cnncli-cache" / _copies(run)[0]
    copy.write_bytes(copy.read_bytes()[:-10] + b"0123456789")
    r = cli("predict", run, made["root"] / "images", "--json")
    assert r.exit_code == 0, r.stderr
    assert "was changed since it was made" in r.stderr and f"runtime: {SHOWN}" in r.stderr
    assert (
        max(
            abs(a - b)
            for a, b in zip(_probs(r).values(), _probs(made["first"]).values(), strict=True)
        )
        < 1e-4
    )


def test_a_failed_check_uses_keras_and_is_remembered(made, cli, tmp_path, monkeypatch):
    from cnncli.export import cache, check

    run = _fresh_run(made, tmp_path)
    shutil.rmtree(run / ".cnncli-cache")
    monkeypatch.setattr(check, "FLOAT_TOLERANCE", -1.0)  # nothing can agree this well
    images = made["root"] / "images"
    r = cli("predict", run, images)
    assert r.exit_code == 0 and "runtime: Keras" in r.stderr
    assert f"{PREFERRED} copy failed the agreement check" in r.stderr
    tries = []
    monkeypatch.setattr(cache, "_export", lambda *a: tries.append(a))
    again = cli("predict", run, images)
    assert again.exit_code == 0 and "remembered in" in again.stderr and tries == []
    assert _copies(run) == []


def test_a_read_only_run_folder_keeps_the_copy_in_the_user_cache(made, cli, tmp_path, monkeypatch):
    run = _fresh_run(made, tmp_path)
    shutil.rmtree(run / ".cnncli-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, m, **k: (
            real_access(p, m, **k) and not (m & os.W_OK and str(p).startswith(str(run)))
        ),
    )  # root ignores chmod
    os.chmod(run, 0o555)
    try:
        r = cli("predict", run, made["root"] / "images")
    finally:
        os.chmod(run, 0o755)
    assert r.exit_code == 0 and f"runtime: {SHOWN}" in r.stderr, r.stderr
    assert not (run / ".cnncli-cache").exists()
    assert len(list((tmp_path / "cache" / "cnncli").glob(f"best-*{SUFFIX}.record.json"))) == 1


HOLD = """
import sys, time
from cnncli.claims import claim
with claim(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_copy_being_made_elsewhere_means_keras_this_time(made, cli, tmp_path):
    from cnncli.export.cache import copy_path, record_path
    from cnncli.export.sidecar import file_sha256

    run = _fresh_run(made, tmp_path)
    shutil.rmtree(run / ".cnncli-cache")
    best = run / "best.keras"
    record = record_path(copy_path(run / ".cnncli-cache", best, file_sha256(best), PREFERRED))
    record.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(record)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = cli("predict", run, made["root"] / "images")
    finally:
        holder.kill()
        holder.wait()
    assert r.exit_code == 0, r.stderr
    assert f"another cnncli is making the fast {PREFERRED} copy" in r.stderr
    assert "runtime: Keras" in r.stderr and _copies(run) == []


@pytest.mark.slow
def test_two_predicts_at_once_leave_one_whole_copy(made, tmp_path):
    run = _fresh_run(made, tmp_path)
    shutil.rmtree(run / ".cnncli-cache")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [
        sys.executable,
        "-m",
        "cnncli",
        "predict",
        str(run),
        str(made["root"] / "images"),
        "--json",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    want = _probs(made["keras"])
    for out, _err in outs:
        got = json.loads(out)["predictions"]
        assert len(got) == len(want)
    assert len(_copies(run)) == 1
    assert (
        sorted(
            p.name
            for p in (run / ".cnncli-cache").iterdir()
            if p.name.startswith(".") and "lock" not in p.name
        )
        == []
    )  # no temporary copies left


def test_runtime_errors_are_one_line_before_any_work(made, cli, tmp_path, monkeypatch):
    from cnncli.export import cache

    images = made["root"] / "images"
    r = cli("predict", made["run"], images, "--runtime", "torch")
    assert r.exit_code == 2 and "unknown runtime 'torch'" in r.stderr
    other = "onnx" if PREFERRED == "litert" else "litert"
    copy = next((made["run"] / ".cnncli-cache").glob(f"*{SUFFIX}"))
    r = cli("predict", copy, images, "--runtime", other)
    assert r.exit_code == 2 and f"--runtime {other} cannot run it" in r.stderr
    empty = tmp_path / "emptyrun"
    empty.mkdir()
    (empty / "run.json").write_text("{}")
    r = cli("predict", empty, images)
    assert r.exit_code == 2 and "has no best.keras yet" in r.stderr
    monkeypatch.setattr(cache, "missing_packages", lambda fmt: ["onnxruntime"])
    r = cli("predict", made["run"], images, "--runtime", PREFERRED)
    assert r.exit_code == 2 and "pip install 'cnncli[export]'" in r.stderr
    r = cli("predict", made["run"], images)  # auto without the packages: Keras, silently
    assert r.exit_code == 0 and "runtime: Keras" in r.stderr and "note:" not in r.stderr


def test_a_model_from_elsewhere_gets_nothing_written_beside_it(made, cli, tmp_path):
    lone = tmp_path / "shared" / "model.keras"
    lone.parent.mkdir()
    shutil.copy(made["run"] / "best.keras", lone)
    r = cli("predict", lone, made["root"] / "images", "--json")
    assert r.exit_code == 0 and f"runtime: {SHOWN}" in r.stderr, r.stderr
    assert sorted(p.name for p in lone.parent.iterdir()) == ["model.keras"]
    cache = os.environ["XDG_CACHE_HOME"]
    assert f"{cache}/cnncli/model-" in r.stderr  # the note names where the copy went


@pytest.mark.skipif(PREFERRED == "onnx", reason="auto makes the ONNX copy already")
def test_runtime_onnx_makes_and_uses_the_onnx_copy(made, cli, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    run = _fresh_run(made, tmp_path)
    r = cli("predict", run, made["root"] / "images", "--json", "--runtime", "onnx")
    assert r.exit_code == 0 and "runtime: onnxruntime" in r.stderr, r.stderr
    assert json.loads(r.stdout)["runtime"] == "onnx"
    assert (
        max(
            abs(a - b)
            for a, b in zip(_probs(r).values(), _probs(made["keras"]).values(), strict=True)
        )
        < 1e-4
    )
    assert len(list((run / ".cnncli-cache").glob("best-*.onnx.record.json"))) == 1


def test_bad_options_are_refused_before_any_copy_is_made(made, cli, tmp_path, tiny):
    run = _fresh_run(made, tmp_path)
    shutil.rmtree(run / ".cnncli-cache")
    images = made["root"] / "images"
    (tmp_path / "out.csv").write_text("mine")
    ds = tiny.build(images, tmp_path / "ds")
    (tmp_path / "c.png").write_text("mine")
    for args in (
        ["predict", run, images, "-o", tmp_path / "out.csv"],
        ["predict", run, images, "--top-k", "0"],
        ["predict", run, images, "--json", "--csv"],
        ["evaluate", run, ds, "--confusion", tmp_path / "c.png"],
        ["evaluate", run, ds, "--split", "nope"],
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.stderr)
        assert not (run / ".cnncli-cache").exists(), args


def test_evaluate_through_the_copy_gives_keras_figures(made, cli, tiny, tmp_path):
    ds = tiny.build(made["root"] / "images", tmp_path / "ds")
    run = _fresh_run(made, tmp_path)
    fast = cli("evaluate", run, ds, "--json", "--no-confusion")
    slow = cli("evaluate", run, ds, "--json", "--no-confusion", "--runtime", "keras")
    assert fast.exit_code == 0 and slow.exit_code == 0, fast.stderr + slow.stderr
    assert f"runtime: {SHOWN}" in fast.stderr and "runtime: Keras" in slow.stderr
    a, b = json.loads(fast.stdout), json.loads(slow.stdout)
    assert a["accuracy"] == b["accuracy"] and a["count"] == b["count"]
    assert np.isclose(a["loss"], b["loss"], atol=1e-4)
