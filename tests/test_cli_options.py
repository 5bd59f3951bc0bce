"""cnncli.cli.options: the shared options (--json, --overwrite, --unsafe, the model argument)
read the same in every command's --help, because every command declares them from there."""

from __future__ import annotations

import typing

import pytest
import typer.main

from cnncli.cli import options
from cnncli.cli.main import app

SHARED_OPTIONS = {
    "--json": options.JsonOpt,
    "--overwrite": options.OverwriteOpt,
    "--unsafe": options.UnsafeOpt,
}
MODEL_ARGUMENTS = ("model", "model_file")  # positional parameters that take a model file


def commands(group=None, path=()):
    """(command path, click command) for every command of the app, groups walked."""
    group = group or typer.main.get_command(app)
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        if getattr(cmd, "commands", None):
            yield from commands(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


def declared_help(annotated) -> str:
    (info,) = typing.get_args(annotated)[1:]
    return info.help


def test_the_walk_reaches_every_group():
    names = [name for name, _ in commands()]
    assert {"dataset build", "dataset info", "dataset preview"} <= set(names)
    assert {"train", "predict", "evaluate", "filter"} <= set(names)


@pytest.mark.parametrize("flag", sorted(SHARED_OPTIONS))
def test_shared_option_has_one_help_text(flag):
    declared = declared_help(SHARED_OPTIONS[flag])
    seen = {
        name: param.help for name, cmd in commands() for param in cmd.params if flag in param.opts
    }
    assert seen, f"no command has {flag}"
    differ = {name: text for name, text in seen.items() if text != declared}
    assert not differ, (
        f"{flag} should be cnncli.cli.options' ({declared!r}); declared otherwise in: {differ}"
    )


def test_model_argument_has_one_help_text():
    declared = declared_help(options.ModelArg)
    seen = {
        name: param.help
        for name, cmd in commands()
        for param in cmd.params
        if param.param_type_name == "argument" and param.name in MODEL_ARGUMENTS
    }
    assert {"predict", "evaluate"} <= set(seen)
    differ = {name: text for name, text in seen.items() if text != declared}
    assert not differ, f"model argument help should be {declared!r}; differs in: {differ}"


def test_shared_options_in_help_output(cli):
    """What the user reads: `dataset build --help` shows the shared texts."""
    result = cli("dataset", "build", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for flag in ("--json", "--overwrite"):
        words = " ".join(declared_help(SHARED_OPTIONS[flag]).split())
        assert words[:30] in text, (flag, text)


def test_flags_show_no_value_in_any_help(cli):
    """Flags take no value: no `<bool>` (or BOOLEAN) beside them in any --help, which read
    as if `--json true` were the way to pass one; options that take a value still say so."""
    paths = [(), *(tuple(name.split()) for name, _ in commands()), ("dataset",)]
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        shown = result.stdout
        assert "<bool>" not in shown and "BOOLEAN" not in shown, (path, shown)
    predict = " ".join(cli("predict", "--help").stdout.split())
    assert "--top-k <int>" in predict and "--json Print the result as JSON" in predict
    train = " ".join(cli("train", "--help").stdout.split())
    assert "--save-best-only --save-every-epoch Write a checkpoint" in train
