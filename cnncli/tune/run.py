"""`cnncli tune`: an Optuna study over the options of `cnncli train`, each trial a run folder
trained by cnncli.training.fit.train (the code `cnncli train` runs), resumable after Ctrl-C,
SIGTERM or kill -9, and shared by several processes (`--join`).

`run_tune(request)` checks everything that needs neither TensorFlow nor Optuna first (the
space, the fixed options, the dataset, the study folder), then runs trials one at a time
until the study holds `trials` finished or pruned trials (a study-wide total: joined
processes stop together), and returns a TuneResult (cnncli.tune.result).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli import claims
from cnncli.datasets.store import open_dataset
from cnncli.errors import CnnError, InputError, ModelError, UsageError
from cnncli.training.events import (
    Terminated,
    TrainEvents,
    TrainingInterrupted,
    TrainingTerminated,
    sigterm_interrupts,
)
from cnncli.training.options import TASK_METRICS, TrainOptions, model_source, monitor_mode
from cnncli.tune import study as folder
from cnncli.tune.command import train_args
from cnncli.tune.space import Dim, check_space, combine, default_space, trial_options

if TYPE_CHECKING:
    from cnncli.tune.result import TuneResult

PRUNERS = ("median", "hyperband", "none")
MAX_FAILURES = 3  # trials in a row that fail with an error: the study stops, saying why


@dataclass
class TuneRequest:
    dataset_dir: Path | None
    study_dir: Path | None = None  # None: studies/<dataset folder name>
    trials: int | None = None  # the study's total (None: 20 new, or the study's own)
    timeout_s: float | None = None  # this process stops starting trials after this
    dims: list[Dim] = field(default_factory=list)  # empty: the default space (new study)
    pruner: str = "median"
    metric: str | None = None  # None: val_accuracy (classify), val_loss (others)
    storage: str | None = None  # None/sqlite, journal, or a database URL
    options: TrainOptions = field(default_factory=TrainOptions)  # fixed for every trial
    source: dict = field(default_factory=dict)  # {'arch'|'spec'|'from': value} fixed
    join: bool = False  # join (or resume) an existing study; its own space and options
    monitor_given: bool = False  # --monitor was fixed: trials keep it


class TuneEvents:
    """What a study reports (the CLI renders it); `train` receives each trial's epochs."""

    train: TrainEvents | None = None

    def study_begin(self, info: dict) -> None:
        """study_dir, space (--param texts), default_space, done, total, recovered."""

    def trial_begin(self, number: int, params: dict, run_dir: Path) -> None: ...

    def trial_end(self, row: dict) -> None:
        """row: cnncli.tune.result.trial_row of the trial that ended."""


class SkippedTrial(Exception):
    """A trial asked for once the study already had its total (another process's): it
    trains nothing, and this process stops."""


class TrialError(Exception):
    """A trial whose options train refused or whose model could not be built: failed, and
    the study goes on (MAX_FAILURES in a row stop it)."""


def parse_duration(text: str) -> float:
    """Seconds of a --timeout: 90, 90s, 30m, 2h, 1.5h."""
    t = str(text).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t) * (scale or 1)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"--timeout {text!r} is not a duration", "e.g. 90s, 30m or 2h")
    return value


def default_metric(task: str, has_val: bool) -> str:
    name = {"classify": "accuracy", "multilabel": "f1_macro"}.get(task, "loss")
    return f"val_{name}" if has_val else name


def _check_metric(metric: str, task: str, has_val: bool, path) -> None:
    metrics = TASK_METRICS[task]
    known = [*metrics, *(f"val_{m}" for m in metrics if has_val)]
    if metric not in known:
        raise UsageError(
            f"unknown --metric {metric!r} for {path}", f"use one of {', '.join(known)}"
        )


def plan_study(req: TuneRequest) -> tuple[Path, dict]:
    """(the study folder, its study.json contents) after every check that needs no
    TensorFlow or Optuna: a new study's space, options, model and metric, or an existing
    study's dataset and what was asked of it."""
    existing = None
    if req.study_dir is not None:
        existing = folder.read_study_json(req.study_dir)
    if req.join and existing is None:
        where = req.study_dir or "(none given)"
        raise InputError(
            f"no study to join or resume at {where} (no {folder.STUDY_JSON})",
            "start it first: cnncli tune DATASET --study DIR",
        )
    if req.dataset_dir is not None:
        dataset_dir = req.dataset_dir
    elif existing is not None:
        dataset_dir = Path(existing["dataset"]["path"])
    else:
        raise UsageError("missing DATASET_DIR", "cnncli tune DATASET_DIR --trials N")
    info = open_dataset(dataset_dir)
    study_dir = Path(req.study_dir or Path("studies") / Path(dataset_dir).resolve().name)
    if existing is None:
        existing = folder.read_study_json(study_dir)
    if existing is not None:
        return study_dir, _continue(existing, req, info, study_dir)
    return study_dir, _new(req, info, dataset_dir)


def _new(req: TuneRequest, info, dataset_dir) -> dict:
    if req.pruner not in PRUNERS:
        raise UsageError(f"unknown --pruner {req.pruner!r}", f"use one of {', '.join(PRUNERS)}")
    if req.trials is not None and req.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {req.trials}")
    kind = folder.storage_kind(req.storage)
    has_val = info.count("val") > 0
    metric = req.metric or default_metric(info.task, has_val)
    _check_metric(metric, info.task, has_val, info.path)
    opts = req.options
    if not req.monitor_given:
        opts = replace(opts, monitor=metric)
    opts.check()
    opts.for_dataset(info)  # the monitor and checkpoint pattern against the dataset
    dims = combine(req.dims)
    searched = {d.name for d in dims}
    source = {k: v for k, v in req.source.items() if v is not None}
    defaulted = not dims
    if defaulted:
        dims = default_space(info.task, bool(source) or bool(opts.backbone))
    if "arch" in searched and (source or opts.backbone):
        raise UsageError(
            "--param arch searches the architecture, and --arch/--spec/--from/--backbone fixes it",
            "give one of them",
        )
    if "arch" not in {d.name for d in dims}:
        model_source(
            arch=source.get("arch"),
            spec=source.get("spec"),
            from_model=source.get("from"),
            backbone=opts.backbone,
        )
    check_space(dims, opts)
    return {
        "dataset": {
            "path": str(Path(dataset_dir).resolve()),
            "sha256": info.sha256,
            "task": info.task,
        },
        "space": [d.to_dict() for d in dims],
        "default_space": defaulted,
        "options": opts.to_dict(),
        "source": {k: str(v) for k, v in source.items()},
        "metric": metric,
        "direction": "minimize" if monitor_mode(metric) == "min" else "maximize",
        "trials": req.trials or 20,
        "pruner": req.pruner,
        "storage": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _continue(study: dict, req: TuneRequest, info, study_dir: Path) -> dict:
    """An existing study: the same dataset; with --join/--resume its own space and options,
    and the same command again must ask for the same study."""
    if info.sha256 != study["dataset"]["sha256"]:
        raise InputError(
            f"{study_dir} is a study of another dataset ({study['dataset']['path']}, sha256 "
            f"{study['dataset']['sha256'][:12]}), not {info.path} (sha256 {info.sha256[:12]})",
            "give the study's own dataset, or another --study folder",
        )
    if req.trials is not None and req.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {req.trials}")
    if not req.join:
        again = _new(req, info, study["dataset"]["path"])
        for key in ("space", "options", "source", "metric"):
            if key == "space" and not req.dims:
                continue  # no space given: the study's own
            if again[key] != study[key]:
                raise UsageError(
                    f"{study_dir} holds a study with another {key}",
                    f"continue it with cnncli tune --resume {study_dir}, or give another --study",
                )
    if req.trials is not None:
        study = {**study, "trials": req.trials}
    return study


def _pruner(name: str, epochs: int):
    """No trial is judged on its first third of epochs: the first epoch of a slow starter
    (a low rate, a schedule's warm-up) says little (on the digits bench, pruning from
    epoch 1 stopped 9 of 12 trials there, some on their way to the best)."""
    import optuna

    first = max(1, -(-epochs // 3))
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=first)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=max(epochs, first + 1)
        )
    return optuna.pruners.NopPruner()


def run_tune(req: TuneRequest, events: TuneEvents | None = None) -> TuneResult:
    """Run (or continue) the study; returns cnncli.tune.result.TuneResult."""
    events = events or TuneEvents()
    study_dir, spec = plan_study(req)
    opts = TrainOptions.from_dict(spec["options"])
    epochs = opts.epochs or 10
    import optuna

    from cnncli.tune.result import summarize

    if spec["storage"] in ("sqlite", "journal"):  # files in the folder
        study_dir.mkdir(parents=True, exist_ok=True)
    storage = folder.open_storage(study_dir, spec["storage"])  # a bad URL: nothing made
    (study_dir / folder.TRIALS).mkdir(parents=True, exist_ok=True)
    if folder.read_study_json(study_dir) is None:
        folder.write_study_json(study_dir, spec)
    sampler = optuna.samplers.TPESampler(seed=None if req.join else opts.seed)
    study = optuna.create_study(
        storage=storage,
        study_name=folder.STUDY_NAME,
        direction=spec["direction"],
        load_if_exists=True,
        sampler=sampler,
        pruner=_pruner(spec["pruner"], epochs),
    )
    with folder.study_lock(study_dir):
        recovered = folder.recover_trials(study, storage)
    dims = [Dim.from_dict(d) for d in spec["space"]]
    total = int(spec["trials"])
    events.study_begin(
        {
            "study_dir": str(study_dir),
            "space": [d.text() for d in dims],
            "default_space": spec.get("default_space", False),
            "done": folder.count_done(study),
            "total": total,
            "recovered": recovered,
            "metric": spec["metric"],
            "direction": spec["direction"],
        }
    )
    objective = Objective(req, spec, study_dir, dims, total, events)
    started = time.monotonic()
    try:
        with sigterm_interrupts():
            if folder.count_done(study) < total:
                enough = optuna.study.MaxTrialsCallback(total, states=folder.done_states())
                study.optimize(
                    objective,
                    timeout=req.timeout_s,
                    catch=(SkippedTrial, TrialError),
                    callbacks=[enough],
                    gc_after_trial=True,
                )
    except (KeyboardInterrupt, TrainingInterrupted) as e:
        by = "SIGTERM" if isinstance(e, (Terminated, TrainingTerminated)) else "Ctrl-C"
        error = TrainingTerminated if by == "SIGTERM" else TrainingInterrupted
        raise error(
            f"tuning stopped by {by}; the finished trials are kept in {study_dir}",
            f"continue with: cnncli tune --resume {study_dir}",
        ) from None
    if objective.failures >= MAX_FAILURES:
        raise CnnError(
            f"{MAX_FAILURES} trials in a row failed; the last: {objective.last_error}",
            f"change the space or the fixed options (see {study_dir}/trials)",
        )
    return summarize(study, study_dir, spec, time.monotonic() - started, recovered)


class Objective:
    """One trial: its options from the space, a run folder trained by cnncli train's code,
    the metric reported each epoch (pruning), the best value returned."""

    def __init__(
        self,
        req: TuneRequest,
        spec: dict,
        study_dir: Path,
        dims: list[Dim],
        total: int,
        events: TuneEvents,
    ):
        self.spec, self.study_dir, self.dims, self.total = spec, study_dir, dims, total
        self.events = events
        self.dataset = Path(req.dataset_dir or spec["dataset"]["path"])
        self.fixed = TrainOptions.from_dict(spec["options"])
        self.failures, self.last_error = 0, ""

    def _surplus(self, trial) -> bool:
        """Whether the study already has its total without this trial: the finished and
        pruned trials, and those running that were asked for before it."""
        from optuna.trial import TrialState

        trials = trial.study.get_trials(deepcopy=False)
        done = sum(t.state in folder.done_states() for t in trials)
        ahead = sum(t.state == TrialState.RUNNING and t.number < trial.number for t in trials)
        return done + ahead >= self.total

    def __call__(self, trial) -> float:
        import optuna

        from cnncli.training.fit import train
        from cnncli.tune.pruning import PruningCallback

        trial.set_user_attr("host", claims.HOST)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("stopped", None)
        if self._surplus(trial):
            trial.set_user_attr("skipped", "the study had its total")
            trial.study.stop()
            raise SkippedTrial()
        params = {d.name: d.suggest(trial) for d in self.dims}
        opts, arch = trial_options(self.fixed, params)
        source = dict(self.spec["source"]) if arch is None else {"arch": arch}
        run_dir = folder.trial_dir(self.study_dir, trial.number)
        rel = run_dir.relative_to(self.study_dir).as_posix()
        trial.set_user_attr("run_dir", rel)
        trial.set_user_attr("seed", opts.seed)
        trial.set_user_attr("command", train_args(self.dataset, source, opts))
        self.events.trial_begin(trial.number, params, run_dir)
        pruning = PruningCallback(trial, self.spec["metric"])
        started = time.monotonic()
        try:
            result = train(
                self.dataset,
                run_dir,
                arch=source.get("arch"),
                spec=source.get("spec"),
                from_model=source.get("from"),
                options=opts,
                events=self.events.train,
                callbacks=[pruning],
            )
        except (TrainingInterrupted, KeyboardInterrupt) as e:  # during the fit, or before it
            trial.set_user_attr(
                "stopped",
                "SIGTERM" if isinstance(e, (TrainingTerminated, Terminated)) else "Ctrl-C",
            )
            raise
        except (UsageError, InputError, ModelError) as e:
            self.failures += 1
            self.last_error = e.one_line()
            trial.set_user_attr("error", self.last_error)
            if self.failures >= MAX_FAILURES:
                trial.study.stop()
            self._end(trial, "fail", None, run_dir, time.monotonic() - started)
            raise TrialError(self.last_error) from None
        self.failures = 0
        seconds = time.monotonic() - started
        trial.set_user_attr("seconds", round(seconds, 3))
        trial.set_user_attr("epochs", result.epochs_run)
        if pruning.pruned_at is not None:
            trial.set_user_attr("pruned_at", pruning.pruned_at)
            self._end(trial, "pruned", result.best_value, run_dir, seconds)
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        if result.best_value is None:
            raise TrialError("no epoch gave a value of the metric")
        self._end(trial, "complete", result.best_value, run_dir, seconds)
        return float(result.best_value)

    def _end(self, trial, state: str, value, run_dir: Path, seconds: float) -> None:
        from cnncli.tune.result import trial_row

        self.events.trial_end(
            trial_row(trial.number, state, value, trial.params, run_dir, seconds, trial.user_attrs)
        )
