"""build_dataset and the store: pixels and labels round-trip, splits, image modes, every
bad input at once, --skip-bad, atomic output, and the on-disk contract (docs/FORMAT.md)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from cnncli.datasets.build import build_dataset
from cnncli.datasets.shards import parse_shard_size
from cnncli.datasets.store import iter_records, open_dataset
from cnncli.datasets.tfrecord import decode_example, encode_example, frame, read_records
from cnncli.errors import DatasetError, OutputExistsError, UsageError
from cnncli.images import ImageSpec, load_image, probe_image

KOREAN = ["벽돌", "대리석"]


@pytest.fixture
def facade(write_image):
    """facade(root, n=10, ...) -> (folder, table): n tiny random images under root/imgs and
    the course's table ',image,type,y' (root/labels.csv)."""

    def make(tmp_path, n=10, size=(6, 5), mode="RGBA", rows=None, seed=0):
        rng = np.random.default_rng(seed)
        folder = tmp_path / "imgs"
        channels = {"RGBA": 4, "RGB": 3, "L": 1}[mode]
        for i in range(n):
            arr = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
            write_image(folder / f"BV{i:03d}.png", arr[..., 0] if channels == 1 else arr)
        if rows is None:
            rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2}" for i in range(n)]
        table = tmp_path / "labels.csv"
        table.write_text("\n".join([",image,type,y", *rows]) + "\n", encoding="utf-8")
        return folder, table

    return make


@pytest.fixture
def folders(write_image):
    """folders(root, {class: n}, size) -> root/cls: one folder of random RGB PNGs per class."""

    def make(tmp_path, counts, size=(5, 5)):
        rng = np.random.default_rng(1)
        for cls, n in counts.items():
            for j in range(n):
                write_image(
                    tmp_path / "cls" / cls / f"{j}.png", rng.integers(0, 256, (*size, 3), np.uint8)
                )
        return tmp_path / "cls"

    return make


def test_round_trip_pixels_labels_and_contract(tmp_path, facade):
    folder, table = facade(tmp_path, n=10)
    result = build_dataset(folder, tmp_path / "ds", labels=table, val=0.2, seed=3)
    info = open_dataset(tmp_path / "ds")
    assert info.class_names == ["벽돌", "대리석"] and info.num_classes == 2
    assert info.image == ImageSpec(6, 5, "rgba") and info.encoding == "raw"
    assert info.splits == ["train", "val"]
    assert info.count("train") == 8 and info.per_class("val") == {"벽돌": 1, "대리석": 1}
    assert result.counts == {"train": {"벽돌": 4, "대리석": 4}, "val": {"벽돌": 1, "대리석": 1}}
    seen = {}
    for split in info.splits:
        for rec in iter_records(info, split):
            seen[rec.path] = split
            expected = np.asarray(Image.open(folder / rec.path))
            np.testing.assert_array_equal(rec.image, expected)
            assert rec.label == int(rec.path[2:5]) % 2
            row = info.index.loc[info.index["index"] == rec.index].iloc[0]
            assert (row.path, row.label, row.split) == (rec.path, rec.label, split)
    assert len(seen) == 10
    m = info.manifest
    assert m["format"] == "cnncli-dataset" and m["format_version"] == 1
    assert m["classes"] == [{"index": 0, "name": "벽돌"}, {"index": 1, "name": "대리석"}]
    assert m["options"]["seed"] == 3 and m["options"]["color"] == "rgba"
    import hashlib

    assert m["labels_sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    assert (
        info.sha256 == hashlib.sha256((tmp_path / "ds" / "manifest.json").read_bytes()).hexdigest()
    )
    assert list(info.index.columns) == ["index", "path", "label", "class_name", "split", "sha256"]
    assert (
        info.index["sha256"][0] == hashlib.sha256((folder / "BV000.png").read_bytes()).hexdigest()
    )
    assert any("colour: rgba" in n for n in result.notes)


def test_shards_read_by_tensorflow(tmp_path, facade):
    """The shards are real TFRecords: tf.data and tf.io.parse_single_example read them."""
    import tensorflow as tf

    folder, table = facade(tmp_path, n=6)
    build_dataset(folder, tmp_path / "ds", labels=table, val=0.0, shard_size=4)
    info = open_dataset(tmp_path / "ds")
    assert len(info.shard_paths("train")) == 2
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "index": tf.io.FixedLenFeature([], tf.int64),
        "path": tf.io.FixedLenFeature([], tf.string),
    }
    got = {}
    for raw in tf.data.TFRecordDataset([str(p) for p in info.shard_paths("train")]):
        ex = tf.io.parse_single_example(raw, spec)
        img = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), info.image.shape).numpy()
        got[ex["path"].numpy().decode()] = (img, int(ex["label"]))
    assert len(got) == 6
    for path, (img, label) in got.items():
        np.testing.assert_array_equal(img, np.asarray(Image.open(folder / path)))
        assert label == int(path[2:5]) % 2
    # and our encoder's bytes parse as TF's own Example
    ex = tf.train.Example.FromString(encode_example({"image": b"ab", "label": -3, "path": "x"}))
    assert ex.features.feature["label"].int64_list.value == [-3]
    assert ex.features.feature["image"].bytes_list.value == [b"ab"]


def test_example_codec_round_trip():
    data = encode_example(
        {"image": b"\x00\xff" * 300, "label": 2**40, "index": -1, "path": "벽돌/a.png"}
    )
    ex = decode_example(data)
    assert ex == {
        "image": [b"\x00\xff" * 300],
        "index": [-1],
        "label": [2**40],
        "path": ["벽돌/a.png".encode()],
    }
    recs = list(read_records(io.BytesIO(frame(b"one") + frame(b"") + frame(data))))
    assert recs == [b"one", b"", data]


def test_corrupt_shard_is_detected(tmp_path, facade):
    folder, table = facade(tmp_path, n=6)
    build_dataset(folder, tmp_path / "ds", labels=table, val=0.0)
    info = open_dataset(tmp_path / "ds")
    shard = info.shard_paths("train")[0]
    original = shard.read_bytes()
    data = bytearray(original)
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="data checksum mismatch"):
        list(iter_records(info, "train"))
    shard.write_bytes(original[:-10])
    with pytest.raises(DatasetError, match="truncated record"):
        list(iter_records(info, "train"))


def test_split_determinism_and_stratification(tmp_path, folders):
    root = folders(tmp_path, {"a": 10, "b": 20, "c": 5})
    r1 = build_dataset(root, tmp_path / "d1", val=0.2, test=0.2, seed=7)
    build_dataset(root, tmp_path / "d2", val=0.2, test=0.2, seed=7)
    for name in ["manifest.json", "index.csv"]:
        assert (tmp_path / "d1" / name).read_bytes() == (tmp_path / "d2" / name).read_bytes()
    for p in (tmp_path / "d1").glob("*.tfrecord"):
        assert p.read_bytes() == (tmp_path / "d2" / p.name).read_bytes()
    assert r1.counts == {
        "train": {"a": 6, "b": 12, "c": 3},
        "val": {"a": 2, "b": 4, "c": 1},
        "test": {"a": 2, "b": 4, "c": 1},
    }
    build_dataset(root, tmp_path / "d3", val=0.2, test=0.2, seed=8)
    i1 = (tmp_path / "d1" / "index.csv").read_text()
    assert i1 != (tmp_path / "d3" / "index.csv").read_text()  # another seed, another split


def test_split_column(tmp_path, facade):
    splits = ["train", "train", "val", "test", "train", "val"]
    rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2},{s}" for i, s in enumerate(splits)]
    folder, _ = facade(tmp_path, n=6)
    table = tmp_path / "t.csv"
    table.write_text("\n".join([",image,type,y,part", *rows]) + "\n", encoding="utf-8")
    r = build_dataset(folder, tmp_path / "ds", labels=table, split_col="part")
    assert r.counts == {
        "train": {"벽돌": 2, "대리석": 1},
        "val": {"벽돌": 1, "대리석": 1},
        "test": {"벽돌": 0, "대리석": 1},
    }
    idx = open_dataset(tmp_path / "ds").index
    assert list(idx.sort_values("path")["split"]) == splits
    rows = [
        f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2},{'val' if i % 2 else 'train'}" for i in range(6)
    ]
    table.write_text("\n".join([",image,type,y,part", *rows]) + "\n", encoding="utf-8")
    with pytest.raises(
        DatasetError,
        match="class '대리석' has no images in the train split: .* "
        "or put some in train in the split column",
    ):
        build_dataset(folder, tmp_path / "ds2", labels=table, split_col="part")
    assert not (tmp_path / "ds2").exists()


def test_class_too_small_and_single_class(tmp_path, folders):
    root = folders(tmp_path, {"a": 5, "b": 2})
    with pytest.raises(
        DatasetError,
        match=r"class 'b' has 2 images, too few for --val 0.2 and --test 0.2: it needs at least 3",
    ):
        build_dataset(root, tmp_path / "ds", val=0.2, test=0.2)
    r = build_dataset(root, tmp_path / "ds", val=0.2)  # 2 images: one trains, one validates
    assert r.counts["val"]["b"] == 1 and r.counts["train"]["b"] == 1
    one = folders(tmp_path / "one", {"only": 4})
    with pytest.raises(
        DatasetError, match=r"only one class \(only\): a classifier needs two or more"
    ):
        build_dataset(one, tmp_path / "ds1")
    assert not (tmp_path / "ds1").exists()


def test_every_bad_input_listed_at_once_and_nothing_written(tmp_path, facade):
    rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2}" for i in range(8)]
    rows += [
        "8,zero.png,벽돌,0",
        "9,text.png,대리석,1",
        "10,trunc.png,벽돌,0",
        "11,gone.png,벽돌,0",
        "12,BV000.png,벽돌,0",
        "13,nolabel.png,대리석,",
        "14,bomb.png,대리석,1",
    ]
    folder, table = facade(tmp_path, n=8, rows=rows)
    (folder / "zero.png").write_bytes(b"")
    (folder / "nolabel.png").write_bytes((folder / "BV000.png").read_bytes())
    (folder / "text.png").write_text("I am not a picture")
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 5, 4), np.uint8)).save(
        good, "PNG"
    )
    (folder / "trunc.png").write_bytes(good.getvalue()[:-30])
    Image.new("L", (4000, 4000)).save(folder / "bomb.png")  # 16 Mpx: over the limit set below
    Image.MAX_IMAGE_PIXELS, old = 1_000_000, Image.MAX_IMAGE_PIXELS
    try:
        with pytest.raises(DatasetError) as ei:
            build_dataset(folder, tmp_path / "ds", labels=table)
    finally:
        Image.MAX_IMAGE_PIXELS = old
    problems = dict(ei.value.problems)
    assert ei.value.message == "7 problems in the inputs; nothing was written"
    assert problems["gone.png"] == "line 13: file not found"
    assert problems["BV000.png"] == "line 14: duplicate row (first on line 2)"
    assert problems["nolabel.png"] == "line 15: no label"
    assert problems["zero.png"] == "empty file (0 bytes)"
    assert problems["text.png"] == "not an image, or a format cnncli cannot read"
    assert problems["bomb.png"].startswith("refused as a decompression bomb (Image size (16000000")
    assert problems["trunc.png"].startswith("truncated or corrupt image data")
    assert not (tmp_path / "ds").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_skip_bad_builds_from_good_rows(tmp_path, facade):
    rows = [f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2}" for i in range(8)] + ["8,bad.png,벽돌,0"]
    folder, table = facade(tmp_path, n=8, rows=rows)
    (folder / "bad.png").write_text("nope")
    r = build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True, val=0.25)
    assert r.skipped == [("bad.png", "not an image, or a format cnncli cannot read")]
    assert (tmp_path / "ds" / "skipped.csv").read_text(encoding="utf-8") == (
        'path,reason\nbad.png,"not an image, or a format cnncli cannot read"\n'
    )
    info = open_dataset(tmp_path / "ds")
    assert info.count("train") + info.count("val") == 8 and info.manifest["skipped"] == 1


def test_truncated_image_found_by_the_decode_pass_is_skipped(tmp_path, facade):
    folder, table = facade(tmp_path, n=8)
    data = (folder / "BV003.png").read_bytes()
    (folder / "BV003.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DatasetError, match=r"1 problem in the inputs; nothing was written \(BV003.png: truncated"
    ):
        build_dataset(folder, tmp_path / "ds", labels=table)
    r = build_dataset(folder, tmp_path / "ds", labels=table, skip_bad=True)
    assert [p for p, _ in r.skipped] == ["BV003.png"]
    idx = open_dataset(tmp_path / "ds").index
    assert "BV003.png" not in set(idx["path"]) and len(idx) == 7


def test_atomic_failure_mid_build_and_overwrite(tmp_path, facade):
    folder, table = facade(tmp_path, n=10)
    out = tmp_path / "ds"

    def boom(done, total):
        if done == 5:
            raise KeyboardInterrupt  # as Ctrl-C would, halfway through

    with pytest.raises(KeyboardInterrupt):
        build_dataset(folder, out, labels=table, progress=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "labels.csv"]  # no OUT, no temp
    build_dataset(folder, out, labels=table)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(
        OutputExistsError, match="already exists: choose another output or pass --overwrite"
    ):
        build_dataset(folder, out, labels=table, seed=1)
    assert (out / "manifest.json").read_bytes() == before
    build_dataset(folder, out, labels=table, seed=1, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["options"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "imgs", "labels.csv"]
    # --overwrite replaces a dataset, never the inputs or another folder
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds the inputs .*--overwrite would delete them"):
        build_dataset(folder, tmp_path, labels=table, overwrite=True)
    with pytest.raises(UsageError, match="is not a cnncli dataset .no manifest.json., so --ov"):
        build_dataset(folder, tmp_path / "notes", labels=table, overwrite=True)
    assert (folder / "BV000.png").is_file() and (tmp_path / "notes" / "keep.txt").is_file()


def test_image_modes_formats_and_majority_colour(tmp_path, write_image):
    root = tmp_path / "m"
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (8, 6, 3), np.uint8)
    write_image(root / "a" / "rgb.jpg", rgb)
    write_image(root / "a" / "l.bmp", rgb[..., 0])
    write_image(root / "a" / "la.png", np.dstack([rgb[..., 0], rgb[..., 1]]), mode=None)
    write_image(root / "a" / "cmyk.tif", rgb, mode="CMYK")
    write_image(root / "b" / "p.gif", rgb, mode="P")
    pal = Image.fromarray(rgb).convert("P")
    pal.info["transparency"] = 0  # palette index 0 transparent: kept as alpha
    pal.save(root / "a" / "pt.png", transparency=0)
    write_image(root / "b" / "w.webp", rgb, lossless=True)
    i16 = Image.fromarray((rng.integers(0, 65536, (8, 6))).astype(np.uint16))
    i16.save(root / "b" / "deep.png")
    rotated = Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8))  # 8 wide, 6 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: shown 6 wide, 8 high
    rotated.save(root / "b" / "exif.jpg", exif=exif)
    r = build_dataset(root, tmp_path / "ds", val=0.0)
    assert any(n.startswith("colour: rgb (the mode most images have: rgb 5,") for n in r.notes)
    info = open_dataset(tmp_path / "ds")
    assert info.image.shape == (8, 6, 3)
    recs = {rec.path: rec.image for rec in iter_records(info, "train")}
    assert len(recs) == 9
    modes = {p.name: probe_image(p)[2] for p in root.rglob("*.*")}
    assert modes == {
        "rgb.jpg": "rgb",
        "l.bmp": "grayscale",
        "la.png": "rgba",
        "cmyk.tif": "rgb",
        "pt.png": "rgba",
        "p.gif": "rgb",
        "w.webp": "rgb",
        "deep.png": "grayscale",
        "exif.jpg": "rgb",
    }
    assert probe_image(root / "b" / "exif.jpg")[:2] == (8, 6)  # orientation applied to the size
    for path, img in recs.items():  # the very pixels cnncli.images gives predict and activations
        np.testing.assert_array_equal(img, load_image(root / path, info.image))
    # --color and --size with --fit, png records
    build_dataset(
        root,
        tmp_path / "g",
        val=0.0,
        color="grayscale",
        size="4x4",
        fit="crop",
        record_format="png",
    )
    g = open_dataset(tmp_path / "g")
    assert g.image == ImageSpec(4, 4, "grayscale", "crop") and g.encoding == "png"
    for rec in iter_records(g, "train"):
        np.testing.assert_array_equal(rec.image, load_image(root / rec.path, g.image))


def test_mixed_sizes_ask_for_size(tmp_path, folders, write_image):
    root = folders(tmp_path, {"a": 2, "b": 2})
    write_image(root / "b" / "big.png", np.zeros((9, 7, 3), np.uint8))
    with pytest.raises(UsageError) as e:  # each size names the first file that has it
        build_dataset(root, tmp_path / "ds")
    assert str(e.value) == (
        "the images differ in size: 5x5 in 4 images (first a/0.png), 9x7 in 1 (b/big.png): "
        "choose one with --size HxW (and --fit stretch|crop|pad)"
    )
    r = build_dataset(root, tmp_path / "ds", size="5x5", val=0.0)
    assert sum(r.counts["train"].values()) == 5


def test_unused_files_reported(tmp_path, facade):
    folder, table = facade(
        tmp_path, n=6, rows=[f"{i},BV{i:03d}.png,{KOREAN[i % 2]},{i % 2}" for i in range(4)]
    )
    r = build_dataset(folder, tmp_path / "ds", labels=table, val=0.0)
    assert r.unused == ["BV004.png", "BV005.png"]
    assert "2 image files in the folder are not in the table: BV004.png, BV005.png" in r.notes
    assert open_dataset(tmp_path / "ds").count("train") == 4


def test_pool_gives_the_same_bytes_as_one_process(tmp_path, folders):
    root = folders(tmp_path, {"a": 6, "b": 6}, size=(40, 40))
    from cnncli.datasets import workers

    old, workers.POOL_MIN_PIXELS = workers.POOL_MIN_PIXELS, 0
    try:
        build_dataset(root, tmp_path / "pool", workers=2, shard_size="10KB", val=0.0, size="40x40")
    finally:
        workers.POOL_MIN_PIXELS = old
    build_dataset(root, tmp_path / "one", workers=1, shard_size="10KB", val=0.0, size="40x40")
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "pool").iterdir())
    # 12 records of 4.8 KB in 10 KB: 6 stable-shard buckets (a hash of the path chooses)
    assert "train-00005-of-00006.tfrecord" in names
    for n in names:
        assert (tmp_path / "one" / n).read_bytes() == (tmp_path / "pool" / n).read_bytes()


def test_open_dataset_errors(tmp_path, facade):
    folder, table = facade(tmp_path, n=6)
    ds = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"dataset folder .*ds not found"):
        open_dataset(ds)
    (tmp_path / ".ds.partial-1-abc").mkdir()
    with pytest.raises(
        DatasetError, match=r"is incomplete: a build was interrupted \(it left .ds.partial-1-abc\)"
    ):
        open_dataset(ds)
    with pytest.raises(DatasetError, match="temporary folder of an interrupted build"):
        open_dataset(tmp_path / ".ds.partial-1-abc")
    with pytest.raises(DatasetError, match=r"is not a cnncli dataset \(no manifest.json\)"):
        open_dataset(folder)
    build_dataset(folder, ds, labels=table)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["format_version"] = 99
    (ds / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="has format version 99, which this cnncli"):
        open_dataset(ds)
    manifest["format_version"] = 1
    (ds / "manifest.json").write_text(json.dumps(manifest))
    (ds / "val-00000-of-00001.tfrecord").unlink()
    with pytest.raises(
        DatasetError,
        match="incomplete: shard val-00000-of-00001.tfrecord of split 'val' is missing",
    ):
        open_dataset(ds)


def test_bad_options():
    with pytest.raises(UsageError, match="leave nothing to train on"):
        build_dataset(".", "x", val=0.5, test=0.5)
    with pytest.raises(UsageError, match="unknown record format 'jpeg'"):
        build_dataset(".", "x", record_format="jpeg")
    assert parse_shard_size("64MB") == ("bytes", 64 << 20) and parse_shard_size(500) == (
        "images",
        500,
    )
    with pytest.raises(UsageError, match="bad shard size"):
        parse_shard_size("lots")
