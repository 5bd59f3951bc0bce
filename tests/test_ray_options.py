"""`dataset build --engine ray`: the one-line refusals that come before any work, and the
pieces of the Ray engine that need no cluster (tests/test_ray_build.py runs a real one)."""

from __future__ import annotations

import sys

import pytest

from cnncli.datasets.ray_engine import compare_views
from cnncli.datasets.tfrecord import encode_example, frame, framed_size
from cnncli.errors import InputError


def build_args(repo, out, *more):
    return (
        "dataset",
        "build",
        repo / "sample_data/facade",
        "--labels",
        repo / "sample_data/facade/labels.csv",
        "-o",
        out,
        *more,
    )


def test_without_ray_says_how_to_install_it(cli, repo, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    r = cli(*build_args(repo, tmp_path / "ds", "--engine", "ray"))
    assert r.exit_code == 2, r.output
    assert "--engine ray needs Ray, which is not installed" in r.output
    assert "pip install 'cnncli[ray]'" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "ds").exists() and list(tmp_path.iterdir()) == []


def test_an_unreachable_cluster_is_one_line(cli, repo, tmp_path):
    r = cli(*build_args(repo, tmp_path / "ds", "--engine", "ray", "--address", "127.0.0.1:1"))
    assert r.exit_code == 2, r.output
    assert "no Ray cluster answers at 127.0.0.1:1" in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) <= 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("more", "said"),
    [
        (("--engine", "spark"), "unknown engine 'spark'"),
        (("--address", "auto"), "--address is for --engine ray"),
        (
            ("--engine", "ray", "--record-format", "png", "--seeded-shards"),
            "cuts png shards by a number of images",
        ),
        (("--engine", "ray", "--address", "nohost"), "bad Ray address 'nohost'"),
    ],
)
def test_engine_options_refused_before_work(cli, repo, tmp_path, more, said):
    r = cli(*build_args(repo, tmp_path / "ds", *more))
    assert r.exit_code == 2, r.output
    assert said in r.output
    assert list(tmp_path.iterdir()) == []


VIEW = {"host": "box2", "version": "1.0", "inputs": True, "probe": "t0ken"}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"version": "0.9"}, "node 10.0.0.2 (box2) runs cnncli 0.9, this machine 1.0"),
        ({"inputs": False}, "node 10.0.0.2 (box2) does not see the images in /data/photos"),
        ({"probe": None}, "node 10.0.0.2 (box2) does not see the output folder /data"),
    ],
)
def test_a_node_that_sees_otherwise_is_named(change, said):
    views = {"10.0.0.1": dict(VIEW, host="box1"), "10.0.0.2": {**VIEW, **change}}
    with pytest.raises(InputError) as e:
        compare_views(views, "the images in /data/photos", "/data", "t0ken", version="1.0")
    assert str(e.value.message) == said
    compare_views({"10.0.0.1": VIEW}, "the images in /data/photos", "/data", "t0ken", version="1.0")


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16_383, 16_384, 750_000, 2**21 + 5])
@pytest.mark.parametrize(
    "features",
    [
        {"index": 5, "path": "a/b.png", "label": 3},
        {"index": 2**40, "path": "x" * 200, "target": [1.5, -2.0]},
        {"index": 0, "path": "대리석/é.png", "label": [0, 1, 1]},
    ],
)
def test_a_raw_record_size_is_known_before_decoding(n, features):
    """The Ray engine cuts the shards where a local build does from these sizes."""
    assert framed_size(features, "image", n) == len(
        frame(encode_example({**features, "image": bytes(n)}))
    )
