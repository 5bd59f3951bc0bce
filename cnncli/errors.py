"""The library's exceptions and the exit codes they map to.

Library code raises these with a message that says what is wrong and a hint that says
what to do; the CLI turns them into one line on stderr and an exit code (cnncli.cli.main).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the command ran and something failed (bad data, a broken file, ...)
    USAGE = 2  # the command was called wrongly (bad option value, missing argument, ...)
    INTERRUPTED = 130  # Ctrl-C


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
    """An input file or folder is missing, unreadable, or not what it should be."""


class ImageError(InputError):
    """One image cannot be used; `path` names it and `reason` says why."""

    def __init__(self, path, reason: str, hint: str | None = None):
        super().__init__(f"{path}: {reason}", hint)
        self.path = path
        self.reason = reason


class DatasetError(CnnError):
    """A dataset cannot be built or read. `problems` lists (file, reason) pairs."""

    def __init__(self, message: str, hint: str | None = None, problems=None):
        super().__init__(message, hint)
        self.problems = list(problems or [])


class ModelError(CnnError):
    """A model cannot be built, loaded or used."""


class OutputExistsError(UsageError):
    """An output would overwrite something that exists."""

    def __init__(self, path, flag: str = "--overwrite"):
        super().__init__(f"{path} already exists", f"choose another output or pass {flag}")
        self.path = path
