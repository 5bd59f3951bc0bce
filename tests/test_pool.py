"""`cnncli pool` and the pooling engine, against the course's example and a direct reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnncli.errors import UsageError
from cnncli.filters import pool


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Outputs without -o/--out-dir land in the current folder: here, tmp_path."""
    monkeypatch.chdir(tmp_path)


COURSE = np.array([[3, 2, 2], [4, 2, 4], [5, 1, 4]])


def test_course_example():
    assert pool(COURSE, "max", 2, 1).tolist() == [[4, 4], [5, 4]]
    assert pool(COURSE, "min", 2, 1).tolist() == [[2, 2], [1, 1]]
    assert pool(COURSE, "avg", 2, 1).tolist() == [[2.75, 2.5], [3.0, 2.75]]


def test_same_padding_never_counts_padded_cells():
    # tf.nn.pool SAME, size 2 stride 2 on 3x3: windows at the edge hold 2 or 1 real cells
    assert pool(COURSE, "max", 2, 2, "same").tolist() == [[4, 4], [5, 4]]
    assert pool(COURSE, "avg", 2, 2, "same").tolist() == [[2.75, 3.0], [3.0, 4.0]]
    assert pool(COURSE, "min", 2, 2, "same").tolist() == [[2, 2], [1, 4]]
    assert pool(COURSE, "max", 2, 1, "same").tolist() == [[4, 4, 4], [5, 4, 4], [5, 4, 4]]


def brute(x, op, size, stride):
    f = {"max": np.max, "min": np.min, "avg": np.mean}[op]
    oh, ow = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
    return np.array(
        [
            [
                f(x[i * stride : i * stride + size, j * stride : j * stride + size], axis=(0, 1))
                for j in range(ow)
            ]
            for i in range(oh)
        ]
    )


@pytest.mark.parametrize("op", ["max", "avg", "min"])
@pytest.mark.parametrize("size, stride", [(2, 2), (3, 1), (3, 2)])
def test_valid_matches_brute_force(op, size, stride, rng):
    x = rng.integers(0, 256, (11, 13, 3), dtype=np.uint8)
    np.testing.assert_allclose(pool(x, op, size, stride), brute(x, op, size, stride))


def test_pool_errors():
    with pytest.raises(UsageError, match="pool size must be 1 or more"):
        pool(COURSE, "max", 0)
    with pytest.raises(UsageError, match="unknown pooling op"):
        pool(COURSE, "median", 2)
    with pytest.raises(UsageError, match=r"the pool size \(4\) is larger than the input \(3\)"):
        pool(COURSE, "max", 4)


def test_cli_matrix(cli):
    r = cli(
        "pool",
        "--op",
        "max",
        "--size",
        "2",
        "--stride",
        "1",
        "--matrix",
        "3,2,2;4,2,4;5,1,4",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["output"] == [[4, 4], [5, 4]]
    table = cli("pool", "--size", "2", "--stride", "1", "--matrix", "3,2,2;4,2,4;5,1,4").stdout
    assert "│ 0 │ 4 │ 4 │" in table and "│ 1 │ 5 │ 4 │" in table


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_cli_image_per_channel(cli, tmp_path, rng, mode, write_image):
    if mode == "I;16":
        arr = rng.integers(0, 65536, (10, 14), dtype=np.uint16)
        path = tmp_path / "x.png"
        Image.fromarray(arr).save(path)
    else:
        c = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, (10, 14, c), dtype=np.uint8).squeeze()
        path = write_image(tmp_path / "x.png", arr)
    r = cli("pool", "--op", "avg", "--size", "2", path)
    assert r.exit_code == 0, r.stderr
    out = Image.open(tmp_path / "x.avgpool2.png")
    assert out.mode == mode and out.size == (7, 5)
    ref = np.clip(np.rint(brute(np.asarray(Image.open(path)).astype(float), "avg", 2, 2)), 0, 65535)
    np.testing.assert_array_equal(np.asarray(out), ref)


def test_cli_bad_size_exit_2(cli, tmp_path, rng, write_image):
    path = write_image(tmp_path / "x.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    r = cli("pool", "--size", "0", path)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "error: pool size must be 1 or more, got 0: pass --size 1 or more"
    ]
