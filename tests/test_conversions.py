"""What the image conversion changed, said once per run (cnncli.images.conversions): the pixels
follow Keras' load_img (alpha dropped, never composited; alpha added opaque), and the
tally's notes count each kind of change; `dataset build`, `predict`, `activations` and
`embed` report it."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from cnncli.images import Conversions, ImageSpec, convert_image, load_image

RGB_FROM_GRAY = "grayscale -> RGB"
STRETCHED = "stretched to 8x8, aspect ratio 1:1 from 4:3"


def rgba(alpha: int, size=(4, 4)) -> Image.Image:
    arr = np.zeros((*size, 4), np.uint8)
    arr[..., :3] = (200, 100, 50)
    arr[..., 3] = 255
    arr[0, 0, 3] = alpha
    return Image.fromarray(arr, "RGBA")


def test_alpha_is_dropped_not_composited_and_added_opaque():
    changed = Conversions()
    rgb = convert_image(rgba(0), ImageSpec(4, 4, "rgb"), changed)
    gray = convert_image(rgba(0), ImageSpec(4, 4, "grayscale"), changed)
    # the transparent pixel keeps the colour stored under it (no white or black background)
    assert rgb[0, 0].tolist() == [200, 100, 50]
    assert gray[0, 0, 0] == (200 * 299 + 100 * 587 + 50 * 114) // 1000 == 124
    added = convert_image(Image.new("L", (4, 4), 7), ImageSpec(4, 4, "rgba"), changed)
    assert added[0, 0].tolist() == [7, 7, 7, 255]
    assert changed.notes() == [
        "1 of 3 images: RGBA -> RGB, alpha dropped (transparent pixels show the colour stored "
        "under them)",
        "1 of 3 images: RGBA -> grayscale, alpha dropped (transparent pixels show the colour "
        "stored under them)",
        "1 of 3 images: grayscale -> RGBA, alpha added (opaque)",
    ]


def test_tally_counts_each_kind_once_per_run():
    changed = Conversions()
    spec = ImageSpec(8, 8, "grayscale")
    for _ in range(3):
        convert_image(rgba(255, size=(8, 8)), spec, changed)  # opaque RGBA: nothing lost
    convert_image(Image.new("L", (8, 6)), spec, changed)  # 4:3 (width:height)
    convert_image(Image.new("L", (16, 12)), spec, changed)  # 4:3, larger
    convert_image(Image.new("L", (4, 4)), spec, changed)  # same aspect, smaller
    convert_image(Image.fromarray(np.zeros((8, 8), np.uint16)), spec, changed)  # 16-bit
    convert_image(Image.new("L", (8, 8)), spec, changed)  # already right: counted, unchanged
    assert changed.notes() == [
        "3 of 8 images: RGBA -> grayscale, alpha dropped (every pixel was opaque: nothing lost)",
        "2 of 8 images: stretched to 8x8, aspect ratio 1:1 from 4:3",
        "1 of 8 images: 16-bit grayscale -> 8-bit",
        "1 of 8 images: enlarged to 8x8",
    ]
    crop = Conversions()
    for w, h in ((16, 8), (12, 8), (12, 8)):
        convert_image(Image.new("RGB", (w, h)), ImageSpec(8, 8, "rgb", "crop"), crop)
    assert crop.notes() == [
        "3 of 3 images: resized to 8x8, centre-cropped to aspect ratio 1:1 from 3:2 (2), 2:1 (1)"
    ]
    # a worker's tally travels to the main process and adds up
    part = pickle.loads(pickle.dumps(crop))
    part.merge(changed)
    assert part.images == 11 and part.notes()[0].startswith("3 of 11 images: RGBA -> grayscale")
    nothing = Conversions()
    convert_image(Image.new("RGB", (8, 8)), ImageSpec(8, 8, "rgb"), nothing)
    assert nothing.notes() == [] and nothing.images == 1


def test_dataset_build_reports_and_stores_the_tally(tmp_path, tiny):
    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset

    images = tiny.make_images(tmp_path / "in", ["a", "b"], per_class=4, size=(6, 6))
    Image.new("L", (6, 6)).save(images / "a" / "gray.png")
    result = build_dataset(images, tmp_path / "ds", val=0.25, workers=1)
    note = f"1 of 9 images: {RGB_FROM_GRAY}"
    assert note in result.notes and result.to_dict()["notes"] == result.notes
    info = open_dataset(tmp_path / "ds")
    assert info.manifest["conversions"] == [note] and info.summary()["conversions"] == [note]


def test_dataset_build_cli_says_it_once(cli, tmp_path, write_image):
    for cls in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "in" / cls / f"{i}.png", np.full((6, 8, 3), 9 * i, np.uint8))
    r = cli(
        "dataset",
        "build",
        tmp_path / "in",
        "-o",
        tmp_path / "ds",
        "--size",
        "6x6",
        "--color",
        "grayscale",
        "--val",
        "0.34",
    )
    assert r.exit_code == 0, r.output
    err = " ".join(r.stderr.split())
    assert err.count("6 of 6 images: RGB -> grayscale") == 1
    assert "6 of 6 images: stretched to 6x6, aspect ratio 1:1 from 4:3" in err
    r = cli("dataset", "info", tmp_path / "ds")
    assert "converted at build: 6 of 6 images: RGB -> grayscale" in " ".join(r.stderr.split())


# --- predict, activations and embed: one note per run --------------------------------------


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory, tiny):
    """An 8x8 RGB model, and three images for it: one already right, one grayscale 4:3."""
    root = tmp_path_factory.mktemp("conv")
    path = tiny.save_with_metadata(tiny.model(2), root / "model.keras", tiny.FACADE)
    folder = root / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "a.png")
    Image.new("RGB", (8, 8), (90, 20, 30)).save(folder / "b.png")
    Image.new("L", (16, 12), 128).save(folder / "c.png")
    return path, folder


def test_predict_says_what_was_converted(model_and_images, cli):
    from cnncli.inference.predict import predict

    path, folder = model_and_images
    result = predict(path, [folder])
    notes = [f"1 of 3 images: {RGB_FROM_GRAY}", f"1 of 3 images: {STRETCHED}"]
    assert [n for n in result.notes if " of 3 images: " in n] == notes
    assert result.to_json()["notes"][-2:] == notes
    r = cli("predict", path, folder, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["notes"][-2:] == notes
    assert " ".join(r.stderr.split()).count(f"note: 1 of 3 images: {RGB_FROM_GRAY}") == 1
    # an image that needs nothing: nothing said
    assert not [n for n in predict(path, [folder / "a.png"]).notes if " of " in n]


def test_activations_and_embed_say_what_was_converted(model_and_images, tmp_path):
    from cnncli.inference.activations import activations
    from cnncli.inference.embed import embed

    path, folder = model_and_images
    result = activations(path, [folder / "c.png"], tmp_path / "act")
    assert f"1 of 1 images: {RGB_FROM_GRAY}" in result.notes
    assert f"1 of 1 images: {STRETCHED}" in result.notes
    result = embed(path, [folder], out_csv=tmp_path / "v.csv")
    assert f"1 of 3 images: {STRETCHED}" in result.notes
    assert result.to_json()["notes"].count(f"1 of 3 images: {RGB_FROM_GRAY}") == 1
    # the image given to the model is the converted one, as load_image makes it
    pixels = load_image(folder / "c.png", ImageSpec(8, 8, "rgb"))
    assert pixels.shape == (8, 8, 3) and (pixels == 128).all()


def test_evaluate_repeats_what_the_build_converted(model_and_images, tmp_path, tiny):
    from cnncli.datasets.build import build_dataset
    from cnncli.inference.evaluate import evaluate

    path, _ = model_and_images
    images = tiny.make_images(tmp_path / "in", tiny.FACADE, per_class=4)
    Image.new("L", (8, 8), 99).save(images / tiny.FACADE[0] / "gray.png")
    build_dataset(images, tmp_path / "ds", val=0.25, workers=1)
    result = evaluate(path, tmp_path / "ds")
    assert f"converted at build: 1 of 9 images: {RGB_FROM_GRAY}" in result.notes
