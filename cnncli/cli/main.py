"""The root command: attaches the command groups, the global options, and the one place
where library errors become a message and an exit code."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort, Exit
except ImportError:  # pragma: no cover - older typer on top of click
    # the same names from click, which mypy holds against the typer types just above
    from click.exceptions import Abort, ClickException, Exit, NoArgsIsHelpError  # type: ignore[assignment]

from cnncli import __version__
from cnncli.cli import (
    activations,
    dataset,
    demo,
    evaluate,
    filters,
    inspect,
    predict,
    runs,
    state,
    tf_load,
    train,
    tune,
)
from cnncli.cli import export as export_cli
from cnncli.errors import CnnError, ExitCode, output_error, path_error


class CnnGroup(TyperGroup):
    """Runs every command through one error handler (see `run_guarded`), and shows flags
    without a value placeholder in every --help (see `plain_flags`)."""

    def get_params(self, ctx) -> Any:
        return plain_flags(super().get_params(ctx))

    def invoke(self, ctx) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:  # Typer would make it a silent exit 130: say it
            raise Abort() from e

    def get_command(self, ctx, cmd_name) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags_below(command, ctx)
        return command

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if args is None:
            args = sys.argv[1:]
        return run_guarded(
            lambda: super(CnnGroup, self).main(
                args, prog_name or "cnncli", complete_var, standalone_mode=False, **extra
            ),
            args=list(args),
        )


def plain_flags(params: list) -> list:
    """Flags take no value, so --help shows none for them: Typer writes `<bool>` beside every
    flag, which reads as if `--json true` were how to pass one. Returns `params`."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def _plain_flags_below(command, ctx) -> None:
    plain_flags(command.get_params(ctx))  # its help option included
    for sub in getattr(command, "commands", {}).values():
        _plain_flags_below(sub, ctx)


def run_guarded(call: Callable[[], object], args: list[str]) -> None:
    """Call `call`, turning every exception into one line on stderr and an exit code."""
    from cnncli.cli.console import error_line

    state.debug = False  # set by the root callback once the options parse

    def debug() -> bool:
        return state.debug or "--debug" in args

    try:
        rv = call()
    except Exit as e:  # typer.Exit / ctx.exit
        sys.exit(e.exit_code)
    except (Abort, KeyboardInterrupt) as e:  # Ctrl-C, wherever it lands
        if debug():
            traceback.print_exception(e)
        error_line("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except NoArgsIsHelpError as e:  # the help was printed as the error was made
        if e.format_message().strip():
            typer.echo(e.format_message())
        sys.exit(ExitCode.USAGE)
    except ClickException as e:  # usage errors: bad option, missing argument, ...
        if debug():
            traceback.print_exc()
        message = e.format_message()
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "cnncli"
        error_line(f"{message} (see '{where} --help')")
        sys.exit(e.exit_code if e.exit_code in (1, 2) else ExitCode.USAGE)
    except CnnError as e:
        if debug():
            traceback.print_exc()
        error_line(e.one_line())
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except Exception as e:  # a bug or an unexpected failure: still one line, unless --debug
        # a full disk or read-only file system the library did not name; a path too long for
        # the file system or a symlink loop, on any input or output of any command
        told = (output_error(e) or path_error(e, args)) if isinstance(e, OSError) else None
        if told is not None:
            if debug():
                traceback.print_exc()
            error_line(told.one_line())
            sys.exit(told.exit_code)
        if debug():
            traceback.print_exc()
            error_line(f"{type(e).__name__}: {e}")
        else:
            detail = " ".join(str(e).split())[:300]
            error_line(
                f"unexpected {type(e).__name__}: {detail} "
                "(run again with --debug for the traceback, and report it if it persists)"
            )
        sys.exit(ExitCode.FAILURE)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


app = typer.Typer(
    cls=CnnGroup,
    name="cnncli",
    help="The convolutional-network workflow as reproducible commands: build a labeled image "
    "dataset, train and checkpoint a CNN, inspect it, and apply classical image filters.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion: bash, zsh, fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnncli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show TensorFlow's own log messages (silenced otherwise)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state.debug = debug
    state.verbose = verbose
    tf_load.prepare(verbose)


# Each command module is thin and imports no TensorFlow at load; an import error is a bug
# and fails loudly here, never a command that silently goes missing.
for _group in (
    dataset,
    inspect,
    train,
    tune,
    evaluate,
    predict,
    filters,
    activations,
    demo,
    runs,
    export_cli,
):
    _group.register(app)


def main() -> None:
    tf_load.prepare("--verbose" in sys.argv)
    try:
        app()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    state.exit_now(code)


if __name__ == "__main__":
    main()
