"""What a training run reports: events while it runs (`TrainEvents`, `EpochReport`), what it
returns (`TrainResult`) and how Ctrl-C or SIGTERM ends it (`TrainingInterrupted`,
`TrainingTerminated`, `sigterm_interrupts`).

The library draws nothing: it calls a `TrainEvents` object, which the CLI turns into a rich
progress bar and epoch lines (or JSON lines). No TensorFlow here, so the CLI and the checks
that run before TensorFlow loads can use these names.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cnncli.errors import CnnError, ExitCode


class TrainEvents:
    """What a training run reports. Subclass and override what you need."""

    def train_begin(self, info: dict) -> None:
        """info: run_dir, epochs, initial_epoch, steps, batch_size, counts, monitor, params,
        strategy, distribute (several workers: who reads what), writes (False on a worker
        that is not the chief)."""

    def epoch_begin(self, epoch: int, steps: int) -> None:
        """epoch: 1-based number of the epoch starting; steps: batches in it."""

    def batch_end(self, step: int, logs: dict) -> None:
        """step: 1-based batch number in the epoch; logs: running loss/accuracy."""

    def epoch_end(self, report: EpochReport) -> None:
        """One finished (and saved) epoch."""

    def note(self, text: str) -> None:
        """Something worth saying while training runs (once), e.g. val accuracy at chance."""


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    metrics: dict
    seconds: float
    improved: bool
    best_epoch: int
    best_value: float | None
    monitor: str
    checkpoint: str | None = None  # the checkpoint file written, if one was

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "epochs": self.epochs,
            **self.metrics,
            "seconds": round(self.seconds, 4),
            "improved": self.improved,
            "best_epoch": self.best_epoch,
            f"best_{self.monitor}": self.best_value,
            "checkpoint": self.checkpoint,
        }


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_value: float | None
    monitor: str
    history: list = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int = 0
    notes: list = field(default_factory=list)
    distribute: dict = field(default_factory=dict)  # several workers: who read what
    wrote: bool = True  # False on a worker that is not the chief (it writes nothing)

    @property
    def best_metrics(self) -> dict:
        """Every metric AT the best epoch (the one `monitor` chose), not each one's own best."""
        for row in self.history:
            if row["epoch"] == self.best_epoch:
                return row
        return {}

    def to_dict(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "best_metrics": self.best_metrics,
            "stopped_early": self.stopped_early,
            "resumed_from": self.resumed_from,
            "distribute": self.distribute,
            "history": self.history,
        }


class TrainingInterrupted(CnnError):
    """Ctrl-C during training: the last finished epoch is saved and can be resumed."""

    exit_code = ExitCode.INTERRUPTED


class TrainingTerminated(TrainingInterrupted):
    """SIGTERM during training: saved as after Ctrl-C; exit 143 (128 + SIGTERM), the code
    that supervisors (timeout, docker, Slurm, Kubernetes) expect of a terminated process."""

    exit_code = ExitCode.TERMINATED


class Terminated(KeyboardInterrupt):
    """What SIGTERM raises while `sigterm_interrupts` is on: a KeyboardInterrupt, so that it
    unwinds training exactly as Ctrl-C does."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated (as SIGINT raises KeyboardInterrupt)
    instead of ending the process at once; the previous handler comes back after. Only in
    the main thread, the one place Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
