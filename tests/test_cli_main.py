"""cnncli.cli.main: every command group is attached, and the one error handler
(`run_guarded`) turns each kind of failure into one stderr line and its exit code."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import typer
import typer.main

import cnncli.cli
from cnncli.cli.main import app, run_guarded
from cnncli.errors import (
    DatasetError,
    ImageError,
    InputError,
    ModelError,
    ModelFileError,
    OutputExistsError,
    UsageError,
)


def run(call, args=(), capsys=None):
    """(exit code, stderr lines) of run_guarded(call)."""
    with pytest.raises(SystemExit) as exited:
        run_guarded(call, list(args))
        raise SystemExit(0)
    err = capsys.readouterr().err if capsys else ""
    return exited.value.code, [line for line in err.splitlines() if line.strip()]


def raising(error):
    def call():
        raise error

    return call


def test_every_command_module_is_attached():
    """A module in cnncli/cli/ with `register` has all its commands on the root app (main.py
    imports each one explicitly: one that fails to import fails loudly, never goes missing)."""
    root = typer.main.get_command(app)
    for info in pkgutil.iter_modules(cnncli.cli.__path__):
        module = importlib.import_module(f"cnncli.cli.{info.name}")
        if not hasattr(module, "register"):
            continue
        alone = typer.Typer()
        alone.callback()(lambda: None)  # a group, so one command keeps its name
        module.register(alone)
        names = set(typer.main.get_command(alone).commands)
        assert names and names <= set(root.commands), (info.name, names - set(root.commands))


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            UsageError("bad size 'big'", "write it as HxW"),
            2,
            "error: bad size 'big': write it as HxW",
        ),
        # an input the user named that is missing or unreadable: a usage error (issue 12)
        (InputError("image folder x not found"), 2, "error: image folder x not found"),
        (ImageError("a.png", "not an image"), 2, "error: a.png: not an image"),
        (
            DatasetError("2 problems", "fix them", problems=[("a", "b")]),
            2,
            "error: 2 problems: fix them",
        ),
        (
            ModelFileError("m.keras is empty, not a model"),
            2,
            "error: m.keras is empty, not a model",
        ),
        (ModelError("the model has 2 outputs"), 1, "error: the model has 2 outputs"),
        (
            OutputExistsError("out"),
            2,
            "error: out already exists: choose another output or pass --overwrite",
        ),
    ],
)
def test_library_errors_are_one_line_with_their_exit_code(capsys, error, code, line):
    assert run(raising(error), capsys=capsys) == (code, [line])


def test_unexpected_errors_are_one_line_unless_debug(capsys):
    code, lines = run(raising(ValueError("shapes\n  do not match")), capsys=capsys)
    assert code == 1 and lines == [
        "error: unexpected ValueError: shapes do not match (run again with --debug for the "
        "traceback, and report it if it persists)"
    ]
    code, lines = run(raising(ValueError("boom")), ["--debug"], capsys=capsys)
    assert code == 1 and lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "error: ValueError: boom"


def test_interrupt_exit_and_return_codes(capsys):
    assert run(raising(KeyboardInterrupt()), capsys=capsys) == (130, ["error: interrupted"])
    assert run(raising(typer.Exit(3)), capsys=capsys) == (3, [])
    assert run(lambda: 4, capsys=capsys) == (4, [])
    assert run(lambda: None, capsys=capsys) == (0, [])


def test_usage_error_names_the_subcommand_help(cli):
    result = cli("dataset", "info", "a", "--nope")
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: No such option: --nope (see 'cnncli dataset info --help')"
    ]


def test_library_error_through_a_command(cli, tmp_path):
    result = cli("dataset", "info", tmp_path / "none")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    result = cli("--debug", "dataset", "info", tmp_path / "none")
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: dataset folder")


def test_ctrl_c_in_any_command_is_one_line_exit_130(cli, tmp_path, monkeypatch):
    """Typer turns a KeyboardInterrupt into a silent exit 130; every command says why."""
    import cnncli.datasets.store

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cnncli.datasets.store, "open_dataset", interrupted)
    result = cli("dataset", "info", tmp_path)
    assert result.exit_code == 130
    assert [line for line in result.stderr.splitlines() if line.strip()] == ["error: interrupted"]
