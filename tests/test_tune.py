"""cnncli tune: the space, its checks (one line, exit 2, before TensorFlow loads), the
reproducing train command, and the study folder's bad inputs. Real studies (training,
kill -9 and resume, two processes joined) are in test_tune_study.py."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from cnncli.errors import InputError, UsageError
from cnncli.training.augment import AugmentOptions
from cnncli.training.options import TrainOptions
from cnncli.tune.command import train_args
from cnncli.tune.space import (
    check_space,
    default_space,
    parse_param,
    read_space_file,
    searchable,
    trial_options,
)


def test_params_read_as_ranges_and_choices_of_trains_types():
    lr = parse_param("lr=1e-4..1e-2:log")
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-2, True)
    assert parse_param("batch-size=16,32,64").values == (16, 32, 64)
    assert parse_param("epochs=2..8").kind == "int"
    assert parse_param("augment=on,off").values == (True, False)
    assert parse_param("lr_schedule=constant,cosine").name == "lr-schedule"
    assert parse_param("arch=mnist,mnist-wide,tiny").values == ("mnist", "mnist-wide", "tiny")
    assert parse_param("rotation=0..30").kind == "float"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "lr=1e-2..1e-4",
            "--param lr=1e-2..1e-4: the range must go from low to high: write lr=1e-4..1e-2",
        ),
        (
            "batch-size=32",
            "--param batch-size=32: a choice of one value searches nothing: "
            "give two or more (batch-size=A,B), or fix it with --batch-size 32",
        ),
        (
            "batch-sise=16,32",
            "cnncli train has no searchable option --batch-sise: did you mean batch-size?",
        ),
        (
            "optimizer=adam,adamw",
            "--param optimizer: unknown value 'adamw': use some of adam, rmsprop, sgd, adadelta",
        ),
        ("batch-size=a,b", "--param batch-size: 'a' is not an int"),
        ("lr=0..1e-2:log", "--param lr=0..1e-2:log: a :log range must be above 0"),
        (
            "lr",
            "--param 'lr' is not NAME=SPACE: e.g. --param lr=1e-4..1e-2:log or --param "
            "batch-size=16,32,64",
        ),
    ],
)
def test_bad_params_say_what_is_wrong(text, message):
    with pytest.raises(UsageError) as e:
        parse_param(text)
    assert e.value.one_line() == message


def test_values_train_would_refuse_are_refused_with_the_param():
    with pytest.raises(UsageError, match=r"--param batch-size=0: --batch-size must be at least 1"):
        check_space([parse_param("batch-size=0,8")], TrainOptions())
    with pytest.raises(UsageError, match=r"--param epochs=0: --epochs must be at least 1"):
        check_space([parse_param("epochs=0..4")], TrainOptions())


def test_every_searchable_name_is_a_train_flag():
    """The names come from TrainOptions; each is an option `cnncli train` parses."""
    import typer.main

    from cnncli.cli.main import app

    train = typer.main.get_command(app).commands["train"]
    flags = {o for p in train.params for o in getattr(p, "opts", [])}
    names = {f"--{n.replace('_', '-')}" for n in searchable()}
    assert names <= flags, names - flags
    assert {"--lr", "--batch-size", "--arch", "--augment", "--lr-schedule"} <= names


def _parse_train(args: list[str]) -> tuple[dict, TrainOptions]:
    """What `cnncli train ARGS` would run with: (model source, TrainOptions)."""
    import typer.main

    from cnncli.cli.main import app
    from cnncli.cli.train_options import TRAIN_OPTION_NAMES, train_options

    assert args[:2] == ["cnncli", "train"]
    train = typer.main.get_command(app).commands["train"]
    ctx = train.make_context("train", args[2:])
    values = ctx.params
    source = {k: values[k] for k in ("arch", "spec", "from_model") if values[k] is not None}
    return source, train_options(**{k: values[k] for k in TRAIN_OPTION_NAMES})


@pytest.mark.parametrize(
    "opts",
    [
        TrainOptions(),
        TrainOptions(
            epochs=7,
            batch_size=16,
            lr=0.0031415926535897,
            lr_schedule="cosine",
            monitor="val_accuracy",
            augment=AugmentOptions.course(),
            seed=3,
        ),
        TrainOptions(
            optimizer="sgd",
            early_stop=2,
            warmup=1,
            save_best_only=False,
            augment=AugmentOptions(rotation=12.5),
            class_weight="auto",
        ),
    ],
)
def test_the_train_command_gives_back_the_trials_options(opts):
    args = train_args("data/ds", {"arch": "mnist"}, opts)
    source, parsed = _parse_train(args)
    assert source == {"arch": "mnist"}
    assert dataclasses.asdict(parsed) == dataclasses.asdict(opts)


def test_trial_options_put_the_values_in():
    opts, arch = trial_options(
        TrainOptions(epochs=3), {"lr": 0.01, "batch-size": 16, "augment": True, "arch": "tiny"}
    )
    assert (opts.lr, opts.batch_size, opts.epochs, arch) == (0.01, 16, 3, "tiny")
    assert opts.augment == AugmentOptions.course()
    opts, arch = trial_options(
        TrainOptions(augment=AugmentOptions.course()), {"augment": False, "class-weight": "none"}
    )
    assert (opts.augment, opts.class_weight, arch) == (None, None, None)


def test_space_file_reads_as_params(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("lr: 1e-4..1e-2:log\nbatch-size: [16, 32]\naugment: on,off\n")
    dims = read_space_file(f)
    assert [d.text() for d in dims] == ["lr=0.0001..0.01:log", "batch-size=16,32", "augment=on,off"]
    f.write_text("lr: 1e-2..1e-4\n")
    with pytest.raises(UsageError, match="the range must go from low to high"):
        read_space_file(f)
    f.write_text("- lr\n")
    with pytest.raises(InputError, match="must map option names to spaces"):
        read_space_file(f)


def test_default_space_depends_on_the_task_and_a_fixed_model():
    names = [d.name for d in default_space("classify", fixed_model=False)]
    assert names == ["lr", "batch-size", "lr-schedule", "augment", "arch"]
    assert [d.name for d in default_space("regression", fixed_model=True)] == [
        "lr",
        "batch-size",
        "lr-schedule",
    ]


@pytest.fixture
def dataset(tiny, tmp_path) -> Path:
    return tiny.build(tiny.make_images(tmp_path / "img", ["a", "b"], per_class=6), tmp_path / "ds")


def test_bad_input_is_one_line_exit_2_before_tensorflow(fresh_cli, dataset, tiny, tmp_path):
    from cnncli.tune.run import TuneRequest, plan_study
    from cnncli.tune.study import write_study_json

    study = tmp_path / "st"
    _, spec = plan_study(TuneRequest(dataset, study, trials=2, source={"arch": "tiny"}))
    study.mkdir()
    write_study_json(study, spec)
    other = tiny.build(
        tiny.make_images(tmp_path / "img2", ["a", "b"], per_class=5, seed=1), tmp_path / "other"
    )
    cases = [
        ["tune", dataset, "--arch", "tiny", "--param", "lr=1e-2..1e-4"],
        ["tune", dataset, "--arch", "tiny", "--param", "dropout=0.0..0.5"],
        ["tune", dataset, "--arch", "tiny", "--param", "batch-size=32"],
        ["tune", other, "--study", study, "--arch", "tiny"],
        ["tune", "--join", tmp_path / "nothing"],
        [
            "tune",
            dataset,
            "--arch",
            "tiny",
            "--study",
            tmp_path / "s2",
            "--storage",
            "sqlite:////nonexistent/folder/x.db",
        ],
        [
            "tune",
            dataset,
            "--param",
            "arch=tiny,mnist",
            "--arch",
            "tiny",
            "--study",
            tmp_path / "s3",
        ],
        ["tune", dataset, "--arch", "tiny", "--metric", "val_f1", "--study", tmp_path / "s4"],
        ["tune", dataset, "--study", study, "--arch", "tiny", "--param", "lr=1e-3..1e-2"],
        ["tune", "--join", study, "--param", "lr=1e-3..1e-2"],
        ["tune", dataset, "--arch", "tiny", "--timeout", "5x", "--study", tmp_path / "s5"],
    ]
    results, heavy = fresh_cli(cases, tmp_path)
    codes = [code for code, _ in results]
    lines = [err for _, err in results]
    assert codes == [2] * len(cases), results
    assert all("\n" not in err for err in lines), lines
    assert "the range must go from low to high: write lr=1e-4..1e-2" in lines[0]
    assert "no searchable option --dropout" in lines[1]
    assert "a choice of one value searches nothing" in lines[2]
    assert f"{study} is a study of another dataset" in lines[3]
    assert "no study to join or resume at" in lines[4] and "nothing" in lines[4]
    assert "storage sqlite:////nonexistent/folder/x.db cannot be opened" in lines[5]
    assert "--param arch searches the architecture" in lines[6]
    assert "unknown --metric 'val_f1'" in lines[7]
    assert f"{study} holds a study with another space" in lines[8]
    assert "a study keeps its own space: leave out --param/--space" in lines[9]
    assert "--timeout '5x' is not a duration: e.g. 90s, 30m or 2h" in lines[10]
    assert not (tmp_path / "s5").exists()  # nothing made for a refused command
    assert heavy == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() outside optimize
def test_trials_of_dead_processes_are_failed_and_retried_once(tmp_path):
    """A RUNNING trial whose pid is gone from this host (kill -9), and a trial stopped by
    SIGTERM, are failed and retried with their parameters; finished trials are not; a
    second process starting after does not retry them again."""
    import subprocess
    import sys

    import optuna
    from optuna.distributions import FloatDistribution

    from cnncli import claims
    from cnncli.tune.study import STUDY_NAME, open_storage, recover_trials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = open_storage(tmp_path, "sqlite")
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize")
    dist = {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    study.add_trial(optuna.create_trial(params={"lr": 1e-3}, distributions=dist, value=0.9))
    killed = study.ask(dist)
    for key, value in (("host", claims.HOST), ("pid", dead.pid)):
        killed.set_user_attr(key, value)
    alive = study.ask(dist)
    for key, value in (("host", claims.HOST), ("pid", os.getpid())):
        alive.set_user_attr(key, value)
    study.add_trial(
        optuna.create_trial(
            params={"lr": 5e-3},
            distributions=dist,
            state=optuna.trial.TrialState.FAIL,
            user_attrs={"stopped": "SIGTERM"},
        )
    )
    done = recover_trials(study, storage)
    assert done == [
        f"trial 1: its process (pid {dead.pid}) is gone; retried",
        "trial 3: stopped by SIGTERM; retried",
    ]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "RUNNING", "FAIL", "WAITING", "WAITING"]
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert [t.params["lr"] for t in waiting] == [killed.params["lr"], 5e-3]
    assert recover_trials(study, storage) == []  # already retried
