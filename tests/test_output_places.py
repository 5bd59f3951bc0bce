"""Where an output goes by default, decided in one place (split_io.default_output_path): in
the model's train run folder (a run's best.keras or one of its checkpoints), else in the
current folder, never beside a model from elsewhere. Evaluate's plots and export's files
follow the same rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnncli.export.formats import default_output
from cnncli.inference.split_io import default_output_path, default_plot_path
from cnncli.models.formats import get_format


@pytest.fixture
def places(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "x"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    elsewhere = tmp_path / "shared" / "model.keras"
    elsewhere.parent.mkdir()
    monkeypatch.chdir(tmp_path / "runs")
    return run, elsewhere


def test_plots_and_exports_go_to_the_run_folder_else_here(places):
    run, elsewhere = places
    litert, savedmodel = get_format("litert"), get_format("savedmodel")
    cases = [
        (run / "best.keras", run),
        (run / "checkpoints" / "save-03-0.5000.keras", run),
        (elsewhere, Path()),
    ]
    for model, folder in cases:
        stem = model.stem
        assert default_output_path(model, "x.png") == folder / "x.png"
        assert default_plot_path(model, "val") == folder / f"{stem}.confusion-val.png"
        assert default_plot_path(model, "test", "scatter") == folder / f"{stem}.scatter-test.png"
        assert default_output(model, litert) == folder / f"{stem}.tflite"
        assert default_output(model, litert, int8=True) == folder / f"{stem}.int8.tflite"
        assert default_output(model, savedmodel) == folder / f"{stem}_savedmodel"
    assert default_plot_path(None, "val") == Path("model.confusion-val.png")  # in memory
