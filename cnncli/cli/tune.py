"""`cnncli tune`: a thin command over cnncli.tune.run.run_tune. Its own options, then every
option of `cnncli train` (declared once, in cnncli.cli.train) as a value fixed for all
trials: the command's signature is its own parameters followed by train's."""

from __future__ import annotations

import copy
import inspect
import logging
from pathlib import Path
from typing import Annotated, get_args

import typer

from cnncli.cli import state
from cnncli.cli.options import JsonOpt
from cnncli.cli.train import train_command
from cnncli.cli.train_options import MODEL_SOURCE_NAMES, TRAIN_OPTION_NAMES

_FIXED = "Training options (fixed for every trial)"


def tune_command(
    dataset_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Dataset folder (from cnncli dataset build); not needed with --resume or --join."
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            metavar="N",
            help="Finished (or pruned) trials the study holds in all, over "
            "every process that joins it (default 20; with --resume: the "
            "study's).",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout", metavar="DURATION", help="Start no trial after this long (90s, 30m, 2h)."
        ),
    ] = None,
    study: Annotated[
        Path | None,
        typer.Option(
            "--study",
            metavar="DIR",
            help="The study folder (default: studies/DATASET_NAME); the same command "
            "again continues it.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="NAME=SPACE",
            help="A train option to search: lr=1e-4..1e-2:log, batch-size=16,32,64, "
            "arch=mnist,tiny, augment=on,off (repeat it; default: a space for the "
            "task, printed).",
        ),
    ] = None,
    space: Annotated[
        Path | None,
        typer.Option(
            "--space",
            metavar="FILE",
            help="A YAML file of NAME: SPACE lines (as --param), or lists of values.",
        ),
    ] = None,
    pruner: Annotated[
        str, typer.Option("--pruner", help="median, hyperband or none: stops poor trials early.")
    ] = "median",
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="What the study optimizes (default val_accuracy; val_loss for regression).",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="sqlite|journal|URL",
            help="Where the study lives: STUDY/study.db (default), journal "
            "(STUDY/journal.log: several machines sharing the folder), or a "
            "database URL.",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="STUDY",
            help="Continue a stopped study (after Ctrl-C, SIGTERM or kill -9).",
        ),
    ] = None,
    join: Annotated[
        Path | None,
        typer.Option(
            "--join",
            metavar="STUDY",
            help="Take trials of a study another process (or machine) runs.",
        ),
    ] = None,
    json_out: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per trial.")] = False,
    **train_values,
) -> None:
    """Search train's options with Optuna: each trial a run folder (STUDY/trials/NNNN) trained
    as cnncli train does, poor trials pruned, resumable; at the end the trials best first,
    the best trial's cnncli train command and the study page STUDY/index.html."""
    from cnncli.cli.train_options import train_options
    from cnncli.cli.tune_view import TuneView, print_tune_result
    from cnncli.errors import UsageError
    from cnncli.tune.run import TuneRequest, parse_duration, run_tune
    from cnncli.tune.space import parse_param, read_space_file

    if resume is not None and join is not None:
        raise UsageError("--resume and --join both name a study", "give one of them")
    existing = resume or join
    if existing is not None and study is not None and Path(study) != Path(existing):
        raise UsageError(
            f"--study {study} and {'--resume' if resume else '--join'} {existing} name two studies",
            "give one of them",
        )
    dims = read_space_file(space) if space is not None else []
    dims += [parse_param(p) for p in param or ()]
    if existing is not None and dims:
        raise UsageError(
            "a study keeps its own space", "leave out --param/--space with --resume or --join"
        )
    options = train_options(**{k: train_values[k] for k in TRAIN_OPTION_NAMES})
    source = {
        "arch": train_values["arch"],
        "spec": train_values["spec"],
        "from": train_values["from_model"],
    }
    request = TuneRequest(
        dataset_dir=dataset_dir,
        study_dir=existing or study,
        trials=trials,
        timeout_s=parse_duration(timeout) if timeout else None,
        dims=dims,
        pruner=pruner,
        metric=metric,
        storage=storage,
        options=options,
        source=source,
        join=existing is not None,
        monitor_given=train_values["monitor"] is not None,
    )
    if not state.verbose:  # a model per trial: TensorFlow's "retracing" notice is expected
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with TuneView(quiet=quiet or json_out) as view:
        result = run_tune(request, view)
    print_tune_result(result, as_json=json_out)


def _fixed_parameters() -> list[inspect.Parameter]:
    """train's option parameters (TRAIN_OPTION_NAMES and the model source), as train
    declares them; those without a help panel are shown under _FIXED."""
    params = inspect.signature(train_command, eval_str=True).parameters
    out = []
    for name in (*MODEL_SOURCE_NAMES, *TRAIN_OPTION_NAMES):
        p = params[name]
        kind, *extras = get_args(p.annotation)
        extras = [copy.copy(x) for x in extras]
        for x in extras:
            if getattr(x, "rich_help_panel", None) is None:
                x.rich_help_panel = _FIXED
        args = (kind, *extras)  # a name: mypy reads [(a, *b)] as 3.11's [a, *b]
        out.append(p.replace(annotation=Annotated[args], kind=inspect.Parameter.KEYWORD_ONLY))
    return out


def _attach_train_options(fn):
    """`fn`'s signature with train's option parameters in place of **train_values (once:
    registering the command again keeps it)."""
    if getattr(fn, "_train_options_attached", False):
        return fn
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    params = [*own, *_fixed_parameters()]
    fn.__signature__ = sig.replace(parameters=params)
    fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    fn._train_options_attached = True
    return fn


def register(app: typer.Typer) -> None:
    app.command("tune", no_args_is_help=True)(_attach_train_options(tune_command))
