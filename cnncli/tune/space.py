"""The search space of `cnncli tune`: which `cnncli train` options can be searched (read from
cnncli.training.options.TrainOptions, the one home of train's options, plus --arch and
--augment), how a `--param NAME=SPACE` or a `--space FILE` entry reads, the default space
of a task, and the TrainOptions of one trial's values. No TensorFlow and no Optuna here, so
every mistake is one line before either loads.

Spaces, in the user's words (the option's flag without its dashes):
  lr=1e-4..1e-2:log     a range (floats; ints when the option takes an int); :log samples
                        its logarithm
  batch-size=16,32,64   a choice of two or more values, each read as the option reads it
  augment=on,off        on/off (also true/false, yes/no) for a flag
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cnncli.errors import InputError, UsageError
from cnncli.training.augment import AugmentOptions
from cnncli.training.options import LOSSES, OPTIMIZERS, TrainOptions

# TrainOptions fields that are how a run is kept or run, not what it learns: never searched
NOT_SEARCHED = (
    "seed",
    "monitor",
    "checkpoint",
    "save_best_only",
    "tensorboard",
    "cache",
    "precision",
    "deterministic",
    "steps_per_execution",
    "weights",
    "augment",
)
ON, OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


def _choices() -> dict[str, tuple]:
    """The values of the options that take a name (read from their homes)."""
    from cnncli.models.backbones import BACKBONES
    from cnncli.models.presets import ARCHITECTURES
    from cnncli.training.transfer import SCHEDULES

    return {
        "arch": tuple(ARCHITECTURES),
        "optimizer": OPTIMIZERS,
        "lr_schedule": SCHEDULES,
        "loss": LOSSES,
        "backbone": tuple(BACKBONES),
        "class_weight": ("auto", "none"),
    }


def _base_type(hint) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def searchable() -> dict[str, type]:
    """{python name: int, float, bool or str} of every option a study may search: the
    TrainOptions fields that say what a run learns, the augmentation transforms, --augment
    (the course's set, on/off) and --arch."""
    names: dict[str, type] = {"arch": str, "augment": bool}
    hints = typing.get_type_hints(TrainOptions)
    choices = _choices()
    for f in dataclasses.fields(TrainOptions):
        kind = _base_type(hints[f.name])
        if f.name in NOT_SEARCHED or kind not in (int, float, bool, str):
            continue
        if kind is str and f.name not in choices:
            continue
        names[f.name] = kind
    for f in dataclasses.fields(AugmentOptions):
        names[f.name] = _base_type(typing.get_type_hints(AugmentOptions)[f.name])
    return names


def flag(name: str) -> str:
    """The user's word for a python option name: lr_schedule -> lr-schedule."""
    return name.replace("_", "-")


@dataclass(frozen=True)
class Dim:
    """One searched option: `kind` "float" or "int" (low..high, log) or "choice" (values)."""

    name: str  # the user's word: batch-size
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    values: tuple = ()

    def to_dict(self) -> dict:
        d: dict[str, typing.Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "choice":
            d["values"] = list(self.values)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Dim:
        return cls(
            d["name"],
            d["kind"],
            d.get("low"),
            d.get("high"),
            bool(d.get("log")),
            tuple(d.get("values") or ()),
        )

    def text(self) -> str:
        """The --param form: lr=0.0001..0.01:log, batch-size=16,32,64."""
        if self.kind == "choice":
            return f"{self.name}={','.join(_value_text(v) for v in self.values)}"
        return f"{self.name}={self.low:g}..{self.high:g}" + (":log" if self.log else "")

    def suggest(self, trial):
        """This option's value for an Optuna trial."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.values))


def _value_text(v) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


def _python_name(name: str, known: dict) -> str:
    key = name.strip().lstrip("-").replace("-", "_").lower()
    if key in known:
        return key
    words = [flag(k) for k in known]
    close = difflib.get_close_matches(flag(key), words, n=1)
    hint = f"did you mean {close[0]}?" if close else f"searchable: {', '.join(sorted(words))}"
    raise UsageError(f"cnncli train has no searchable option --{flag(key)}", hint)


def _read_value(text: str, kind: type, name: str):
    t = str(text).strip()
    try:
        if kind is bool:
            if t.lower() in ON:
                return True
            if t.lower() in OFF:
                return False
            raise ValueError
        if kind is int:
            return int(t)
        if kind is float:
            return float(t)
    except ValueError:
        what = "on or off" if kind is bool else f"a{'n' if kind is int else ''} {kind.__name__}"
        raise UsageError(f"--param {name}: {t!r} is not {what}") from None
    return t.lower()


def parse_param(text: str) -> Dim:
    """A `--param NAME=SPACE` (see the module's docstring); a bad one -> UsageError."""
    name, sep, space = str(text).partition("=")
    if not sep or not name.strip() or not space.strip():
        raise UsageError(
            f"--param {text!r} is not NAME=SPACE",
            "e.g. --param lr=1e-4..1e-2:log or --param batch-size=16,32,64",
        )
    return make_dim(name, space.strip())


def make_dim(name: str, space: str | int | float | Sequence) -> Dim:
    """A Dim from a name and its space: the --param text, or (a --space file) a list of
    values."""
    known = searchable()
    key = _python_name(name, known)
    word, kind = flag(key), known[key]
    if isinstance(space, (list, tuple)):
        space = ",".join(_value_text(v) for v in space)
    space = str(space).strip()
    if ".." in space:
        if kind not in (int, float):
            raise UsageError(
                f"--param {word}: a range needs a numeric option; give choices: {word}=A,B"
            )
        body, _, scale = space.partition(":")
        if scale not in ("", "log"):
            raise UsageError(f"--param {word}={space}: unknown scale {scale!r}", "use :log")
        lo_text, _, hi_text = body.partition("..")
        lo, hi = _read_value(lo_text, kind, word), _read_value(hi_text, kind, word)
        if not lo < hi:
            raise UsageError(
                f"--param {word}={space}: the range must go from low to high",
                f"write {word}={hi_text.strip()}..{lo_text.strip()}" + (":log" if scale else ""),
            )
        if scale == "log" and lo <= 0:
            raise UsageError(f"--param {word}={space}: a :log range must be above 0")
        return Dim(word, kind.__name__, lo, hi, scale == "log")
    values = tuple(dict.fromkeys(_read_value(v, kind, word) for v in space.split(",")))
    if len(values) < 2:
        raise UsageError(
            f"--param {word}={space}: a choice of one value searches nothing",
            f"give two or more ({word}=A,B), or fix it with --{word} {_value_text(values[0])}",
        )
    choices = _choices().get(key)
    if choices is not None:
        for v in values:
            if v not in choices:
                raise UsageError(
                    f"--param {word}: unknown value {v!r}", f"use some of {', '.join(choices)}"
                )
    return Dim(word, "choice", values=values)


def read_space_file(path: str | os.PathLike) -> list[Dim]:
    """A --space FILE (YAML or JSON): a mapping of option names to spaces, each written as
    with --param (`lr: 1e-4..1e-2:log`) or as a list of choices (`batch-size: [16, 32]`)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"space file {path} not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(
            f"space file {path} cannot be read: {' '.join(str(e).split())[:200]}"
        ) from None
    if not isinstance(data, dict) or not data:
        raise InputError(
            f"space file {path} must map option names to spaces", "e.g. lr: 1e-4..1e-2:log"
        )
    dims = []
    for name, space in data.items():
        if not isinstance(space, (str, int, float, list)):
            raise InputError(f"space file {path}: {name}: write a range or a list of values")
        dims.append(make_dim(str(name), space))
    return dims


def default_space(task: str, fixed_model: bool) -> list[Dim]:
    """What a study searches when given no space: the learning rate, the batch size, the
    schedule, augmentation (not for regression targets, which a flip may change) and, when
    no model was fixed, three small architectures."""
    texts = ["lr=1e-4..1e-2:log", "batch-size=16,32,64", "lr-schedule=constant,cosine"]
    if task != "regression":
        texts.append("augment=on,off")
    if not fixed_model:
        texts.append("arch=tiny,mnist,mnist-wide")
    return [parse_param(t) for t in texts]


def combine(dims: list[Dim]) -> list[Dim]:
    """The space with each option once (a repeated one: the last given wins)."""
    return list({d.name: d for d in dims}.values())


def trial_options(fixed: TrainOptions, params: dict) -> tuple[TrainOptions, str | None]:
    """(the TrainOptions of a trial: `fixed` with the trial's `params` (the user's words)
    put in; the --arch it trains, None: the fixed model source)."""
    known = searchable()
    values = {k.replace("-", "_"): v for k, v in params.items()}
    arch = values.pop("arch", None)
    augment = fixed.augment
    if "augment" in values:
        augment = AugmentOptions.course() if values.pop("augment") else None
    transforms = {
        k: values.pop(k)
        for k in list(values)
        if k in {f.name for f in dataclasses.fields(AugmentOptions)}
    }
    if transforms:
        augment = replace(augment or AugmentOptions(), **transforms)
    if values.get("class_weight") == "none":
        values["class_weight"] = None
    for k in values:
        if k not in known:
            raise UsageError(f"cnncli train has no searchable option --{flag(k)}")
    return replace(fixed, augment=augment, **values), arch


def check_space(dims: list[Dim], fixed: TrainOptions) -> None:
    """Refuse a space whose values train would refuse: every choice and both ends of every
    range are checked as a trial's options (TrainOptions.check)."""
    for d in dims:
        ends = d.values if d.kind == "choice" else (d.low, d.high)
        for v in ends:
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"--param {d.name}: {v} is not a finite number")
            try:
                opts, _ = trial_options(fixed, {d.name: v})
                opts.check()
            except UsageError as e:
                raise UsageError(
                    f"--param {d.name}={_value_text(v)}: {e.message}", e.hint
                ) from None
