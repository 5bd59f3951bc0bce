"""How a training run ends: the finish of its run folder (history.png, run.json), and what
Ctrl-C, SIGTERM, a full disk, a broken cluster or any other failure turn into: one line for
the user and a run.json that says how the run stopped. The resume state written at every
epoch end (cnncli.training.callbacks) is what makes each of them resumable; no TensorFlow at
import, so cnncli.training.fit's checks can use `early_stop_reached`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cnncli.atomic import write_json
from cnncli.errors import CnnError, OutputWriteError, output_error_in_text, writing
from cnncli.training import distribute, rundir
from cnncli.training.events import (
    Terminated,
    TrainingInterrupted,
    TrainingTerminated,
    sigterm_interrupts,
)

if TYPE_CHECKING:
    from cnncli.training.callbacks import RunState


def early_stop_reached(early_stop: dict | None, patience: int | None, epoch: int) -> bool:
    """Whether the early-stopping counters saved with `epoch` had already stopped the run
    (Keras stops once `wait` reaches the patience, from the second epoch on)."""
    return bool(patience and early_stop and epoch > 1 and early_stop.get("wait", 0) >= patience)


def plot(run_dir: Path, st: RunState) -> None:
    """history.png, drawn when training ends or is interrupted (not every epoch: a figure
    costs about as much as a small epoch; a run killed with -9 gets it on resume)."""
    if st.history:
        from cnncli.drawing.plots import plot_history  # matplotlib: only when drawing

        with writing(run_dir / rundir.HISTORY_PNG):
            plot_history(
                rundir.read_history(run_dir / rundir.HISTORY_CSV), run_dir / rundir.HISTORY_PNG
            )


def finish_run(
    out: Path,
    run: dict,
    st: RunState,
    epochs: int,
    stopped_by: str | None = None,
) -> None:
    """The last step of a run: history.png, then run.json "finished" (or "early-stopped",
    or `stopped_by`: the status a callback that stopped the run names, e.g. "pruned")."""
    plot(out, st)
    run["status"] = stopped_by or ("early-stopped" if st.epoch < epochs else "finished")
    run["finished"] = rundir.now()
    with writing(out / rundir.RUN_JSON):
        write_json(out / rundir.RUN_JSON, run)


def run_or_interrupt(
    work: Callable[[], object],
    run_dir: Path,
    out: Path,
    run: dict,
    st: RunState,
    plan: distribute.StrategyPlan,
) -> None:
    """work() (model.fit and the run folder's finish) with Ctrl-C (and SIGTERM: kill,
    timeout, docker stop, a pre-emption) turned into TrainingInterrupted
    (TrainingTerminated) once the finished epochs are saved, a full disk into one line that
    names the file, a broken cluster (another worker stopped) into one clear line, and
    run.json saying how the run ended. Every path of a stop ends in a resumable folder."""
    import tensorflow as tf

    resume = f"cnncli train --resume {run_dir}"
    try:
        with sigterm_interrupts():
            try:
                work()
            except tf.errors.OpError as e:  # TensorFlow's own writers: cache, TensorBoard
                err = output_error_in_text(str(e), out)
                if err is None:
                    raise
                raise err from None
    except KeyboardInterrupt as e:
        by = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
        with contextlib.suppress(OSError, CnnError):  # as much as the disk allows
            plot(out, st)
        mark(out, run, "interrupted", interrupted_by=by)
        what = "stopped by SIGTERM" if by == "SIGTERM" else "interrupted"
        error = TrainingTerminated if by == "SIGTERM" else TrainingInterrupted
        raise error(
            f"training {what} after {st.epoch} finished epoch(s); "
            f"the state of epoch {st.epoch} is saved in {run_dir}"
            if st.epoch
            else f"training {what} before the first epoch finished (nothing to resume in "
            f"{run_dir})",
            (
                f"continue with: {resume}"
                + (" on every worker, with the same --workers" if plan.multi_worker else "")
            )
            if st.epoch
            else None,
        ) from None
    except OutputWriteError as e:  # a full disk: the committed epoch is whole
        mark(
            out,
            run,
            "failed",
            failed_by="disk full" if e.no_space else "not writable",
            error=e.message,
        )
        folder = e.path.parent if e.path is not None else run_dir
        fix = "free some space" if e.no_space else f"make {folder} writable"
        e.message = f"training stopped after {st.epoch} finished epoch(s): {e.message}"
        e.hint = (
            f"{fix}, then continue with: {resume} (the state of epoch {st.epoch} is saved)"
            if st.epoch
            else f"{fix}, then start the training again"
        )
        raise
    except (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.DeadlineExceededError,
    ) as e:
        if not plan.multi_worker:
            mark(out, run, "failed", error=f"{type(e).__name__}: {e}")
            raise
        mark(out, run, "interrupted")
        raise CnnError(
            f"worker {plan.rank} of {plan.num_workers}: the cluster broke off after {st.epoch} "
            f"finished epoch(s): another worker stopped or cannot be reached "
            f"({type(e).__name__})",
            f"start every worker again with {resume} and the same "
            "--workers (each with its --worker-index)"
            if st.epoch
            else "check that every worker runs and that the ports are open, then start again",
        ) from None
    except Exception as e:  # anything else: run.json does not stay "running"
        mark(out, run, "failed", error=f"{type(e).__name__}: {e}")
        raise


def mark(out: Path, run: dict, status: str, **details) -> None:
    """run.json says how the run ended; a disk too full for even that leaves it as it was
    (the state, not run.json, is what resume reads)."""
    run["status"] = status
    run.update({k: " ".join(str(v).split())[:500] for k, v in details.items()})
    with contextlib.suppress(OSError, CnnError):
        write_json(out / rundir.RUN_JSON, run)
