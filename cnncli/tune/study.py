"""The study folder of `cnncli tune` and its Optuna storage.

  STUDY/study.json    what the study is: dataset (path, sha256, task), space, fixed options
                      and model source, metric and direction, total trials, pruner, storage,
                      and (updated at the end of each process) the best trial
  STUDY/study.db      the Optuna storage by default: SQLite (RDBStorage) with a heartbeat, so
                      a trial whose process died is failed and retried
  STUDY/journal.log   with --storage journal: Optuna's JournalFileBackend, an append-only
                      file that several machines can share on a network folder
  STUDY/trials/NNNN/  one cnncli run folder per trial (its number), written by cnncli train's
                      own code
  STUDY/index.html    the study page (cnncli.tune.page)

A trial records in its user attributes the host and pid running it, so a new process of the
study fails the trials of processes on this host that are gone (kill -9) and retries them at
once, without waiting for the heartbeat's grace period.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli import claims
from cnncli.atomic import write_json
from cnncli.errors import BusyError, InputError, UsageError

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

STUDY_FORMAT = "cnncli-study"
STUDY_JSON = "study.json"
STUDY_DB = "study.db"
JOURNAL = "journal.log"
TRIALS = "trials"
STUDY_NAME = "cnncli"
HEARTBEAT_S, GRACE_S = 10, 60  # Optuna's heartbeat: a trial silent for GRACE_S is stale
MAX_RETRY = 3  # how often one trial's parameters are retried after its process died


def trial_dir(study_dir: Path, number: int) -> Path:
    return Path(study_dir) / TRIALS / f"{number:04d}"


def read_study_json(study_dir: Path) -> dict | None:
    """study.json, or None when the folder holds no study; a damaged one -> InputError."""
    path = Path(study_dir) / STUDY_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} cannot be read ({e})") from None
    if not isinstance(data, dict) or data.get("format") != STUDY_FORMAT:
        raise InputError(f"{path} is not a cnncli study ({STUDY_FORMAT})")
    return data


def write_study_json(study_dir: Path, data: dict) -> None:
    write_json(Path(study_dir) / STUDY_JSON, {"format": STUDY_FORMAT, "format_version": 1, **data})


def storage_kind(storage: str | None) -> str:
    """'sqlite' (the default), 'journal', or a database URL (checked for its form only)."""
    if storage in (None, "", "sqlite"):
        return "sqlite"
    if storage == "journal":
        return "journal"
    if "://" not in storage:
        raise UsageError(
            f"--storage {storage!r} is not sqlite, journal or a database URL",
            "e.g. --storage journal, or postgresql://user@host/db",
        )
    return storage


def _masked(url: str) -> str:
    """A URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        auth, _, rest = tail.rpartition("@")
        tail = f"{auth.split(':')[0]}:***@{rest}" if ":" in auth else tail
    return head + sep + tail


def open_storage(study_dir: Path, kind: str) -> Any:
    """The Optuna storage of a study: SQLite in the folder, the journal file in the folder,
    or the database at a URL (with the heartbeat). An unreachable one -> InputError."""
    import optuna
    from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(Path(study_dir).resolve() / JOURNAL)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    url = f"sqlite:///{Path(study_dir).resolve() / STUDY_DB}" if kind == "sqlite" else kind
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat_interval is "experimental"
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=retry_callback(),
            )
    except Exception as e:  # sqlalchemy's errors, a missing driver: one line
        detail = " ".join(str(e).split())[:200]
        raise InputError(
            f"storage {_masked(url)} cannot be opened: {type(e).__name__}: {detail}",
            "check the URL, the server and its driver",
        ) from None


def retry_callback() -> Any:
    """Optuna's retry of a trial whose process died: a new WAITING trial with its
    parameters (and its retry history), MAX_RETRY times at most."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental"
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


@contextmanager
def study_lock(study_dir: Path, wait_s: float = 60) -> Iterator[None]:
    """The study's short lock (cnncli.claims on STUDY/trials): held while one process fails
    and retries the trials of dead processes, so two starting together retry each once."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with claims.claim(Path(study_dir) / TRIALS, "cnncli tune"):
                yield
            return
        except BusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def is_retried(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> bool:
    """Whether another trial already retries `trial` (Optuna's retry history)."""
    return any(
        trial.number in t.system_attrs.get("retry_history", ())
        for t in trials
        if t.number != trial.number
    )


def recover_trials(study: Study, storage: BaseStorage) -> list[str]:
    """Fail the RUNNING trials of processes on this host that are gone (kill -9) and retry
    them and the trials stopped by Ctrl-C or SIGTERM (each once, at most MAX_RETRY times);
    returns what was done, one line each. Finished and pruned trials are never touched."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    retry = retry_callback()
    done = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if t.state == TrialState.RUNNING and attrs.get("host") == claims.HOST:
            if claims.process_alive(int(attrs.get("pid", 0))):
                continue
            try:
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue  # another process got there first
            done.append(f"trial {t.number}: its process (pid {attrs.get('pid')}) is gone; retried")
            retry(study, storage.get_trial(t._trial_id))
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("stopped") and not is_retried(t, trials):
            done.append(f"trial {t.number}: stopped by {t.user_attrs['stopped']}; retried")
            retry(study, t)
    return done


def done_states() -> tuple[Any, ...]:
    """The trial states a study's total counts: finished and pruned."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def count_done(study: Study) -> int:
    return len(study.get_trials(deepcopy=False, states=done_states()))
