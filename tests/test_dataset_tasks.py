"""`dataset build --task multilabel|regression`: what the manifest, the records, `info`,
`preview` and the errors say, on the bundled sample data (docs/FORMAT.md, "Tasks")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from docs_pages import example_commands

from cnncli.datasets.build import build_dataset
from cnncli.datasets.labels import LabelRow
from cnncli.datasets.store import Target, iter_records, open_dataset
from cnncli.datasets.stratify import multilabel_splits, regression_splits

REPO = Path(__file__).resolve().parents[1]
LABELS = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_data):
    """The bundled multi-label set (two ways) and façade measures, built once."""
    base = tmp_path_factory.mktemp("tasks")
    multi, facade = sample_data / "multishapes", sample_data / "facade"
    out = {"base": base}
    out["tags"] = build_dataset(
        multi,
        base / "tags",
        labels=multi / "labels.csv",
        task="multilabel",
        label_col="tags",
        label_delim=";",
        workers=1,
    )
    out["cols"] = build_dataset(
        multi,
        base / "cols",
        labels=multi / "labels.csv",
        task="multilabel",
        label_cols="circle,square,triangle",
        workers=1,
    )
    out["reg"] = build_dataset(
        facade,
        base / "reg",
        labels=facade / "measures.csv",
        task="regression",
        target_cols=["brightness", "wall"],
        workers=1,
    )
    return out


def test_multilabel_manifest_counts_and_records(built, sample_data):
    table = pd.read_csv(sample_data / "multishapes" / "labels.csv", keep_default_na=False)
    m = built["tags"].manifest
    assert (m["format_version"], m["task"]) == (2, "multilabel")
    assert [c["name"] for c in m["classes"]] == LABELS
    totals = {n: sum(m["label_counts"][s][n] for s in m["label_counts"]) for n in LABELS}
    assert totals == table[LABELS].sum().to_dict() == {"circle": 60, "square": 61, "triangle": 61}
    assert sum(m["unlabeled"].values()) == (table["tags"] == "").sum() == 4
    assert {s: v["count"] for s, v in m["splits"].items()} == {"train": 80, "val": 20}
    co = np.array(m["cooccurrence"])
    assert co.tolist() == co.T.tolist()
    assert list(np.diag(co)) == [m["label_counts"]["train"][n] for n in LABELS]
    # every label reaches every split, in about the asked fraction
    for n in LABELS:
        assert 10 <= m["label_counts"]["val"][n] <= 14, n
    info = open_dataset(built["base"] / "tags")
    assert (info.task, info.label_names, info.targets, info.output_size) == (
        "multilabel",
        LABELS,
        [],
        3,
    )
    by_name = {r.image: r for r in table.itertuples()}
    for rec in iter_records(info, "val"):
        row = by_name[rec.path]
        assert rec.label.dtype == np.float32
        assert rec.label.tolist() == [float(getattr(row, n)) for n in LABELS], rec.path
    index = pd.read_csv(built["base"] / "tags" / "index.csv", keep_default_na=False)
    assert set(index["class_name"]) >= {"circle;triangle", "circle;square;triangle", ""}


def test_label_columns_give_the_same_dataset_as_tags(built):
    a, b = built["tags"].manifest, built["cols"].manifest
    for key in ("label_counts", "unlabeled", "cooccurrence", "classes", "splits"):
        assert a[key] == b[key], key
    index = [(built["base"] / name / "index.csv").read_text() for name in ("tags", "cols")]
    assert index[0] == index[1]


def test_regression_manifest_and_records(built, sample_data):
    table = pd.read_csv(sample_data / "facade" / "measures.csv")
    m = built["reg"].manifest
    assert (m["format_version"], m["task"], m["classes"]) == (2, "regression", [])
    index = pd.read_csv(built["base"] / "reg" / "index.csv").merge(
        table, left_on="path", right_on="image"
    )
    train = index[index["split"] == "train"]
    assert len(train) == 32 and len(index) == 40
    for t, name in zip(m["targets"], ["brightness", "wall"], strict=True):
        assert t["name"] == name
        assert t["mean"] == pytest.approx(train[name].mean())
        assert t["std"] == pytest.approx(train[name].std(ddof=0))  # population std, train
        assert (t["min"], t["max"]) == (table[name].min(), table[name].max())
        assert sum(m["target_histograms"][name]["counts"]) == 40
    info = open_dataset(built["base"] / "reg")
    assert info.output_size == 2 and isinstance(info.targets[0], Target)
    values = dict(zip(table["image"], table[["brightness", "wall"]].to_numpy(), strict=True))
    for rec in iter_records(info, "train"):
        assert rec.label.dtype == np.float32 and rec.label.shape == (2,)
        np.testing.assert_allclose(rec.label, values[rec.path], rtol=1e-6)
    # stratified on bins of brightness: both splits hold brick-dark and marble-light walls
    val = index[index["split"] == "val"]["brightness"]
    assert (val < 150).sum() >= 3 and (val > 150).sum() >= 3


def test_same_seed_same_bytes_other_seed_other_split(built, sample_data, tmp_path):
    facade = sample_data / "facade"
    kw = dict(labels=facade / "measures.csv", task="regression", target_cols=["wall"], workers=1)
    build_dataset(facade, tmp_path / "a", seed=3, **kw)
    build_dataset(facade, tmp_path / "b", seed=3, **kw)
    build_dataset(facade, tmp_path / "c", seed=4, **kw)
    files = [(tmp_path / x / "index.csv").read_bytes() for x in "abc"]
    assert files[0] == files[1] != files[2]
    manifest = [(tmp_path / x / "manifest.json").read_bytes() for x in "ab"]
    assert manifest[0] == manifest[1]


def test_one_value_target_stores_std_one_with_a_note(tmp_path, write_image):
    for i in range(6):
        write_image(tmp_path / "img" / f"{i}.png", np.full((4, 4, 3), i * 20, np.uint8))
    (tmp_path / "t.csv").write_text("image,h\n" + "".join(f"{i}.png,2.5\n" for i in range(6)))
    r = build_dataset(
        tmp_path / "img",
        tmp_path / "ds",
        labels=tmp_path / "t.csv",
        task="regression",
        target_cols="h",
        workers=1,
    )
    assert r.manifest["targets"][0]["std"] == 1.0
    assert any(
        n.startswith("warning: target 'h' has one value in the train split (std 0)")
        for n in r.notes
    )


def test_version_one_datasets_open_as_classify(tmp_path, write_image):
    for c in ("a", "b"):
        for i in range(4):
            write_image(tmp_path / "img" / c / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
    r = build_dataset(tmp_path / "img", tmp_path / "ds", val=0.25, workers=1)
    assert (r.manifest["format_version"], r.manifest["task"]) == (1, "classify")
    path = tmp_path / "ds" / "manifest.json"
    m = json.loads(path.read_text())
    del m["task"]  # as every dataset built before tasks
    path.write_text(json.dumps(m))
    info = open_dataset(tmp_path / "ds")
    assert (info.task, info.label_names, info.targets, info.output_size) == ("classify", [], [], 2)
    assert isinstance(next(iter_records(info, "train")).label, int)


# ------------------------------------------------------------------------------ the CLI
def test_info_shows_labels_cooccurrence_and_histograms(built, cli):
    result = cli("dataset", "info", built["base"] / "tags")
    assert result.exit_code == 0, result.output
    assert re.search(r"unlabeled\s+│\s+2\s+│\s+2\s+│\s+4", result.stdout)
    assert "labels together (train split)" in result.stdout
    result = cli("dataset", "info", built["base"] / "reg")
    assert "targets (mean and std of the train split)" in result.stdout
    assert re.search(r"brightness:\n\s+99\.8 to 113\.1 │█+ +6\n", result.stdout)
    data = json.loads(cli("dataset", "info", built["base"] / "reg", "--json").stdout)
    assert data["task"] == "regression" and data["images"] == {"train": 32, "val": 8}
    assert [t["name"] for t in data["targets"]] == ["brightness", "wall"]
    data = json.loads(cli("dataset", "info", built["base"] / "tags", "--json").stdout)
    assert data["label_counts"]["val"] == {"circle": 12, "square": 12, "triangle": 12}
    assert len(data["cooccurrence"]) == 3 and data["unlabeled"] == {"train": 2, "val": 2}


def test_preview_captions_carry_labels_and_values(built, tmp_path, monkeypatch):
    import cnncli.drawing.sheets as sheets
    from cnncli.datasets.preview import preview_sheet

    seen = []
    real = sheets.contact_sheet
    monkeypatch.setattr(
        sheets, "contact_sheet", lambda items, **kw: seen.append(items) or real(items, **kw)
    )
    r = preview_sheet(built["base"] / "tags", tmp_path / "m.png", per_class=3)
    assert r["counts"] == {"circle": 3, "square": 3, "triangle": 3, "(no label)": 2}
    captions = [c for _img, c in seen[0] if c]
    assert "(no label)" in captions and all(c.startswith("circle") for c in captions[:3])
    assert any(";" in c for c in captions)
    preview_sheet(built["base"] / "reg", tmp_path / "r.png", per_class=2)
    captions = [c for _img, c in seen[1] if c]
    assert captions and all(re.fullmatch(r"brightness=[\d.]+\nwall=[\d.]+", c) for c in captions)


BAD = [
    (
        ["--task", "multilabel", "--label-col", "tag"],
        "multishapes/labels.csv",
        "--label-col 'tag' is not a column of",
        "did you mean 'tags'?",
    ),
    (
        ["--task", "multilabel", "--label-col", "tags", "--label-delim", ","],
        "multishapes/labels.csv",
        "--label-delim ',' splits no cell of column 'tags'",
        "pass --label-delim ';'",
    ),
    (
        ["--task", "regression", "--target-col", "brightnes"],
        "facade/measures.csv",
        "--target-col 'brightnes' is not a column",
        "did you mean 'brightness'?",
    ),
    (
        ["--task", "regression", "--target-col", "type"],
        "facade/labels.csv",
        "--target-col 'type' of",
        "holds text, not numbers ('대리석' on line 2)",
    ),
    (
        ["--task", "regression", "--label-col", "y"],
        "facade/labels.csv",
        "--task regression reads numbers from --target-col, not --label-col",
        "--target-col COL",
    ),
    (
        ["--label-cols", "circle"],
        "multishapes/labels.csv",
        "--label-cols goes with --task multilabel",
        "add --task multilabel",
    ),
]


@pytest.mark.parametrize(("args", "table", "message", "hint"), BAD)
def test_bad_input_is_one_line_and_writes_nothing(
    cli, sample_data, tmp_path, args, table, message, hint
):
    images = sample_data / table.split("/")[0]
    result = cli(
        "dataset", "build", images, "--labels", sample_data / table, *args, "-o", tmp_path / "out"
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and hint in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_label_in_one_row_is_refused(cli, sample_data, tmp_path):
    images = sample_data / "multishapes"
    (tmp_path / "t.csv").write_text(
        "image,tags\nmulti_000.png,a;b\nmulti_001.png,a;b\nmulti_002.png,b;odd\n"
    )
    result = cli(
        "dataset",
        "build",
        images,
        "--labels",
        tmp_path / "t.csv",
        "--task",
        "multilabel",
        "--label-col",
        "tags",
        "-o",
        tmp_path / "out",
    )
    assert result.exit_code == 2
    assert "label 'odd' appears in only one row (line 4 of" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_target_values_are_bad_rows_with_lines(sample_data, tmp_path):
    from cnncli.errors import DatasetError

    names = sorted(p.name for p in (sample_data / "multishapes").glob("*.png"))[:20]
    values = ["1.5", "x", "inf", "", *(str(i) for i in range(16))]
    (tmp_path / "t.csv").write_text(
        "image,v\n" + "".join(f"{n},{v}\n" for n, v in zip(names, values, strict=True))
    )
    with pytest.raises(DatasetError) as e:
        build_dataset(
            sample_data / "multishapes",
            tmp_path / "out",
            labels=tmp_path / "t.csv",
            task="regression",
            target_cols="v",
            workers=1,
        )
    assert e.value.problems == [
        (names[1], "line 3: target 'v' value 'x' is not a number"),
        (names[2], "line 4: target 'v' value 'inf' is not a finite number"),
        (names[3], "line 5: no value for target 'v'"),
    ]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ splits
def _rows(labels: list[list[int]]) -> list[LabelRow]:
    return [LabelRow(f"{i}.png", f"{i}.png", hot, "", None, i + 2) for i, hot in enumerate(labels)]


def test_multilabel_split_reaches_every_split_where_it_can():
    rng = np.random.default_rng(0)
    hot = (rng.random((200, 4)) < [0.5, 0.3, 0.05, 0.0]).astype(int).tolist()
    hot[0][3] = hot[1][3] = 1  # a rare label: two rows, one for train and one for val
    splits, notes = multilabel_splits(_rows(hot), list("abcd"), 0.2, 0.1, seed=1)
    arr = np.array(hot)
    for k in range(3):
        per = {
            s: arr[[i for i, x in enumerate(splits) if x == s], k].sum()
            for s in ("train", "val", "test")
        }
        assert min(per.values()) >= 1, (k, per)
        assert per["val"] == pytest.approx(0.2 * arr[:, k].sum(), abs=2)
    assert sorted(splits[:2]) == ["train", "val"]
    assert notes == ["label 'd' (2 rows) cannot reach every split: none in test"]
    assert splits.count("val") == pytest.approx(40, abs=3)
    assert multilabel_splits(_rows(hot), list("abcd"), 0.2, 0.1, seed=1)[0] == splits
    assert multilabel_splits(_rows(hot), list("abcd"), 0.2, 0.1, seed=2)[0] != splits


def test_regression_split_is_stratified_on_bins():
    values = np.linspace(0, 100, 100)
    rows = [LabelRow(f"{i}", f"{i}", [float(v)], "", None, 0) for i, v in enumerate(values)]
    splits = regression_splits(rows, 0.2, 0.0, seed=0)
    val = values[[s == "val" for s in splits]]
    assert len(val) == 20
    assert np.histogram(val, bins=10, range=(0, 100))[0].tolist() == [2] * 10


# ------------------------------------------------------------------------------ docs
def test_docs_task_examples_run_as_written(cli, tmp_path, monkeypatch):
    """docs/tasks.md's dataset examples (and any other page's `--task` ones), in order."""
    lines = [
        words
        for words in example_commands("dataset")
        if "--task" in words or any(a.startswith(("data/multi", "data/facade-m")) for a in words)
    ]
    assert sum("--task" in w for w in lines) >= 3
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data")
    monkeypatch.chdir(tmp_path)
    for words in lines:
        result = cli(*words)
        assert result.exit_code == 0, (words, result.output)
    assert (tmp_path / "data" / "multishapes" / "manifest.json").is_file()
