"""The library's exceptions and the exit codes they map to: the one place that says which
failure exits with which code (the CLI's handler, cnncli.cli.main, reads `exit_code`).

The rule, for every command:
  2 (usage)  the command cannot start with what it was given: a bad option or argument, an
             existing output, or an input the user named (a file or folder: an image, a
             model, a dataset, a label table, a run folder) that is missing, unreadable or
             not what it should be: InputError and its kinds (ImageError, DatasetError,
             ModelFileError).
  1 (failure) the command started and something failed on the way: a model that cannot be
             built or used for this data (ModelError), an unexpected error.
  130        Ctrl-C (KeyboardInterrupt); 143: training stopped by SIGTERM (kill, timeout,
             docker stop, a cluster's pre-emption), which saves a resumable state as Ctrl-C.
Library code raises these with a message that says what is wrong and a hint that says what
to do; the CLI turns them into one line on stderr and the exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the command ran and something failed on the way
    USAGE = 2  # the command was called wrongly, or an input it names is missing/unreadable
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM during training (128 + SIGTERM), after saving its state


class CnnError(Exception):
    """A failure the user can act on: `message` says what is wrong, `hint` what to do."""

    exit_code: int = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text = f"{text}: {self.hint}"
        return " ".join(text.split())  # one line, whatever the message held

    def __str__(self) -> str:
        return self.one_line()


class UsageError(CnnError):
    """The command was called wrongly: an option value, a combination of options."""

    exit_code = ExitCode.USAGE


class InputError(CnnError):
    """An input the user named (a file or folder) is missing, unreadable, or not what it
    should be: a usage error (exit 2), whichever command reads it."""

    exit_code = ExitCode.USAGE


class ImageError(InputError):
    """One image cannot be used; `path` names it and `reason` says why."""

    def __init__(self, path, reason: str, hint: str | None = None):
        super().__init__(f"{path}: {reason}", hint)
        self.path = path
        self.reason = reason


class DatasetError(InputError):
    """A dataset cannot be built from its inputs, or read. `problems` lists (file, reason)
    pairs."""

    def __init__(self, message: str, hint: str | None = None, problems=None):
        super().__init__(message, hint)
        self.problems = list(problems or [])


class ModelError(CnnError):
    """A model cannot be built, loaded or used."""


class ModelFileError(InputError, ModelError):
    """A model file that cannot be read: empty, not a model, damaged, weights only (exit 2,
    as any unreadable input; still a ModelError for code that catches those)."""


class OutputExistsError(UsageError):
    """An output would overwrite something that exists."""

    def __init__(self, path, flag: str = "--overwrite"):
        super().__init__(f"{path} already exists", f"choose another output or pass {flag}")
        self.path = path
