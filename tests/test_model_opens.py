"""A model file is opened once per command before Keras loads it (models.model_file): the
checks made before TensorFlow, the metadata, the config, the declared weights and the
sha256 all come from that one read (was: 7 opens on `predict --runtime keras`, 13 on a
first `predict` that makes the fast copy, 10 on `export`). Counted with an audit hook, which
sees every open() of the file, zipfile's included; the opens made inside Keras' own load
are counted apart."""

from __future__ import annotations

import os
import sys
import traceback

import pytest

_watch: dict = {}


def _hook(event, args):
    target = _watch.get("path")
    if event != "open" or target is None or not isinstance(args[0], (str, os.PathLike)):
        return
    if os.path.abspath(args[0]) == target:
        stack = traceback.extract_stack()
        keras = any(f"{os.sep}keras{os.sep}" in f.filename for f in stack)
        _watch["keras" if keras else "ours"].append(stack)


sys.addaudithook(_hook)  # cannot be removed: it records only while a test watches a file


def opens(path, call) -> tuple[int, int]:
    """(opens by cnncli, opens by Keras' load) of the file `path` during `call()`."""
    _watch.update(path=os.path.abspath(path), ours=[], keras=[])
    try:
        call()
    finally:
        target = _watch.pop("path")
    assert target
    return len(_watch["ours"]), len(_watch["keras"])


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("opens")
    images = tiny.make_images(root / "images", tiny.SHAPES, per_class=1)
    path = tiny.save_with_metadata(tiny.model(3), root / "model.keras", tiny.SHAPES, 1.0)
    return path, images


def test_predict_opens_the_model_file_once(cli, model):
    path, images = model

    def predict():
        result = cli("predict", path, images, "--json", "--runtime", "keras")
        assert result.exit_code == 0, result.output

    ours, by_keras = opens(path, predict)
    assert (ours, by_keras > 0) == (1, True)


def test_evaluate_opens_the_model_file_once(cli, model, tiny, tmp_path):
    path, images = model
    dataset = tiny.build(images, tmp_path / "ds", val=0.0, test=0.0)

    def evaluate():
        result = cli(
            "evaluate",
            path,
            dataset,
            "--split",
            "train",
            "--json",
            "--no-confusion",
            "--runtime",
            "keras",
        )
        assert result.exit_code == 0, result.output

    ours, by_keras = opens(path, evaluate)
    assert (ours, by_keras > 0) == (1, True)  # was 3: the task check read it twice more


@pytest.mark.slow  # exports (a LiteRT conversion and its check) twice
def test_export_and_the_fast_copy_open_the_model_file_once(cli, model, tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    path, images = model
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def run(*args):
        def call():
            result = cli(*args)
            assert result.exit_code == 0, result.output

        return call

    export = run("export", path, "-f", "litert", "-o", tmp_path / "m.tflite")
    assert opens(path, export)[0] == 1
    predict = run("predict", path, images, "--json", "--runtime", "auto")
    assert opens(path, predict)[0] == 1  # the first: the fast copy is made (an export)
    assert opens(path, predict) == (1, 0)  # later: the copy answers, Keras never loads
