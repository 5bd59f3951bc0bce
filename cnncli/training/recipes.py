"""Named recipes of `cnncli train`: what a run trains and how, when the user does not say.

- `fast` (the default when no --arch, --spec, --from or --backbone is given): the small
  network cnncli.models.small designs for the dataset (BatchNorm, global average pooling,
  a pooling stem where the images hold little detail), Adam with a one-cycle learning rate
  (linear warm-up over the first quarter of the steps to FAST_PEAK_LR, cosine down),
  label smoothing (classification), an exponential moving average of the weights (they
  become the average at the run's last step), small shifts and rotations (flips only with
  --flip) where the train split has fewer than AUGMENT_BELOW images a class, and the data
  held in memory while it fits.
- `course` (the default with --arch, --spec, --from or --backbone: the course's settings
  exactly as cnncli trained them before recipes existed): Adam at Keras' rate, constant,
  10 epochs, batch 32, no smoothing, no averaging, no augmentation unless asked.

An option the user gives wins over the recipe's value. `apply_recipe` runs before
TensorFlow loads; it returns the filled options, the model source and what run.json
records under "recipe" (its name, why it was chosen, the network and its reasons).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cnncli.errors import UsageError
from cnncli.models.small import SETTLED

if TYPE_CHECKING:
    from cnncli.datasets.store import DatasetInfo
    from cnncli.models.small import SmallDesign

RECIPES = {
    "fast": "a small BatchNorm CNN designed for the dataset, one-cycle Adam, label smoothing, "
    "weight averaging, shift/rotate augmentation for small sets",
    "course": "the course's settings: Adam at Keras' rate, constant, 10 epochs, no smoothing, "
    "averaging or augmentation",
}
FAST_PEAK_LR = 0.005
FAST_SMOOTHING = 0.1
FAST_SHIFT, FAST_ROTATION = 0.1, 10.0  # +-fraction, +-degrees
# below this many train images per class (or per output) the recipe augments: on the
# digits (144 a class) it trains as well without (bench/bench_recipe.py: test accuracy
# 0.9972-1.0 against 0.9944-0.9972 over three seeds) and faster
AUGMENT_BELOW = 100
# the fast recipe's epochs give about this many steps in all: on the digits (45 steps an
# epoch) 5 epochs scored 0.9972 / 0.9944 / 0.9972 over three seeds, as 9 epochs (400 steps)
# did (0.9972 / 0.9972 / 0.9944), in 2 s less; 4 epochs let one seed fall to 0.9916
FAST_STEPS = 225
FAST_EPOCHS = (5, 30)  # its least and most epochs
# a run the recipe gave more epochs than this may end early once saturated, never before
SATURATION_LEAST = 8
DETAIL_SAMPLE = 256  # train images the stem's detail is measured on (at most)
DETAIL_VALUES = 8_000_000  # ... and at most this many pixel values
MEMORY_SHARE = 0.5  # the decoded train split may take this share of the available memory
# run.json's recipe settings: the epochs end early once the accuracy is perfect
# (cnncli.training.saturation)
SATURATION_KEY = "until_saturated"


def check_recipe(name: str | None) -> None:
    """Refuse an unknown recipe name (UsageError listing the known ones)."""
    if name is not None and name not in RECIPES:
        known = ", ".join(f"{k} ({v})" for k, v in RECIPES.items())
        raise UsageError(f"unknown --recipe {name!r}", f"use one of {known}")


def recipe_for(opts: Any, source_kind: str) -> tuple[str, str]:
    """(the recipe's name, why): --recipe as given, else fast without an architecture and
    course with one."""
    if opts.recipe is not None:
        return opts.recipe, "--recipe " + opts.recipe
    if source_kind == "default":
        return "fast", "the default (no --arch/--spec/--from)"
    return "course", f"the default with --{'arch' if source_kind == 'arch' else source_kind}"


def apply_recipe(opts: Any, info: Any, source: Any) -> tuple[Any, Any, dict]:
    """(options with the recipe's values where the user left one unset, the model source
    (the designed network for the `default` source), run.json's "recipe" record)."""
    name, why = recipe_for(opts, source.kind)
    record: dict = {"name": name, "why": why}
    if name == "fast" and source.kind == "backbone":
        raise UsageError(
            "--recipe fast trains its own network or --arch/--spec/--from, "
            "not a pretrained backbone",
            "leave out --recipe fast (a backbone run follows its own phases and schedule)",
        )
    steps = -(-info.count("train") // opts.batch_size)  # no TensorFlow yet (tfdata loads it)
    epochs = opts.epochs
    if epochs is None:
        epochs = min(max(math.ceil(FAST_STEPS / steps), FAST_EPOCHS[0]), FAST_EPOCHS[1])
    # the fewest steps the run may train (a stop at SATURATION_LEAST once saturated)
    least = steps * min(epochs, SATURATION_LEAST if opts.epochs is None else epochs)
    if source.kind == "default":
        design = default_design(info, min(least, FAST_STEPS))
        record["network"] = design.to_dict()
        source = replace(source, value=design.spec())  # a ModelSource of kind default
    if name == "course":
        filled = replace(opts, recipe="course", lr_schedule=opts.lr_schedule or "constant")
        return filled, source, record
    from cnncli.training.augment import AugmentOptions

    # the recipe's epochs (not --epochs) of a one-cycle classifier end once it is perfect
    saturation = opts.epochs is None and info.task == "classify"
    augment = opts.augment
    per_class = info.count("train") / max(1, len(info.class_names) or 1)
    if augment is None or not (
        augment.rotation or augment.shift or augment.shear or augment.zoom
    ):  # nothing, or only --flip/--no-flip given
        flip = bool(augment.flip) if augment is not None else False
        if per_class < AUGMENT_BELOW or flip:
            augment = AugmentOptions(rotation=FAST_ROTATION, shift=FAST_SHIFT, flip=flip)
        else:
            augment = None
            record["augment"] = (
                f"no augmentation ({per_class:.0f} train images a class; "
                f"the recipe augments below {AUGMENT_BELOW})"
            )
    smoothing = opts.label_smoothing
    if smoothing is None:
        smoothing = FAST_SMOOTHING if info.task == "classify" else 0.0
    ema = opts.ema
    if ema is None:
        horizon = max(5.0, steps * epochs / 10)  # the averaging spans the last tenth or so
        ema = round(min(0.999, max(0.9, 1 - 1 / horizon)), 4)
        # ... and the first weights fade below SETTLED of the average in the shortest run
        # (30 façade photos stopped at 8 steps: 0.69; at 0.9, 43% of the average was the
        # first steps' weights and 3 of 10 test photos went wrong)
        ema = min(ema, round(SETTLED ** (1 / least), 2))
    filled = replace(
        opts,
        recipe="fast",
        epochs=epochs,
        lr=opts.lr or FAST_PEAK_LR,
        lr_schedule=opts.lr_schedule or "onecycle",
        augment=augment,
        label_smoothing=smoothing,
        ema=ema,
    )
    cache_note = None
    if filled.cache == "memory" and not fits_in_memory(info):
        filled = replace(filled, cache="disk")
        cache_note = "the train split does not fit in half the free memory: cached on disk"
    record["settings"] = {
        "epochs": epochs,
        "lr_schedule": filled.lr_schedule,
        "peak_lr": filled.lr,
        "label_smoothing": smoothing,
        "ema_momentum": ema,
        "augment": augment.to_dict() if augment else None,
        "cache": filled.cache,
    }
    if saturation and filled.lr_schedule == "onecycle" and epochs > SATURATION_LEAST:
        record["settings"] |= {SATURATION_KEY: True, "least_epochs": SATURATION_LEAST}
    if cache_note:
        record["notes"] = [cache_note]
    return filled, source, record


def default_design(info: DatasetInfo, min_steps: int | None = None) -> SmallDesign:
    """The small network for the dataset (cnncli.models.small), its stem measured on the
    first DETAIL_SAMPLE train images (fewer for large images), for a run of at least
    `min_steps` steps."""
    import numpy as np

    from cnncli.datasets.store import iter_records
    from cnncli.models.small import design_small_network, image_detail

    count = min(DETAIL_SAMPLE, max(4, DETAIL_VALUES // math.prod(info.image.shape)))
    sample = [r.image for r in itertools.islice(iter_records(info, "train"), count)]
    detail, _ = image_detail(np.stack(sample)) if sample else (1, 0.0)
    return design_small_network(info.image.shape, info.count("train"), detail, min_steps)


def fits_in_memory(info: DatasetInfo) -> bool:
    """Whether the decoded train split (float32 pixels) fits in MEMORY_SHARE of the memory
    available now (True where that cannot be read)."""
    need = info.count("train") * math.prod(info.image.shape) * 4
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return True
    return need <= MEMORY_SHARE * free


def recipe_notes(record: dict | None) -> list[str]:
    """What training says at its start about the recipe and the network it chose."""
    if not record:
        return []
    notes = [f"recipe {record['name']} ({record['why']}): {RECIPES[record['name']]}"]
    net = record.get("network")
    if net:
        notes.append(f"network: {net['description']} ({'; '.join(net['reasons'])})")
    s = record.get("settings")
    if s:
        aug = s["augment"]
        augment = record.get("augment") or "no augmentation"
        if aug:
            flips = ", flips" if aug["flip"] else ", no flips (--flip adds them)"
            augment = f"shifts {aug['shift']:g} and rotations {aug['rotation']:g} deg{flips}"
        epochs = f"{s['epochs']} epochs"
        if s.get(SATURATION_KEY):
            epochs += f" (at least {s['least_epochs']}: fewer once the accuracy is perfect)"
        notes.append(
            f"{epochs}, lr {s['peak_lr']:g} ({s['lr_schedule']}), label smoothing "
            f"{s['label_smoothing']:g}, weight average momentum {s['ema_momentum']:g}, {augment}"
        )
    return [*notes, *record.get("notes", [])]
