"""How `cnncli tune` looks in the terminal: a line per trial as it starts and ends (and one
per epoch), then the trials best first, the best trial's `cnncli train` command, and the
study page; `--json`: the same as one JSON object."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from cnncli.cli.console import info, print_json, print_table, progress_bar
from cnncli.cli.train_events import metrics_text
from cnncli.training.events import TrainEvents
from cnncli.tune.run import TuneEvents

if TYPE_CHECKING:
    from cnncli.tune.result import TuneResult

MAX_ROWS = 30  # trials in the table; --json and the study page have them all


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def _value(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class _Epochs(TrainEvents):
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def epoch_end(self, report) -> None:
        if not self.quiet:
            info(f"  epoch {report.epoch}/{report.epochs}  {metrics_text(report.metrics)}")


class TuneView(TuneEvents):
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.train = _Epochs(quiet)
        self.stack = ExitStack()
        # the study's bar: trials finished (or pruned) of the total
        self.advance: Callable[..., None] | None = None

    def __enter__(self) -> TuneView:
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def study_begin(self, s: dict) -> None:
        for line in s["recovered"]:
            info(line)  # also with --quiet: what was done to the study
        if self.quiet:
            return
        where = "default space for the task" if s["default_space"] else "space"
        info(
            f"study {s['study_dir']}: {s['done']} of {s['total']} trials done; "
            f"{s['metric']} ({s['direction']})"
        )
        info(f"{where}: " + "  ".join(f"--param {t}" for t in s["space"]))
        self.advance = self.stack.enter_context(progress_bar("trials", s["total"]))
        if s["done"]:
            self.advance(s["done"])

    def trial_begin(self, number: int, params: dict, run_dir) -> None:
        if not self.quiet:
            info(f"trial {number}: {_params_text(params)} -> {run_dir}")

    def trial_end(self, row: dict) -> None:
        if self.advance is not None and row["state"] in ("complete", "pruned"):
            self.advance(1)
        if self.quiet:
            return
        value = "-" if row["value"] is None else f"{row['value']:.4g}"
        what = {
            "pruned": f"pruned after epoch {row['pruned_at']} ({value})",
            "fail": f"failed: {row['error']}",
        }.get(row["state"], value)
        info(f"trial {row['number']} {what} in {row['seconds']:.1f} s")


def print_tune_result(result: TuneResult, as_json: bool = False) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    names = result.space
    rows = [
        [
            r["number"],
            r["state"],
            r["value"],
            *(_value(r["params"][n]) if n in r["params"] else "-" for n in names),
            r["epochs"],
            r["seconds"],
        ]
        for r in result.rows[:MAX_ROWS]
    ]
    print_table(
        ["trial", "state", result.metric, *names, "epochs", "seconds"],
        rows,
        title=f"Study {result.study_dir} ({result.metric}, best first)",
        numeric=[result.metric, "epochs", "seconds"],
    )
    if len(result.rows) > MAX_ROWS:
        info(f"{len(result.rows) - MAX_ROWS} more trials: see --json or {result.page}")
    c = result.counts
    info(
        f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed of "
        f"{result.total}; study page {result.page}"
    )
    if result.best is not None:
        info(
            f"best: trial {result.best['number']}, {result.metric} {result.best['value']:.4g}; "
            "to train it again:"
        )
        print(result.best["command"])
