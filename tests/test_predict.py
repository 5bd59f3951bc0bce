"""predict: the same probability as evaluate for the same image, the dataset build's
conversion for images of another size or mode, top-k, sigmoid heads, bad files, the CLI."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from cnncli.errors import ImageError, InputError, UsageError


@pytest.fixture(scope="module")
def facade(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("pfacade")
    tiny.make_images(root / "images", tiny.FACADE, per_class=6)
    ds = tiny.build(root / "images", root / "ds")
    model = tiny.model(2)
    path = tiny.save_with_metadata(model, root / "model.keras", tiny.FACADE)
    return {"root": root, "images": root / "images", "ds": ds, "model": model, "path": path}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("pshapes")
    tiny.make_images(root / "images", tiny.SHAPES, per_class=3, seed=1)
    model = tiny.model(3, seed=1)
    path = tiny.save_with_metadata(model, root / "model.keras", tiny.SHAPES)
    return {"root": root, "images": root / "images", "model": model, "path": path}


def test_probability_equals_evaluate_for_the_same_image(facade, tiny):
    from cnncli.inference.evaluate import evaluate
    from cnncli.inference.predict import predict

    ev = evaluate(facade["path"], facade["ds"], split="test")
    rel = ev.paths[0]  # paths in the dataset are relative to the images folder
    [row] = predict(facade["path"], [facade["images"] / rel]).rows
    i = int(ev.predicted[0])
    assert row.class_index == i and row.class_name == tiny.FACADE[i]
    assert row.probability == pytest.approx(ev.probabilities[0, i], abs=1e-6)
    # ... and the model's own output for that image's pixels
    x = np.asarray(Image.open(facade["images"] / rel), dtype="float32")[None]
    p1 = float(facade["model"].predict(x, verbose=0)[0, 0])
    assert row.probability == pytest.approx(p1 if i == 1 else 1 - p1, abs=1e-6)


def test_sigmoid_head_top_k_is_p_and_one_minus_p(facade, tiny):
    from cnncli.inference.predict import predict

    files = sorted((facade["images"] / tiny.FACADE[1]).glob("*.png"))[:3]
    result = predict(facade["path"], files, top_k=2)
    x = np.stack([np.asarray(Image.open(f), dtype="float32") for f in files])
    p = facade["model"].predict(x, verbose=0)[:, 0]
    for row, p1 in zip(result.rows, p, strict=True):
        expected = {tiny.FACADE[1]: float(p1), tiny.FACADE[0]: 1 - float(p1)}
        assert dict(row.top_k) == pytest.approx(expected, abs=1e-6)
        assert row.top_k[0][1] >= row.top_k[1][1]
        assert row.class_name == (tiny.FACADE[1] if p1 > 0.5 else tiny.FACADE[0])


def test_softmax_top_k_and_folder_order(shapes, tiny):
    from cnncli.inference.predict import predict

    folder = shapes["images"] / "square"
    for name in ("10.png", "2.png"):  # natural order: 0, 1, 2, 2.png... then 10
        Image.open(folder / "0.png").save(folder / name)
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    result = predict(shapes["path"], [folder], top_k=3)
    names = [r.file.rsplit("/", 1)[-1] for r in result.rows]
    assert names == ["0.png", "1.png", "2.png", "10.png"]
    assert result.skipped == []
    x = np.stack([np.asarray(Image.open(r.file), dtype="float32") for r in result.rows])
    probs = shapes["model"].predict(x, verbose=0)
    for row, p in zip(result.rows, probs, strict=True):
        order = np.argsort(-p, kind="stable")
        assert [c for c, _ in row.top_k] == [tiny.SHAPES[i] for i in order]
        assert [q for _, q in row.top_k] == pytest.approx(p[order], abs=1e-6)


def test_other_size_and_mode_converted_as_the_dataset_build(facade, tmp_path, tiny):
    """A 20x12 RGBA image reaches the model as load_image(path, 8x8 RGB stretch) would."""
    from cnncli.images import ImageSpec, load_image
    from cnncli.inference.predict import predict

    rng = np.random.default_rng(3)
    path = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (12, 20, 4), dtype=np.uint8), "RGBA").save(path)
    result = predict(facade["path"], [path], top_k=2)
    assert result.conversion == (
        "images converted to 8x8 RGB (stretch), as the dataset was built "
        "(stored with the model); pixels x 1"
    )
    x = load_image(path, ImageSpec(8, 8, "rgb", "stretch"))[None].astype("float32")
    p1 = float(facade["model"].predict(x, verbose=0)[0, 0])
    assert dict(result.rows[0].top_k)[tiny.FACADE[1]] == pytest.approx(p1, abs=1e-6)


def test_external_model_conversion_from_input_shape(tmp_path, facade, tiny):
    from cnncli.inference.predict import predict

    model = tiny.model(2, rescale=False, seed=4)
    path = tmp_path / "plain.keras"
    model.save(path)
    img = sorted((facade["images"] / tiny.FACADE[0]).glob("*.png"))[0]
    result = predict(path, [img])
    assert result.conversion == (
        "images converted to 8x8 RGB (stretch), from the model's input shape "
        "(none stored with the model); pixels x 1/255"
    )
    assert result.rows[0].class_name in ("0", "1")  # classes named by output index
    x = np.asarray(Image.open(img), dtype="float32")[None] / 255
    p1 = float(model.predict(x, verbose=0)[0, 0])
    assert dict(result.rows[0].top_k)["1"] == pytest.approx(p1, abs=1e-6)


def test_bad_files_are_skipped_and_listed(facade, tmp_path, tiny):
    from cnncli.inference.predict import predict

    bad = tmp_path / "photo.png"
    bad.write_text("this is text")
    good = sorted((facade["images"] / tiny.FACADE[0]).glob("*.png"))[0]
    result = predict(facade["path"], [bad, good])
    assert [r.file for r in result.rows] == [str(good)]
    assert result.skipped == [(str(bad), "not an image, or a format cnncli cannot read")]
    with pytest.raises(ImageError, match="photo.png: not an image"):
        predict(facade["path"], [bad])
    with pytest.raises(UsageError, match="--top-k 3 is more than the model's 2 classes"):
        predict(facade["path"], [good], top_k=3)


# --- the command ---------------------------------------------------------------------------


def test_cli_table_json_and_csv(cli, facade, tiny):
    files = sorted((facade["images"] / tiny.FACADE[1]).glob("*.png"))[:2]
    result = cli("predict", facade["path"], *files)
    assert result.exit_code == 0, result.output
    assert "images converted to 8x8 RGB (stretch), as the dataset was built" in result.stderr
    assert result.stderr.count("images converted") == 1  # stated once
    assert "probability" in result.stdout and files[0].name in result.stdout

    result = cli("predict", facade["path"], *files, "--json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "model",
        "runtime",
        "conversion",
        "notes",
        "top_k",
        "predictions",
        "skipped",
    }
    assert data["top_k"] == 2 and data["skipped"] == []
    row = data["predictions"][0]
    assert set(row) == {"file", "class", "class_index", "probability", "top_k"}
    assert row["file"] == str(files[0]) and row["class"] in tiny.FACADE
    assert sum(t["probability"] for t in row["top_k"]) == pytest.approx(1.0)

    result = cli("predict", facade["path"], *files, "--csv", "--top-k", "2")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["file", "class", "probability", "class_2", "probability_2"]
    assert [r[0] for r in rows[1:]] == [str(f) for f in files]
    assert float(rows[1][2]) == pytest.approx(data["predictions"][0]["probability"], abs=1e-6)


def test_cli_bad_inputs(cli, facade, tmp_path, tiny):
    bad = tmp_path / "photo.png"
    bad.write_text("this is text")
    good = sorted((facade["images"] / tiny.FACADE[0]).glob("*.png"))[0]

    result = cli("predict", facade["path"], bad)  # the only image is bad: one error line
    assert result.exit_code == 2  # an unreadable named input: a usage error (cnncli.errors)
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: not an image, or a format cnncli cannot read"
    )
    assert "Traceback" not in result.output

    result = cli("predict", facade["path"], bad, good, "--json")  # the rest go on, exit 2
    assert result.exit_code == 2
    assert f"warning: skipped {bad}: not an image" in result.stderr
    data = json.loads(result.stdout)
    assert [p["file"] for p in data["predictions"]] == [str(good)]
    assert data["skipped"] == [
        {"file": str(bad), "reason": "not an image, or a format cnncli cannot read"}
    ]

    result = cli("predict", tmp_path / "none.keras", good)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: model file {tmp_path / 'none.keras'} not found: "
        "give the path of a .keras or .h5 file"
    )
    result = cli("predict", facade["path"], good, "--json", "--csv")
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "error: --json and --csv are exclusive: choose one output format"
    )
    result = cli("predict", facade["path"], good, "--top-k", "0")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --top-k must be at least 1, got 0"


def test_folder_of_class_folders_is_walked_in_natural_order(tmp_path):
    from cnncli.images import collect_images

    for rel in ("b/10.png", "b/2.png", "a/1.jpg", ".hidden/3.png", "a/.x.png", "a/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in collect_images([tmp_path])]
    assert found == ["a/1.jpg", "b/2.png", "b/10.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder .*empty holds no image files"):
        collect_images([tmp_path / "empty"])


def test_h5_model_with_metadata_predicts_the_same(facade, tmp_path, tiny):
    from cnncli.inference.predict import predict

    h5 = tiny.save_with_metadata(facade["model"], tmp_path / "model.h5", tiny.FACADE)
    files = sorted((facade["images"] / tiny.FACADE[0]).glob("*.png"))[:2]
    a = predict(facade["path"], files, top_k=2)
    b = predict(h5, files, top_k=2)
    assert b.conversion == a.conversion
    assert [r.class_name for r in b] == [r.class_name for r in a]
    assert [r.probability for r in b] == pytest.approx([r.probability for r in a], abs=1e-6)
