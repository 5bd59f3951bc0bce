"""How a training run looks in the terminal: `TrainingView` renders the library's training
events (cnncli.training.events.TrainEvents), `print_train_result` the finished run. Used by
`cnncli train` and `cnncli demo`.

The bar here is not cnncli.cli.progress.ProgressBar: a training run shows one transient bar
per epoch with its running loss and accuracy, replaced by that epoch's line when it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.cli.console import err_console, escape, info, print_json, print_table
from cnncli.training.events import TrainEvents

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from cnncli.training.events import TrainResult


class TrainingView(TrainEvents):
    """Renders training events: a rich bar per epoch (step, ETA, loss, accuracy) on stderr,
    one line per epoch, and with `json_log` one JSON object per epoch on stdout. A context
    manager: leaving it stops the bar."""

    def __init__(self, quiet: bool = False, json_log: bool = False):
        self.quiet, self.json_log = quiet, json_log
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.epochs = 0
        self.writes = True

    def __enter__(self) -> TrainingView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the library calls these (cnncli.training.events.TrainEvents)
    def train_begin(self, run: dict) -> None:
        self.epochs = run["epochs"]
        self.writes = run.get("writes", True)
        dist = run.get("distribute") or {}
        if dist:  # one line per worker, also with --quiet: which shard files it reads
            info(
                f"worker {dist['worker']}/{dist['num_workers']} reads train shards: "
                + ", ".join(dist["read_shards"])
            )
        if self.quiet:
            return
        counts = ", ".join(f"{k} {v:,}" for k, v in run["counts"].items())
        batch = f"batch {run['batch_size']}"
        if dist:
            batch = (
                f"global batch {dist['global_batch']} ({dist['per_worker_batch']} per worker x "
                f"{dist['num_workers']} workers)"
            )
        where = (
            f"into {run['run_dir']}"
            if self.writes
            else f"the chief (worker 0) writes {run['run_dir']}; this worker writes nothing"
        )
        info(f"strategy: {run.get('strategy', 'one device')}; device: {run.get('device', '?')}")
        if run.get("precision"):
            spe = run.get("steps_per_execution", 1)
            info(f"{run['precision']}; {spe} step{'s' if spe != 1 else ''} per execution")
        for note in run.get("notes", []):  # the backbone, its weights and phases
            info(note)
        info(
            f"training {run['params']:,} parameters on {counts} images, {batch}, "
            f"epochs {run['initial_epoch'] + 1}..{run['epochs']}, {where}"
        )
        self._start_bar()

    def _start_bar(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=err_console,
            transient=True,
        )
        self.progress.start()

    def epoch_begin(self, epoch: int, steps: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(
                f"epoch {epoch}/{self.epochs}", total=steps, metrics=""
            )

    def batch_end(self, step: int, logs: dict) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=step, metrics=metrics_text(logs, short=True))

    def epoch_end(self, report) -> None:
        if self.json_log:
            print_json(report.to_dict(), one_line=True)
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        if self.quiet:
            return
        if not self.writes:
            saved = ""
        elif report.checkpoint:
            saved = f"saved {report.checkpoint}"
        elif report.improved:
            saved = "best so far"
        else:
            best = "-" if report.best_value is None else f"{report.best_value:.4f}"
            saved = f"no checkpoint ({report.monitor} did not improve on {best})"
        line = (
            f"epoch {report.epoch}/{report.epochs}  {metrics_text(report.metrics)}  "
            f"{report.seconds:.1f}s  {saved}"
        )
        (self.progress.console if self.progress else err_console).print(
            escape(line), soft_wrap=True
        )

    def note(self, text: str) -> None:
        if not self.quiet:
            (self.progress.console if self.progress else err_console).print(
                escape(f"note: {text}"), soft_wrap=True
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def metrics_text(logs: dict, short: bool = False) -> str:
    """'loss 0.1234  accuracy 0.9000  val_loss ...' (short: 'acc' for accuracy); a
    multi-label run shows f1_macro, a regression run mae, in the place of accuracy."""
    parts = []
    main = ("accuracy", "f1_macro", "mae")
    for key in ("loss", *main, "val_loss", *(f"val_{m}" for m in main)):
        if key in logs:
            name = "acc" if short and key == "accuracy" else key
            parts.append(f"{name} {logs[key]:.4f}")
    return "  ".join(parts)


def print_train_result(result: TrainResult, quiet: bool = False, json_log: bool = False) -> None:
    """The finished run (a cnncli.training.events.TrainResult): a table, or with `quiet` or
    `json_log` one line on stderr; a worker that is not the chief says who wrote the run.
    The metrics shown are those OF the best epoch (chosen by the monitored metric), not each
    metric's own best: training accuracy may peak at another epoch."""
    stop = " (stopped early)" if result.stopped_early else ""
    for note in result.notes:  # e.g. a resume that only finished what a stopped run left
        info(note)
    if not result.wrote:  # a worker that is not the chief
        info(f"worker done{stop}: the chief wrote the run folder {result.run_dir}")
        return
    best = f"best epoch {result.best_epoch} (by {result.monitor})"
    if quiet or json_log:  # one line, on stderr
        info(f"done{stop}: {best}, run folder {result.run_dir}")
        return
    at_best = ", ".join(f"{k} {v:.4g}" for k, v in result.best_metrics.items() if k != "epoch")
    rows = [
        ("run folder", str(result.run_dir)),
        ("epochs finished", f"{result.epochs_run}{stop}"),
        (f"at the best epoch ({result.best_epoch}, by {result.monitor})", at_best or "-"),
        ("best model", str(Path(result.run_dir) / "best.keras")),
        ("last model", str(Path(result.run_dir) / "last.keras")),
    ]
    print_table(["", "value"], rows, title="Training")
