"""Multi-worker training: the cluster (TF_CONFIG, --workers), the strategy choice, the shard
split, and two real worker processes on 127.0.0.1 training `tiny` on sample_data."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from cnncli.errors import UsageError
from cnncli.training.distribute import (
    build_tf_config,
    check_shards,
    parse_workers,
    plan_strategy,
    read_tf_config,
)


# ----------------------------------------------------------------------- the cluster
def test_parse_workers_and_build_tf_config():
    workers = parse_workers("10.0.0.1:2222, node-b.lan:2223,[::1]:9")
    assert workers == ["10.0.0.1:2222", "node-b.lan:2223", "[::1]:9"]
    assert build_tf_config(workers, 1) == {
        "cluster": {"worker": workers},
        "task": {"type": "worker", "index": 1},
    }
    for bad, message in (
        ("", "--workers is empty"),
        ("10.0.0.1", "'10.0.0.1' is not host:port"),
        ("a:1,a:1", "names a worker twice"),
        ("a:70000", "'a:70000' is not host:port"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            parse_workers(bad)
    with pytest.raises(UsageError, match=r"--worker-index 2 is not in 0\.\.1"):
        build_tf_config(["a:1", "b:2"], 2)


def test_read_tf_config_ranks_the_chief_first():
    plain = {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}
    assert read_tf_config(json.dumps(plain)) == (["a:1", "b:2", "c:3"], 2)
    chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}}
    assert read_tf_config(json.dumps({**chief, "task": {"type": "chief", "index": 0}})) == (
        ["c:0", "a:1", "b:2"],
        0,
    )
    assert read_tf_config(json.dumps({**chief, "task": {"type": "worker", "index": 1}}))[1] == 2
    with pytest.raises(UsageError, match="TF_CONFIG is not a cluster description"):
        read_tf_config("{not json")
    with pytest.raises(UsageError, match="task type 'ps'"):
        read_tf_config(json.dumps({**chief, "task": {"type": "ps", "index": 0}}))
    with pytest.raises(UsageError, match="task worker 5 is not in its cluster"):
        read_tf_config(json.dumps({**plain, "task": {"type": "worker", "index": 5}}))


def test_plan_strategy_auto_and_errors():
    assert plan_strategy("auto", environ={}).kind == "one-device"
    assert not plan_strategy("auto", environ={}).explicit  # TensorFlow's default path
    assert plan_strategy("one-device", environ={}).explicit
    assert plan_strategy("mirrored", environ={}).kind == "mirrored"
    config = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    from_env = plan_strategy("auto", environ={"TF_CONFIG": json.dumps(config)})
    assert (from_env.kind, from_env.rank, from_env.num_workers, from_env.is_chief) == (
        "multi-worker",
        1,
        2,
        False,
    )
    assert from_env.tf_config is None  # TF_CONFIG is already set: left as it is
    flags = plan_strategy("auto", workers="a:1,b:2,c:3", worker_index=0, environ={})
    assert flags.is_chief and flags.num_workers == 3 and flags.source == "--workers"
    assert flags.tf_config == build_tf_config(["a:1", "b:2", "c:3"], 0)
    for kwargs, message in (
        ({"name": "multi-worker"}, "--strategy multi-worker needs the cluster"),
        ({"name": "ring"}, "unknown --strategy 'ring'"),
        ({"workers": "a:1,b:2"}, "--workers needs --worker-index"),
        ({"worker_index": 0}, "--worker-index needs --workers"),
        ({"name": "mirrored", "workers": "a:1", "worker_index": 0}, "needs --strategy multi"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            plan_strategy(environ={}, **kwargs)


def test_shard_split_by_file_and_too_few_shards(tmp_path, sample_data):
    from cnncli.datasets.build import build_dataset
    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import shard_files

    out = tmp_path / "ds"
    build_dataset(sample_data / "shapes", out, size="8x8", val=0.2, shard_size=5, workers=1)
    info = open_dataset(out)
    every = [str(p) for p in info.shard_paths("train")]
    assert len(every) >= 4
    parts = [shard_files(info, "train", 3, i) for i in range(3)]
    assert parts == [every[0::3], every[1::3], every[2::3]]
    assert sorted(sum(parts, [])) == sorted(every)  # each file read by exactly one worker
    check_shards(len(every), len(every), out)  # one file each: fine
    with pytest.raises(UsageError) as e:
        check_shards(2, 3, out)
    assert e.value.one_line() == (
        f"dataset {out} has 2 train shard file(s) for 3 workers; every worker needs at least "
        "one: build the dataset again with smaller shards, e.g. cnncli dataset build ... "
        "--shard-size N with N at most (train images / 3)"
    )


def test_cli_refuses_fewer_shards_than_workers(cli, tmp_path, sample_data):
    from cnncli.datasets.build import build_dataset

    out = tmp_path / "ds"
    build_dataset(sample_data / "shapes", out, size="8x8", val=0.2, workers=1)  # one shard
    r = cli(
        "train",
        out,
        "--arch",
        "tiny",
        "-o",
        tmp_path / "run",
        "--workers",
        "127.0.0.1:1,127.0.0.1:2",
        "--worker-index",
        "0",
    )
    assert r.exit_code == 2
    assert "has 1 train shard file(s) for 2 workers" in r.stderr
    assert "--shard-size" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------- two processes
def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _two_workers(args: list[str], tmp, timeout: float = 120) -> tuple[list[str], float]:
    """Run `cnncli train ARGS` as worker 0 and 1 of a 127.0.0.1 cluster; their stderr."""
    workers = ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))
    env = {**os.environ, "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cnncli",
                "train",
                *args,
                "--quiet",
                "--workers",
                workers,
                "--worker-index",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    errs = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
            errs.append(err)
    finally:
        for p in procs:  # a hang fails the test instead of blocking CI
            if p.poll() is None:
                p.kill()
                p.communicate()
    for i, (p, err) in enumerate(zip(procs, errs, strict=True)):
        assert p.returncode == 0, f"worker {i} exited {p.returncode}:\n{err[-3000:]}"
    return errs, time.perf_counter() - t0


def _history(run):
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_two_workers_train_resume_and_match_one_worker(tmp_path, sample_data):
    from cnncli.datasets.build import build_dataset
    from cnncli.training.fit import train
    from cnncli.training.options import TrainOptions

    ds = tmp_path / "ds"
    build_dataset(
        sample_data / "facade",
        ds,
        labels=sample_data / "facade" / "labels.csv",
        size="24x24",
        val=0.25,
        shard_size=8,
        workers=1,
    )
    every = sorted(p.name for p in ds.glob("train-*.tfrecord"))
    assert len(every) >= 2
    runs, tmp = tmp_path / "runs", tmp_path / "tmp"
    tmp.mkdir()
    run = runs / "mw"
    common = ["--lr", "0.01", "--batch-size", "4"]

    # 4 epochs on two workers, then both resume from the chief's folder up to 8
    errs, first = _two_workers(
        [str(ds), "--arch", "tiny", "-o", str(run), "--epochs", "4", *common], tmp
    )
    read = {}
    for err in errs:
        m = re.search(r"worker (\d)/2 reads train shards: (.+)", err)
        assert m, err
        read[int(m.group(1))] = m.group(2).strip().split(", ")
    assert set(read) == {0, 1}
    assert not set(read[0]) & set(read[1])  # each worker read different shards
    assert sorted(read[0] + read[1]) == every  # and together all of them
    assert "the chief (worker 0) writes" not in errs[0]
    errs, second = _two_workers(["--resume", str(run), "--epochs", "8"], tmp)

    assert [p.name for p in runs.iterdir()] == ["mw"]  # exactly one run folder
    for name in ("best.keras", "last.keras", "history.csv", "history.png", "run.json"):
        assert (run / name).is_file(), name
    assert len(list((run / "checkpoints").iterdir())) >= 1
    assert list(tmp.iterdir()) == []  # the other worker's temporary folder is gone
    meta = json.loads((run / "run.json").read_text())
    dist = meta["distribute"]
    assert (dist["strategy"], dist["num_workers"], dist["worker"]) == ("multi-worker", 2, 0)
    assert (dist["per_worker_batch"], dist["global_batch"]) == (4, 8)
    assert dist["read_shards"] == read[0] and dist["train_shards"]["1"] == read[1]
    assert meta["status"] == "finished" and meta["resumes"][0]["at_epoch"] == 4
    history = _history(run)
    assert [int(r["epoch"]) for r in history] == list(range(1, 9))
    # the val metrics of the cluster are those of the chief's model on the whole val split
    import keras

    from cnncli.datasets.store import open_dataset
    from cnncli.datasets.tfdata import make_tf_dataset

    last = keras.models.load_model(run / "last.keras")
    val = make_tf_dataset(open_dataset(ds), "val", batch_size=4)
    ev = last.evaluate(val, verbose=0, return_dict=True)
    assert ev["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-4)
    assert ev["accuracy"] == pytest.approx(history[-1]["val_accuracy"])

    # one worker, the same global batch (8) and options, in this process
    t0 = time.perf_counter()
    single = train(
        ds, tmp_path / "single", arch="tiny", options=TrainOptions(epochs=8, batch_size=8, lr=0.01)
    )
    one = time.perf_counter() - t0
    mw_acc, one_acc = history[-1]["val_accuracy"], single.history[-1]["val_accuracy"]
    print(
        f"\ntwo workers: {first:.1f}s (4 epochs) + {second:.1f}s (resume to 8), final "
        f"val_accuracy {mw_acc:.3f}; one worker in-process: {one:.1f}s (8 epochs), "
        f"val_accuracy {one_acc:.3f}"
    )
    assert history[-1]["loss"] < history[0]["loss"]  # it learned
    assert mw_acc >= one_acc - 0.2, (mw_acc, one_acc)  # and about as well as one worker
    assert mw_acc >= 0.7
