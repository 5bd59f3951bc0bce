"""Completion of option values (typer's `autocompletion=`): `cnncli train --precision <TAB>`
offers auto, fp32, bf16. Each list is read from its one home in the library when the shell
asks (never at start-up), and none of those modules imports TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def _values(read: Callable[[], Iterable[str]]) -> Callable[[str], list[str]]:
    def complete(incomplete: str) -> list[str]:
        return [v for v in read() if v.startswith(incomplete)]

    return complete


def _formats():
    from cnncli.models.formats import FORMATS

    return FORMATS


def _archs():
    from cnncli.models.presets import ARCHITECTURES

    return ARCHITECTURES


def _tasks():
    from cnncli.models.head import TASKS

    return TASKS


def _fits():
    from cnncli.images.spec import FITS

    return FITS


def _colors():
    from cnncli.images.spec import COLORS

    return COLORS


def _precisions():
    from cnncli.training.precision import PRECISIONS

    return PRECISIONS


def _schedules():
    from cnncli.training.transfer import SCHEDULES

    return SCHEDULES


def _backbones():
    from cnncli.models.backbones import BACKBONES

    return BACKBONES


def _optimizers():
    from cnncli.training.options import OPTIMIZERS

    return OPTIMIZERS


def _caches():
    from cnncli.training.options import CACHE_MODES

    return CACHE_MODES


def _monitors():
    """Every task's metrics, then their val_ names (what --monitor may name)."""
    from cnncli.training.options import TASK_METRICS

    names = list(dict.fromkeys(m for metrics in TASK_METRICS.values() for m in metrics))
    return [*names, *(f"val_{m}" for m in names)]


def _kernels():
    from cnncli.filters.kernels import NAMED_KERNELS

    return NAMED_KERNELS


formats, archs, tasks, fits, colors = map(_values, (_formats, _archs, _tasks, _fits, _colors))
precisions, schedules, backbones = map(_values, (_precisions, _schedules, _backbones))
optimizers, caches, monitors, kernels = map(_values, (_optimizers, _caches, _monitors, _kernels))
