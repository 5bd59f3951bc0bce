"""`cnncli train`: a thin command over cnncli.training.fit (train / resume a run folder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

_AUG = "Augmentation"
_CKPT = "Checkpoints and output"
_DIST = "Several devices or machines"


class _RichEvents:
    """Renders training events: a rich bar per epoch (step, ETA, loss, accuracy) on stderr,
    one line per epoch, and with --json-log one JSON object per epoch on stdout."""

    def __init__(self, quiet: bool = False, json_log: bool = False):
        self.quiet, self.json_log = quiet, json_log
        self.progress = None
        self.task = None
        self.epochs = 0
        self.writes = True

    # the library calls these (cnncli.training.callbacks.TrainEvents)
    def train_begin(self, info: dict) -> None:
        from cnncli.cli.console import info as say

        self.epochs = info["epochs"]
        self.writes = info.get("writes", True)
        dist = info.get("distribute") or {}
        if dist:  # one line per worker, also with --quiet: which shard files it reads
            say(
                f"worker {dist['worker']}/{dist['num_workers']} reads train shards: "
                + ", ".join(dist["read_shards"])
            )
        if self.quiet:
            return
        start = info["initial_epoch"]
        counts = ", ".join(f"{k} {v:,}" for k, v in info["counts"].items())
        batch = f"batch {info['batch_size']}"
        if dist:
            batch = (
                f"global batch {dist['global_batch']} ({dist['per_worker_batch']} per worker x "
                f"{dist['num_workers']} workers)"
            )
        where = (
            f"into {info['run_dir']}"
            if self.writes
            else f"the chief (worker 0) writes {info['run_dir']}; this worker writes nothing"
        )
        say(f"strategy: {info.get('strategy', 'one device')}")
        say(
            f"training {info['params']:,} parameters on {counts} images, {batch}, "
            f"epochs {start + 1}..{info['epochs']}, {where}"
        )
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from cnncli.cli.console import err_console

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=err_console,
            transient=True,
        )
        self.progress.start()

    def epoch_begin(self, epoch: int, steps: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(
                f"epoch {epoch}/{self.epochs}", total=steps, metrics=""
            )

    def batch_end(self, step: int, logs: dict) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=step, metrics=_metrics(logs, short=True))

    def epoch_end(self, report) -> None:
        if self.json_log:
            sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        if self.quiet:
            return
        if not self.writes:
            saved = ""
        elif report.checkpoint:
            saved = f"saved {report.checkpoint}"
        elif report.improved:
            saved = "best so far"
        else:
            best = "-" if report.best_value is None else f"{report.best_value:.4f}"
            saved = f"no checkpoint ({report.monitor} did not improve on {best})"
        line = (
            f"epoch {report.epoch}/{report.epochs}  {_metrics(report.metrics)}  "
            f"{report.seconds:.1f}s  {saved}"
        )
        from cnncli.cli.console import err_console, escape

        (self.progress.console if self.progress else err_console).print(
            escape(line), soft_wrap=True
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _metrics(logs: dict, short: bool = False) -> str:
    names = {"loss": "loss", "accuracy": "acc" if short else "accuracy"}
    parts = []
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            name = key if not short else names.get(key, key)
            parts.append(f"{name} {logs[key]:.4f}")
    return "  ".join(parts)


def train_command(
    dataset_dir: Annotated[
        Path | None, typer.Argument(help="Dataset folder (from cnncli dataset build).")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="A built-in architecture (facade, mnist, tiny, ...)."),
    ] = None,
    spec: Annotated[
        Path | None, typer.Option("--spec", help="A model spec file (YAML/JSON).")
    ] = None,
    from_model: Annotated[
        Path | None, typer.Option("--from", help="Continue training a saved model (.keras/.h5).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Run folder (default: runs/train, runs/train2, ...).",
            rich_help_panel=_CKPT,
        ),  # fmt: skip
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing run folder.", rich_help_panel=_CKPT),
    ] = False,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", help="Total epochs (default 10; with --resume: a new total)."),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="Images per batch (multi-worker: per worker; the global batch is this x workers).",
        ),
    ] = 32,
    optimizer: Annotated[
        str, typer.Option("--optimizer", help="adam, rmsprop, sgd or adadelta.")
    ] = "adam",
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate (default: the optimizer's).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for weights, shuffling, dropout.")] = 0,
    early_stop: Annotated[
        int | None,
        typer.Option(
            "--early-stop",
            metavar="PATIENCE",
            help="Stop after this many epochs without improvement.",
        ),
    ] = None,
    monitor: Annotated[
        str | None,
        typer.Option("--monitor", help="Metric for best model and early stop (default val_loss)."),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option("--class-weight", help="'auto': weight classes by their inverse frequency."),
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Write TensorBoard logs into RUN_DIR/tensorboard.")
    ] = False,
    cache: Annotated[
        str,
        typer.Option("--cache", help="memory (fast), disk (bounded memory: a cache file) or none."),
    ] = "memory",
    augment: Annotated[
        bool,
        typer.Option(
            "--augment",
            rich_help_panel=_AUG,
            help="The course's augmentation: rotation 40, shifts 0.1, shear 0.2, zoom 0.2, "
            "horizontal flip (the options below change one).",
        ),  # fmt: skip
    ] = False,
    rotation: Annotated[
        float | None,
        typer.Option(
            "--rotation", metavar="DEG", help="Random rotation, +-degrees.", rich_help_panel=_AUG
        ),
    ] = None,
    shift: Annotated[
        float | None,
        typer.Option(
            "--shift", metavar="FRAC", help="Random shifts, +-fraction.", rich_help_panel=_AUG
        ),
    ] = None,
    shear: Annotated[
        float | None,
        typer.Option(
            "--shear", metavar="FRAC", help="Random shear intensity.", rich_help_panel=_AUG
        ),
    ] = None,
    zoom: Annotated[
        float | None,
        typer.Option(
            "--zoom", metavar="FRAC", help="Random zoom, +-fraction.", rich_help_panel=_AUG
        ),
    ] = None,
    flip: Annotated[
        bool | None,
        typer.Option("--flip/--no-flip", help="Random horizontal flip.", rich_help_panel=_AUG),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            metavar="PATTERN",
            rich_help_panel=_CKPT,
            help="Checkpoint file pattern in RUN_DIR (default checkpoints/"
            "save-{epoch:02d}-{val_loss:.4f}.keras; .h5 writes HDF5).",
        ),  # fmt: skip
    ] = None,
    save_best_only: Annotated[
        bool,
        typer.Option(
            "--save-best-only/--save-every-epoch",
            rich_help_panel=_CKPT,
            help="Write a checkpoint only when the monitored metric improves.",
        ),  # fmt: skip
    ] = True,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or epoch lines.")
    ] = False,
    json_log: Annotated[
        bool, typer.Option("--json-log", help="Print one JSON object per epoch on stdout.")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Continue an interrupted run from its last finished epoch.",
        ),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            rich_help_panel=_DIST,
            help="auto (multi-worker when TF_CONFIG or --workers is given, else one-device), "
            "one-device, mirrored (every device of this machine) or multi-worker.",
        ),  # fmt: skip
    ] = "auto",
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            metavar="HOST:PORT,...",
            rich_help_panel=_DIST,
            help="Every worker of a multi-worker run, the chief first (instead of TF_CONFIG).",
        ),  # fmt: skip
    ] = None,
    worker_index: Annotated[
        int | None,
        typer.Option(
            "--worker-index",
            metavar="I",
            rich_help_panel=_DIST,
            help="This machine's place in --workers (0: the chief, which writes RUN_DIR).",
        ),  # fmt: skip
    ] = None,
) -> None:
    """Train a CNN on a dataset into a run folder (best and last model, checkpoints,
    history.csv/png, run.json). Ctrl-C saves a resumable state (exit 130)."""
    from cnncli.errors import UsageError
    from cnncli.training.distribute import plan_strategy

    plan = plan_strategy(strategy, workers=workers, worker_index=worker_index)
    events = _RichEvents(quiet=quiet, json_log=json_log)
    try:
        if resume is not None:
            if arch or spec or from_model or out:
                raise UsageError(
                    "--resume continues a run with its own model and folder",
                    "leave out --arch/--spec/--from/-o (only --epochs may change)",
                )
            from cnncli.training.fit import resume as resume_run

            result = resume_run(
                resume, dataset_dir=dataset_dir, epochs=epochs, events=events, strategy=plan
            )
        else:
            if dataset_dir is None:
                raise UsageError("missing DATASET_DIR", "cnncli train DATASET_DIR --arch NAME")
            if sum(x is not None for x in (arch, spec, from_model)) != 1:
                raise UsageError(
                    "say which model to train with exactly one of --arch NAME, --spec FILE "
                    "or --from MODEL_FILE",
                    "see cnncli train --help",
                )
            from cnncli.training.augment import AugmentOptions
            from cnncli.training.fit import TrainOptions, train
            from cnncli.training.rundir import default_run_dir

            transforms = {"rotation": rotation, "shift": shift, "shear": shear, "zoom": zoom,
                          "flip": flip}  # fmt: skip
            if augment:
                aug = AugmentOptions.course(**transforms)
            elif any(v is not None for v in transforms.values()):
                aug = AugmentOptions(**{k: v for k, v in transforms.items() if v is not None})
            else:
                aug = None
            options = TrainOptions(
                epochs=10 if epochs is None else epochs,
                batch_size=batch_size,
                optimizer=optimizer.lower(),
                lr=lr,
                seed=seed,
                early_stop=early_stop,
                monitor=monitor,
                class_weight=class_weight,
                tensorboard=tensorboard,
                cache=cache,
                augment=aug,
                checkpoint=checkpoint,
                save_best_only=save_best_only,
            )
            run_dir = out if out is not None else default_run_dir()
            result = train(
                dataset_dir,
                run_dir,
                arch=arch,
                spec=spec,
                from_model=from_model,
                options=options,
                overwrite=overwrite,
                events=events,
                strategy=plan,
            )
    finally:
        events.close()
    _report(result, quiet=quiet, json_log=json_log)


def _report(result, quiet: bool, json_log: bool) -> None:
    from cnncli.cli.console import info, print_table

    best = result.best_metrics
    stop = " (stopped early)" if result.stopped_early else ""
    if not result.wrote:  # a worker that is not the chief
        info(f"worker done{stop}: the chief wrote the run folder {result.run_dir}")
        return
    if quiet or json_log:  # one line, on stderr
        info(f"done{stop}: best epoch {result.best_epoch}, run folder {result.run_dir}")
        return
    rows = [
        ("run folder", str(result.run_dir)),
        ("epochs finished", f"{result.epochs_run}{stop}"),
        ("best epoch", result.best_epoch),
    ]
    rows += [(f"best {k}", v) for k, v in best.items() if k != "epoch"]
    rows += [("best model", str(Path(result.run_dir) / "best.keras")),
             ("last model", str(Path(result.run_dir) / "last.keras"))]  # fmt: skip
    print_table(["", "value"], rows, title="Training")


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True)(train_command)
