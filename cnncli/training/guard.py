"""A training's watch on its dataset: the manifest the run started on (run.json's sha256)
must stay the dataset's until the run ends.

The read claim a training holds (cnncli.claims) keeps cnncli's own builds from replacing
the dataset; this catches what a claim cannot (a folder replaced by hand, by another
machine, by an older cnncli). It checks at the start and end of every epoch, before the
end's state is saved (so an epoch that may have read two datasets is never committed), and
when the input pipeline fails (a changed image size breaks it mid-epoch). The run then stops
with one line (DatasetChangedError); the state of its last finished epoch stays resumable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from cnncli.errors import DatasetChangedError


class DatasetGuard(keras.callbacks.Callback):
    """Raises DatasetChangedError when `dataset`'s manifest is no longer `sha256`. Put it
    first among the callbacks; `finished()` says how many epochs are saved (for the hint)."""

    def __init__(self, dataset, sha256: str, run_dir, finished):
        super().__init__()
        self.dataset, self.sha256, self.run_dir = Path(dataset), sha256, run_dir
        self.finished = finished

    def changed(self) -> str | None:
        """What changed, in words, or None while the dataset is the one the run started on."""
        try:
            raw = (self.dataset / "manifest.json").read_bytes()
        except OSError:
            return "it is gone" if not self.dataset.exists() else "its manifest cannot be read"
        sha = hashlib.sha256(raw).hexdigest()
        if sha == self.sha256:
            return None
        return f"its manifest is now sha256 {sha[:12]}, the run started on {self.sha256[:12]}"

    def error(self, what: str) -> DatasetChangedError:
        done = self.finished()
        return DatasetChangedError(
            f"dataset {self.dataset} changed while training ({what}); training stopped after "
            f"{done} finished epoch(s)",
            f"put back the dataset the run started on and continue with: cnncli train --resume "
            f"{self.run_dir} (the state of epoch {done} is saved), or start a new run"
            if done
            else "start the training again",
        )

    def check(self) -> None:
        what = self.changed()
        if what is not None:
            raise self.error(what)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.check()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.check()

    def watching(self, work) -> Callable[[], Any]:
        """`work` (a function) whose failure becomes DatasetChangedError when the dataset
        changed meanwhile (the input pipeline's InvalidArgumentError, say)."""

        def run():
            try:
                return work()
            except DatasetChangedError:
                raise
            except Exception:
                what = self.changed()
                if what is None:
                    raise
                raise self.error(what) from None

        return run
