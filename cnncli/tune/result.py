"""What a study holds, read from its Optuna storage: one row per trial (sorted by the metric,
best first), the best trial and the `cnncli train` command that reproduces it, the
importance of each parameter; written into study.json ("best") and the study page."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.tune import study as folder
from cnncli.tune.command import command_text

if TYPE_CHECKING:
    from optuna import Study

STATES = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def trial_row(
    number: int,
    state: str,
    value: float | None,
    params: dict,
    run_dir: str | os.PathLike | None,
    seconds: float | None,
    attrs: dict,
) -> dict:
    """A trial as the table, --json and the page show it."""
    return {
        "number": number,
        "state": state,
        "value": value,
        "params": dict(params),
        "run_dir": str(run_dir) if run_dir is not None else None,
        "seconds": round(seconds, 3) if seconds is not None else None,
        "epochs": attrs.get("epochs"),
        "pruned_at": attrs.get("pruned_at"),
        "seed": attrs.get("seed"),
        "error": attrs.get("error"),
        "retry_of": None,
        "command": command_text(attrs["command"]) if attrs.get("command") else None,
    }


def _row(t, study_dir: Path) -> dict:
    state = STATES.get(t.state.name, t.state.name.lower())
    value = t.value if state == "complete" else None
    if state == "pruned" and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]  # its last epoch's
    rel = t.user_attrs.get("run_dir")
    row = trial_row(
        t.number,
        state,
        value,
        t.params,
        Path(study_dir) / rel if rel else None,
        t.user_attrs.get("seconds"),
        t.user_attrs,
    )
    history = t.system_attrs.get("retry_history") or []
    row["retry_of"] = history[-1] if history else None
    row["intermediate"] = {int(k): v for k, v in sorted(t.intermediate_values.items())}
    return row


@dataclass
class TuneResult:
    study_dir: Path
    metric: str
    direction: str
    total: int
    rows: list[dict]  # best first
    best: dict | None
    counts: dict
    seconds: float  # this process
    importance: dict = field(default_factory=dict)
    recovered: list = field(default_factory=list)
    page: Path | None = None
    space: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "study_dir": str(self.study_dir),
            "metric": self.metric,
            "direction": self.direction,
            "trials": self.total,
            "counts": self.counts,
            "best": self.best,
            "importance": self.importance,
            "space": self.space,
            "seconds": round(self.seconds, 3),
            "recovered": self.recovered,
            "page": str(self.page) if self.page else None,
            "rows": self.rows,
        }


def sort_rows(rows: list[dict], direction: str) -> list[dict]:
    """Complete trials by value (best first), then pruned by their last value, then the
    rest by number."""
    sign = -1 if direction == "maximize" else 1
    order = {"complete": 0, "pruned": 1}

    def key(r):
        rank = order.get(r["state"], 2)
        v = r["value"]
        return (
            rank,
            0 if v is not None and rank < 2 else 1,
            sign * v if v is not None and rank < 2 else 0,
            r["number"],
        )

    return sorted(rows, key=key)


def importance(study: Study) -> dict:
    """Optuna's importance of each parameter (fANOVA) over the complete trials, {} while
    fewer than two exist or no parameter varies."""
    from optuna.importance import get_param_importances
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in get_param_importances(study).items()}
    except (RuntimeError, ValueError):
        return {}


def summarize(
    study: Study, study_dir: Path, spec: dict, seconds: float, recovered: list
) -> TuneResult:
    """The study's rows, best trial, counts and importance; study.json's "best" and the
    study page (STUDY/index.html) brought up to date."""
    rows = [
        _row(t, study_dir)
        for t in study.get_trials(deepcopy=False)
        if not t.user_attrs.get("skipped")
    ]
    rows = sort_rows(rows, spec["direction"])
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES.values()}
    best = rows[0] if rows and rows[0]["state"] == "complete" else None
    result = TuneResult(
        study_dir=Path(study_dir),
        metric=spec["metric"],
        direction=spec["direction"],
        total=int(spec["trials"]),
        rows=rows,
        best=best,
        counts=counts,
        seconds=seconds,
        importance=importance(study),
        recovered=recovered,
        space=[d["name"] for d in spec["space"]],
    )
    stored = folder.read_study_json(study_dir) or spec
    stored.pop("format", None)
    stored.pop("format_version", None)
    stored["trials"] = int(spec["trials"])
    stored["best"] = (
        None
        if best is None
        else {
            **{k: best[k] for k in ("number", "value", "params", "seed", "command")},
            "run_dir": folder.trial_dir(Path("."), best["number"]).as_posix(),
        }
    )
    folder.write_study_json(study_dir, stored)
    from cnncli.tune.page import write_study_page

    result.page = write_study_page(result)
    return result
