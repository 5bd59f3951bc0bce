"""cnncli.training.schedules and find_lr: the factor of each schedule, the learning rate
logged per epoch in history.csv and drawn, plateau's counters across a resume, and the
--find-lr sweep (picture, suggestion, weights put back)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from cnncli.training.find_lr import smooth, suggest, sweep_steps
from cnncli.training.schedules import lr_factor


@pytest.fixture(scope="module")
def ds(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("sched")
    return tiny.build(tiny.make_images(root / "images", ("a", "b")), root / "ds", test=0)


def _history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_schedule_factors():
    assert [lr_factor("constant", e, 4) for e in range(4)] == [1, 1, 1, 1]
    assert [lr_factor("step", e, 8) for e in range(8)] == pytest.approx(
        [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    cos = [lr_factor("cosine", e, 5, warmup=1) for e in range(5)]
    assert cos[0] == 0.5  # warm-up: (epoch + 1) / (warmup + 1)
    assert cos[1] == 1.0 and cos[1] > cos[2] > cos[3] > cos[4] > 0
    assert cos[3] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))


@pytest.mark.slow
def test_plateau_run_logs_its_rate_and_resumes_its_counters(ds, tmp_path):
    """lr 0.5 with sgd; --warmup 1; plateau (halved after 2 epochs without improvement):
    an interrupted run's resume continues the counters, equal to an uninterrupted run."""
    import keras

    from cnncli.training.events import TrainingInterrupted
    from cnncli.training.fit import resume, train
    from cnncli.training.options import TrainOptions

    class StopAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    o = TrainOptions(
        epochs=4,
        optimizer="sgd",
        lr=0.5,
        lr_schedule="plateau",
        warmup=1,
        monitor="loss",
        seed=2,
        batch_size=4,
        steps_per_execution=1,
    )
    train(ds, tmp_path / "full", arch="tiny", options=o)
    with pytest.raises(TrainingInterrupted):
        train(ds, tmp_path / "cut", arch="tiny", options=o, callbacks=[StopAt()])
    saved = json.loads((tmp_path / "cut" / "state" / "schedule-0002.json").read_text())
    assert set(saved) == {"wait", "cooldown", "best", "next_lr"}
    resume(tmp_path / "cut")
    full, cut = _history(tmp_path / "full"), _history(tmp_path / "cut")
    rates = [float(r["learning_rate"]) for r in full]
    assert rates[0] == pytest.approx(0.25)  # warm-up: half the rate
    assert rates[1] == pytest.approx(0.5)
    assert all(b in (a, a / 2) for a, b in zip(rates[1:], rates[2:], strict=False))
    assert [float(r["learning_rate"]) for r in cut] == pytest.approx(rates)
    assert [float(r["loss"]) for r in cut] == pytest.approx(
        [float(r["loss"]) for r in full], rel=1e-5
    )
    assert (tmp_path / "cut" / "history.png").is_file()


def test_a_plain_run_has_no_rate_column():
    from cnncli.training.options import TrainOptions
    from cnncli.training.transfer import uses_lr_column

    assert not uses_lr_column(TrainOptions())  # history.csv as before: no callbacks added
    assert uses_lr_column(TrainOptions(warmup=1)) and uses_lr_column(TrainOptions(backbone="x"))


def test_suggestion_is_the_steepest_fall():
    lrs = [10 ** (-6 + i * 0.25) for i in range(25)]
    loss = [
        1.0 if x < 1e-4 else (1.0 - 0.9 * math.log10(x / 1e-4) / 3 if x < 0.1 else 3.0) for x in lrs
    ]
    loss[14] -= 0.3  # the steepest fall: the step into 10 ** -2.5
    s = smooth(loss, beta=0.0)
    assert s == pytest.approx(loss)
    assert suggest(lrs, s) == pytest.approx(lrs[13])
    assert suggest(lrs, [1.0] * 25) is None
    assert sweep_steps(12, 4) == 15 and sweep_steps(10**6, 32) == 200 and sweep_steps(1, 8) == 10


@pytest.mark.slow
def test_find_lr_cli(ds, tmp_path, cli):
    out = tmp_path / "sweep.png"
    r = cli("train", ds, "--arch", "tiny", "--find-lr", "-o", out, "--batch-size", "4", "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["planned_steps"] == 15  # 12 train images, batch 4: 5 passes
    assert len(data["lrs"]) == data["steps"] <= 15
    # a sweep cut short diverged; a whole one ended, or diverged at its very last step
    assert (
        data["stopped"] == "diverged"
        if data["steps"] < 15
        else data["stopped"] in ("end", "diverged")
    )
    assert data["lrs"][0] == pytest.approx(1e-7) and data["weights_restored"] is True
    assert out.is_file() and data["plot"] == str(out)
    assert "suggested_lr" in data
    assert data["warning"].startswith(
        "the sweep had only 15 steps (12 training images: 3 "
        "batches of up to 4 a pass), too few to trust"
    )
    r = cli("train", ds, "--arch", "tiny", "--find-lr", "-o", out)
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = cli(
        "train", ds, "--arch", "tiny", "--find-lr", "-o", out, "--batch-size", "4", "--overwrite"
    )
    assert r.exit_code == 0 and "warning: the sweep had only 15 steps" in r.stderr, r.output
    assert "use --batch-size 1, or add training images" in " ".join(r.stderr.split())
