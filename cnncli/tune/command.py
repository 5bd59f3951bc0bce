"""The `cnncli train` command line that reproduces a trial: its dataset, model source and
every option that differs from train's default, floats written exactly (repr), so the
command trains the same run again (same seed, deterministic ops)."""

from __future__ import annotations

import dataclasses
import os
import shlex

from cnncli.training.augment import AugmentOptions
from cnncli.training.options import TrainOptions

SOURCE_FLAGS = {"arch": "--arch", "spec": "--spec", "from": "--from"}
# TrainOptions fields whose flag is not --NAME, or that have none
FLAG_OF = {"save_best_only": ("--save-best-only", "--save-every-epoch")}
NO_FLAG = ("deterministic",)


def _text(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def option_args(opts: TrainOptions) -> list[str]:
    """The train flags that give `opts` (only those that differ from the defaults)."""
    default = TrainOptions()
    args: list[str] = []
    for f in dataclasses.fields(TrainOptions):
        v, d = getattr(opts, f.name), getattr(default, f.name)
        if f.name in NO_FLAG or v == d:
            continue
        if f.name == "augment":
            args += _augment_args(v)
            continue
        on, off = FLAG_OF.get(f.name, ("--" + f.name.replace("_", "-"), None))
        if isinstance(v, bool):
            args += [name for name in (on if v else off,) if name]
        elif v is not None:
            args += [on, _text(v)]
    return args


def _augment_args(aug: AugmentOptions | None) -> list[str]:
    if aug is None or not aug.active:
        return []
    course = AugmentOptions.course()
    args = ["--augment"]
    for f in dataclasses.fields(AugmentOptions):
        v = getattr(aug, f.name)
        if v == getattr(course, f.name):
            continue
        if isinstance(v, bool):
            args.append(f"--{f.name}" if v else f"--no-{f.name}")
        else:
            args += [f"--{f.name}", _text(v)]
    return args


def train_args(
    dataset: str | os.PathLike,
    source: dict,
    opts: TrainOptions,
    out: str | os.PathLike | None = None,
) -> list[str]:
    """['cnncli', 'train', DATASET, '--arch', 'mnist', '--lr', '0.0031...', ...]; `source`:
    {'arch'|'spec'|'from': value}; `out`: the run folder (-o), if one is named."""
    args = ["cnncli", "train", str(dataset)]
    for kind, value in source.items():
        if value is not None:
            args += [SOURCE_FLAGS[kind], str(value)]
    args += option_args(opts)
    if out is not None:
        args += ["-o", str(out)]
    return args


def command_text(args: list[str]) -> str:
    return shlex.join(args)
