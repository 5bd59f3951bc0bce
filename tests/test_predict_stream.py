"""predict streamed (issue 18): rows batch by batch as the model answers, images decoded in
threads, the same rows in the same order as one image at a time; what stdout gets when it is
not a terminal (plain lines), on a terminal (a table, or a summary past TABLE_ROWS), and
the whole list in a file (-o)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("pstream")
    images = tiny.make_images(root / "images", tiny.SHAPES, per_class=7, seed=2)
    model = tiny.model(3, seed=2)
    path = tiny.save_with_metadata(model, root / "model.keras", tiny.SHAPES)
    return {"root": root, "images": images, "model": model, "path": path}


def test_batches_in_threads_give_the_rows_of_one_image_at_a_time(shapes):
    from cnncli.inference.predict import predict_batches

    one = [
        r
        for b in predict_batches(
            shapes["path"], [shapes["images"]], top_k=2, batch_size=1, threads=1
        )
        for r in b
    ]
    seen = []
    stream = predict_batches(
        shapes["path"],
        [shapes["images"]],
        top_k=2,
        batch_size=4,
        threads=3,
        progress=lambda d, t: seen.append((d, t)),
    )
    batches = list(stream)
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 1]  # 21 images, batch 4
    rows = [r for b in batches for r in b]
    assert [r.file for r in rows] == [r.file for r in one]  # input (natural) order
    assert [(r.class_name, r.top_k[1][0]) for r in rows] == [
        (r.class_name, r.top_k[1][0]) for r in one
    ]
    np.testing.assert_allclose(
        [r.probability for r in rows], [r.probability for r in one], atol=1e-6
    )
    # ... and the model's own answer for the same pixels
    x = np.stack([np.asarray(Image.open(r.file), dtype="float32") for r in rows])
    expected = shapes["model"].predict(x, verbose=0)
    assert [r.class_index for r in rows] == expected.argmax(axis=1).tolist()
    assert seen[-1] == (21, 21) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_bad_file_among_good_ones_keeps_the_order(shapes, tmp_path):
    from cnncli.inference.predict import predict_batches

    good = sorted((shapes["images"] / "circle").glob("*.png"))[:5]
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    stream = predict_batches(
        shapes["path"], [good[0], good[1], bad, *good[2:]], batch_size=2, threads=2
    )
    rows = [r for b in stream for r in b]
    assert [r.file for r in rows] == [str(f) for f in good]
    assert stream.skipped == [(str(bad), "not an image, or a format cnncli cannot read")]


@pytest.fixture(scope="module")
def csv_top2(shapes):
    """`predict --csv --top-k 2` of the 21 images (stdout)."""
    from typer.testing import CliRunner

    from cnncli.cli.main import app

    args = ["predict", str(shapes["path"]), str(shapes["images"]), "--csv", "--top-k", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_piped_stdout_gets_plain_lines_in_order(cli, shapes, csv_top2):
    plain = cli("predict", shapes["path"], shapes["images"], "--top-k", "2")
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines[0] == "file\tclass\tprobability\tclass_2\tprobability_2"
    assert len(lines) == 22 and "│" not in plain.stdout  # no table borders
    rows = list(csv.reader(io.StringIO(csv_top2)))
    assert [line.split("\t") for line in lines] == rows  # the same cells, in the same order
    assert rows[1][0].endswith("circle/0.png") and rows[-1][0].endswith("triangle/6.png")


def test_terminal_table_then_summary_past_table_rows(cli, shapes, monkeypatch):
    import cnncli.cli.console as console
    import cnncli.cli.predict as command

    monkeypatch.setattr(console, "stdout_is_terminal", lambda: True)
    files = sorted((shapes["images"] / "square").glob("*.png"))[:2]
    table = cli("predict", shapes["path"], *files)
    assert table.exit_code == 0, table.output
    assert "Predictions (files in" in table.stdout and "0.png" in table.stdout

    monkeypatch.setattr(command, "TABLE_ROWS", 5)
    summary = cli("predict", shapes["path"], shapes["images"])
    assert summary.exit_code == 0, summary.output
    assert "Predictions: 21 images, by predicted class" in summary.stdout
    assert "0.png" not in summary.stdout  # no row per file
    assert "every row: --csv or --json on stdout, or -o FILE" in summary.stderr


def test_output_file_holds_every_row(cli, shapes, tmp_path, csv_top2):
    out = tmp_path / "p.csv"
    result = cli("predict", shapes["path"], shapes["images"], "--top-k", "2", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "wrote 21 predictions to" in result.stderr
    assert out.read_text() == csv_top2

    result = cli("predict", shapes["path"], shapes["images"], "-o", tmp_path / "p.json")
    data = json.loads((tmp_path / "p.json").read_text())
    assert len(data["predictions"]) == 21 and data["top_k"] == 1

    again = cli("predict", shapes["path"], shapes["images"], "-o", out)  # refused at once
    assert again.exit_code == 2 and "exists" in again.stderr
