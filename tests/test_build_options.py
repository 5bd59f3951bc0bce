"""`BuildOptions`: the one home of `dataset build`'s options: the CLI reads its defaults from
it, its `checked()` refuses a bad value before anything is read, and the manifest's options
are written from it."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from cnncli.datasets.build import build_dataset
from cnncli.datasets.options import BuildOptions
from cnncli.errors import UsageError

# CLI parameter -> BuildOptions field, where the names differ
CLI_NAMES = {"target_col": "target_cols"}
NOT_OPTIONS = {"images_dir", "out", "json_out"}  # what the command does with the result


def test_the_cli_takes_every_option_and_its_default_from_build_options():
    from cnncli.cli.dataset import build

    params = {
        CLI_NAMES.get(name, name): p.default
        for name, p in inspect.signature(build).parameters.items()
        if name not in NOT_OPTIONS
    }
    params["stable_shards"] = not params.pop("seeded_shards")  # the flag says the opposite
    fields = {f.name: f.default for f in dataclasses.fields(BuildOptions)}
    assert set(params) == set(fields)
    for name, default in fields.items():
        assert params[name] == default, name


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"val": 1.5}, "--val must be a fraction"),
        ({"val": 0.5, "test": 0.5}, "leave nothing to train on"),
        ({"color": "cmyk"}, "unknown colour 'cmyk'"),
        ({"fit": "squash"}, "unknown fit 'squash'"),
        ({"record_format": "jpeg"}, "unknown record format 'jpeg'"),
        ({"shard_size": "lots"}, "shard"),
        ({"update": True, "overwrite": True}, "--update and --overwrite exclude each other"),
        ({"task": "multilabel"}, "multilabel"),
    ],
)
def test_checked_refuses_a_bad_option_in_one_line(options, said):
    with pytest.raises(UsageError) as e:
        BuildOptions(**options).checked()
    assert said in e.value.message and "\n" not in e.value.message


def test_checked_fills_in_the_defaults(tmp_path):
    lists = [tmp_path / "train.txt", tmp_path / "val.txt"]
    done = BuildOptions(split_files=",".join(map(str, lists))).checked()
    assert (done.split_files, done.val, done.test) == ({"train": lists[0], "val": lists[1]}, 0, 0)
    again = BuildOptions(split_files={"train": lists[0], "val": lists[1]}).checked()
    assert again.split_files == done.split_files  # a dict, as checked() gives it, is read too
    o = BuildOptions(classes="a, b", size="6x5").checked()
    assert (o.val, o.test, o.classes, o.size, o.shard_limit) == (
        0.2,
        0.0,
        ["a", "b"],
        (6, 5),
        ("bytes", 64 * 2**20),
    )


def test_a_build_from_options_equals_one_from_keywords(tmp_path, write_image):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        for j in range(6):
            write_image(
                tmp_path / "cls" / cls / f"{j}.png", rng.integers(0, 256, (5, 5, 3), np.uint8)
            )
    o = BuildOptions(val=0.34, seed=3, shard_size=4)
    from_options = build_dataset(tmp_path / "cls", tmp_path / "one", o)
    from_keywords = build_dataset(
        tmp_path / "cls", tmp_path / "two", val=0.34, seed=3, shard_size=4
    )
    one = (tmp_path / "one" / "manifest.json").read_bytes()
    assert one == (tmp_path / "two" / "manifest.json").read_bytes()
    options = json.loads(one)["options"]
    assert (options["val"], options["seed"], options["shard_size"]) == (0.34, 3, 4)
    assert from_options.counts == from_keywords.counts
    # keywords given beside options replace their values
    build_dataset(tmp_path / "cls", tmp_path / "three", o, seed=4)
    assert json.loads((tmp_path / "three" / "manifest.json").read_text())["options"]["seed"] == 4
    with pytest.raises(TypeError):
        build_dataset(tmp_path / "cls", tmp_path / "four", no_such_option=1)
