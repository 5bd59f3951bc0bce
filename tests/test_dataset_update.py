"""`dataset build` (stable shards, the default) and `--update`: an update after adding, removing,
relabelling and re-encoding images equals a fresh build given the same splits and shard
counts, rewrites only the shards that changed (the others keep their bytes and mtimes),
and refuses a dataset built with other options, or a folder that is not such a dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from cnncli.cli.main import app
from cnncli.datasets.build import build_dataset
from cnncli.datasets.store import iter_records, open_dataset
from cnncli.errors import DatasetError, UsageError

CLASSES = ["brick", "marble", "stone"]


def _image(write_image, path, seed):
    arr = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    write_image(path, arr)


def _table(path, rows):
    path.write_text("image,type\n" + "".join(f"{n},{c}\n" for n, c in rows), encoding="utf-8")


@pytest.fixture
def photos(tmp_path, write_image):
    """60 tiny photos (20 per class) and their table."""
    folder = tmp_path / "imgs"
    rows = []
    for i in range(60):
        _image(write_image, folder / f"p{i:03d}.png", i)
        rows.append((f"p{i:03d}.png", CLASSES[i % 3]))
    table = tmp_path / "labels.csv"
    _table(table, rows)
    return folder, table, rows


def _state(ds):
    """{shard name: (bytes, mtime_ns, inode)} of a dataset folder."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
        for p in sorted(ds.glob("*.tfrecord"))
    }


def _build(folder, table, out, **kw):
    return build_dataset(
        folder,
        out,
        labels=table,
        image_col="image",
        label_col="type",
        classes=CLASSES,
        val=0.2,
        test=0.1,
        seed=3,
        shard_size=4,
        **kw,
    )


def test_update_equals_fresh_build_and_keeps_untouched_shards(tmp_path, photos, write_image):
    folder, table, rows = photos
    ds = tmp_path / "ds"
    first = _build(folder, table, ds)  # stable shards: the default
    buckets = first.manifest["sharding"]["buckets"]
    assert buckets == {"train": 11, "val": 3, "test": 2}  # 42/4, 12/4, 6/4 rounded up
    before = _state(ds)
    # add 2 photos, remove 1, relabel 1, re-encode 1 (new pixels, same name)
    for i in (60, 61):
        _image(write_image, folder / f"p{i:03d}.png", 1000 + i)
    rows = [r for r in rows if r[0] != "p005.png"]
    rows = [(n, "stone" if n == "p010.png" else c) for n, c in rows]
    rows += [("p060.png", "brick"), ("p061.png", "marble")]
    _image(write_image, folder / "p020.png", 999)
    _table(table, rows)
    old_index = {line.split(",")[1]: line for line in (ds / "index.csv").read_text().splitlines()}
    updated = _build(folder, table, ds, update=True)
    after = _state(ds)

    # existing rows kept their split; the removed one is gone, the new ones are there
    new_index = (ds / "index.csv").read_text().splitlines()
    by_path = {line.split(",")[1]: line.split(",") for line in new_index[1:]}
    assert "p005.png" not in by_path and {"p060.png", "p061.png"} <= set(by_path)
    for name, line in by_path.items():
        if name in old_index:
            assert line[4] == old_index[name].split(",")[4]
    assert by_path["p010.png"][3] == "stone"

    # only the buckets of the 5 changed rows were written again; the others are the same files
    kept = [n for n in after if n in before and after[n] == before[n]]
    rewritten = [n for n in after if n not in kept]
    assert 1 <= len(rewritten) <= 5
    assert updated.shards == {"written": len(rewritten), "kept": len(kept)}
    assert len(kept) >= len(before) - 5 and len(kept) + len(rewritten) == len(after)

    # equal to a fresh build given the same splits (the updated index as split files) and
    # the same shard counts
    lists = {}
    for split in ("train", "val", "test"):
        lists[split] = tmp_path / f"{split}.txt"
        lists[split].write_text("".join(f"{n}\n" for n, v in by_path.items() if v[4] == split))
    fresh = tmp_path / "fresh"
    build_dataset(
        folder,
        fresh,
        labels=table,
        image_col="image",
        label_col="type",
        classes=CLASSES,
        seed=3,
        shard_size=4,
        split_files=",".join(str(lists[s]) for s in ("train", "val", "test")),
        stable_shards=buckets,
    )
    assert {n: b for n, (b, _, _) in _state(fresh).items()} == {
        n: b for n, (b, _, _) in after.items()
    }
    assert (fresh / "index.csv").read_bytes() == (ds / "index.csv").read_bytes()
    info, other = open_dataset(ds), open_dataset(fresh)
    for key in ("classes", "image", "splits", "sharding"):
        assert info.manifest[key] == other.manifest[key]
    # the records read back: the relabelled one has its new label, the re-encoded one its
    # new pixels
    recs = {r.path: r for s in info.splits for r in iter_records(info, s)}
    assert len(recs) == 61 and recs["p010.png"].label == 2
    from PIL import Image

    assert np.array_equal(recs["p020.png"].image, np.asarray(Image.open(folder / "p020.png")))

    # an update with nothing changed rewrites nothing
    again = _build(folder, table, ds, update=True)
    assert again.shards == {"written": 0, "kept": len(after)} and _state(ds) == after


def test_update_refuses_other_options_and_non_datasets(tmp_path, photos):
    folder, table, _ = photos
    ds = tmp_path / "ds"
    _build(folder, table, ds, stable_shards=True)
    state, index = _state(ds), (ds / "index.csv").read_bytes()
    with pytest.raises(UsageError) as e:
        _build(folder, table, ds, update=True, size="6x6", color="grayscale")
    assert (
        "size [8, 8] -> [6, 6]" in e.value.message
        and "color 'rgb' -> 'grayscale'" in e.value.message
    )
    with pytest.raises(UsageError, match="seed 3 -> 4"):
        build_dataset(
            folder,
            ds,
            labels=table,
            image_col="image",
            label_col="type",
            classes=CLASSES,
            val=0.2,
            test=0.1,
            seed=4,
            shard_size=4,
            update=True,
        )
    assert _state(ds) == state and (ds / "index.csv").read_bytes() == index
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "imgs", "labels.csv"]

    plain = tmp_path / "plain"
    _build(folder, table, plain, stable_shards=False)
    with pytest.raises(UsageError, match="in shards by position") as e:
        _build(folder, table, plain, update=True)
    assert "rebuild it once with --overwrite" in e.value.hint
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="--update: .* is not a cnncli dataset"):
        _build(folder, table, empty, update=True)
    with pytest.raises(DatasetError, match="not found"):
        _build(folder, table, tmp_path / "nowhere", update=True)
    with pytest.raises(UsageError, match="exclude each other"):
        _build(folder, table, ds, update=True, overwrite=True)

    # the CLI: exit 2 and one line
    res = CliRunner().invoke(
        app,
        [
            "dataset",
            "build",
            str(folder),
            "-o",
            str(ds),
            "--labels",
            str(table),
            "--image-col",
            "image",
            "--label-col",
            "type",
            "--classes",
            ",".join(CLASSES),
            "--val",
            "0.2",
            "--test",
            "0.1",
            "--seed",
            "3",
            "--shard-size",
            "4",
            "--update",
            "--fit",
            "crop",
        ],
    )
    assert res.exit_code == 2
    assert "fit 'stretch' -> 'crop'" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(
        app, ["dataset", "build", str(folder), "-o", str(empty), "--labels", str(table), "--update"]
    )
    assert res.exit_code == 2 and "is not a cnncli dataset" in res.output
    assert "Traceback" not in res.output and list(empty.iterdir()) == []


def test_interrupted_update_leaves_the_old_dataset_whole(
    tmp_path, photos, write_image, monkeypatch
):
    folder, table, rows = photos
    ds = tmp_path / "ds"
    _build(folder, table, ds, stable_shards=True)
    state, manifest = _state(ds), (ds / "manifest.json").read_bytes()
    _image(write_image, folder / "p060.png", 5)
    _table(table, [*rows, ("p060.png", "brick")])
    import cnncli.datasets.build as build

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "write_index", boom)
    with pytest.raises(KeyboardInterrupt):
        _build(folder, table, ds, update=True)
    assert _state(ds) == state and (ds / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "imgs", "labels.csv"]
    open_dataset(ds)


def test_json_reports_shards_written_and_kept(tmp_path, photos):
    folder, table, rows = photos
    ds = tmp_path / "ds"
    args = [
        "dataset",
        "build",
        str(folder),
        "-o",
        str(ds),
        "--labels",
        str(table),
        "--image-col",
        "image",
        "--label-col",
        "type",
        "--shard-size",
        "4",
        "--json",
    ]
    res = CliRunner().invoke(app, args)  # stable shards: the default
    assert res.exit_code == 0, res.output
    shutil.copy(folder / "p000.png", folder / "copy.png")
    _table(table, [*rows, ("copy.png", "brick")])
    res = CliRunner().invoke(app, [*args, "--update"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["shards"]["written"] == 1
    assert out["shards"]["kept"] == len(list(ds.glob("*.tfrecord"))) - 1
    # the new file is a copy of p000: it joins p000's split
    index = {
        line.split(",")[1]: line.split(",")[4]
        for line in (ds / "index.csv").read_text().splitlines()[1:]
    }
    assert index["copy.png"] == index["p000.png"]


def test_bad_new_image_stops_the_update_or_is_skipped(tmp_path, photos):
    folder, table, rows = photos
    ds = tmp_path / "ds"
    _build(folder, table, ds, stable_shards=True)
    state, index = _state(ds), (ds / "index.csv").read_bytes()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    _table(table, [*rows, ("broken.png", "brick")])
    with pytest.raises(DatasetError, match="broken.png"):
        _build(folder, table, ds, update=True)
    assert _state(ds) == state and (ds / "index.csv").read_bytes() == index
    done = _build(folder, table, ds, update=True, skip_bad=True)
    assert [p for p, _ in done.skipped] == ["broken.png"]
    assert done.shards["written"] == 0 and _state(ds) == state
    assert (ds / "index.csv").read_bytes() == index


def test_update_of_a_dataset_an_older_cnncli_built_says_to_rebuild_once(tmp_path, photos):
    """The committed v1 dataset (tests/fixtures/formats: shards by position, no "sharding"
    in its manifest) is still read, and --update on it is one line saying what to do."""
    from pathlib import Path

    folder, table, _ = photos
    old = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "fixtures" / "formats" / "v1" / "ds-classify", old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    assert "sharding" not in open_dataset(old).manifest
    res = CliRunner().invoke(app, ["dataset", "build", str(folder), "-o", str(old), "--update"])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.strip()]
    assert "in shards by position" in line and "rebuild it once with --overwrite" in line
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
