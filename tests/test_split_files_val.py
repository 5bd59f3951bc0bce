"""`--split-files train.txt,test.txt --val F`: the val split carved out of the train list,
stratified and seeded, the test list left whole; and a run on a dataset without a val split
says at its start what best.keras, early stop and the checkpoint names follow."""

from __future__ import annotations

import json
from collections import Counter

from cnncli.datasets.store import open_dataset


def write_list(path, names):
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


def test_val_is_carved_out_of_the_train_list(cli, tmp_path, tiny):
    images = tiny.make_images(tmp_path / "in", ["circle", "square"], per_class=15, size=(4, 4))
    train = write_list(
        tmp_path / "train.txt", [f"{c}/{i}.png" for c in ("circle", "square") for i in range(10)]
    )
    test = write_list(
        tmp_path / "test.txt", [f"{c}/{i}.png" for c in ("circle", "square") for i in range(10, 15)]
    )
    r = cli(
        "dataset",
        "build",
        images,
        "-o",
        tmp_path / "ds",
        "--split-files",
        f"{train},{test}",
        "--val",
        "0.2",
        "--json",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["counts"] == {
        "train": {"circle": 8, "square": 8},
        "val": {"circle": 2, "square": 2},
        "test": {"circle": 5, "square": 5},
    }
    info = open_dataset(tmp_path / "ds")
    splits = dict(zip(info.index["path"], info.index["split"], strict=True))
    assert all(
        splits[f"{c}/{i}.png"] == "test" for c in ("circle", "square") for i in range(10, 15)
    )
    assert Counter(splits[f"circle/{i}.png"] for i in range(10)) == {"train": 8, "val": 2}
    assert info.manifest["options"]["val"] == 0.2
    again = cli(
        "dataset",
        "build",
        images,
        "-o",
        tmp_path / "ds2",
        "--split-files",
        f"{train},{test}",
        "--val",
        "0.2",
        "--json",
    )
    info2 = open_dataset(tmp_path / "ds2")
    assert again.exit_code == 0 and list(info2.index["split"]) == list(info.index["split"])
    assert any("val: --val 0.2 of the train list, stratified" in n for n in data["notes"])


def test_a_run_without_val_says_what_it_chooses_by(tmp_path, tiny):
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    class Events:
        begun: dict = {}

        def train_begin(self, info):
            self.begun = info

        def __getattr__(self, name):
            return lambda *a, **k: None

    ds = tiny.build(
        tiny.make_images(tmp_path / "img", tiny.FACADE), tmp_path / "ds", val=0.0, test=0.25
    )
    events = Events()
    train(
        ds,
        tmp_path / "run",
        arch="tiny",
        events=events,
        options=TrainOptions(epochs=1, batch_size=8, early_stop=2),
    )
    assert (
        "the dataset has no val split: best.keras is picked by the training loss, early stop "
        "watches it, and checkpoints are named checkpoints/save-{epoch:02d}-{loss:.4f}.keras; "
        "to choose by unseen images, build it with --val 0.2 (with --split-files too: carved "
        "out of the train list)"
    ) in events.begun["notes"]
