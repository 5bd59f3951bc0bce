"""A full disk, a read-only file system or a denied permission while writing an output: one
line that names the output and the space free there (cnncli.errors.output_error, the one
place that words it), the right exit code, and nothing half written left behind. Training's
own cases are in test_train_stops.py."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from cnncli.errors import ExitCode, OutputWriteError, output_error, writing

FREE = r"[\d.]+ (bytes|KB|MB|GB|TB) free there"


@pytest.fixture
def images(tmp_path, tiny):
    return tiny.make_images(tmp_path / "images", ["a", "b"], per_class=6)


def test_a_full_disk_during_a_build_names_the_dataset_and_leaves_nothing(
    cli, images, tmp_path, monkeypatch
):
    """ENOSPC while the shards are written (it used to be "unexpected OSError: [Errno 28]")."""
    from cnncli.datasets.shards import ShardWriter

    original, written = ShardWriter.write, []

    def write(self, record):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(record))
        return original(self, record)

    monkeypatch.setattr(ShardWriter, "write", write)
    out = tmp_path / "ds"
    r = cli("dataset", "build", images, "-o", out, "--workers", "1")
    assert r.exit_code == ExitCode.FAILURE == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: cannot write {re.escape(str(out))}: the disk is full \({FREE}; the write "
        r"needed about [\d.]+ KB\): free some space or choose another output, then run the "
        r"command again",
        line,
    ), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no ds, no .ds.partial-*


def test_an_unwritable_output_folder_is_a_usage_error(cli, images, tmp_path, monkeypatch):
    """EACCES making the build's folder beside OUT_DIR (a folder the user cannot write)."""
    original = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name.startswith(".ds."):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    out = tmp_path / "ds"
    r = cli("dataset", "build", images, "-o", out, "--workers", "1")
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert re.fullmatch(
        rf"error: cannot write {re.escape(str(out))}: permission denied: choose an output "
        r"folder you can write to",
        r.stderr.strip(),
    ), r.stderr


def test_which_oserrors_are_told_as_an_output_and_how(tmp_path):
    out = tmp_path / "run" / "last.keras"
    no_space = output_error(OSError(errno.ENOSPC, "No space left on device"), out, 3 << 20)
    assert isinstance(no_space, OutputWriteError) and no_space.exit_code == 1
    assert re.fullmatch(
        rf"cannot write {re.escape(str(out))}: the disk is full \({FREE}; the write needed "
        r"about 3.0 MB\): free some space or choose another output, then run the command again",
        no_space.one_line(),
    )
    quota = output_error(OSError(errno.EDQUOT, "Disk quota exceeded"), out)
    assert "the disk quota is used up" in str(quota) and quota.exit_code == 1
    read_only = output_error(OSError(errno.EROFS, "Read-only file system"), out)
    assert "the file system is read-only" in str(read_only) and read_only.exit_code == 2
    # a permission error on the output, a file in it or its temporary: told; on an input: not
    for name in (out, out / "x", out.parent / ".last.keras.tmp-1-2.keras", None):
        e = PermissionError(errno.EACCES, "Permission denied", None if name is None else str(name))
        assert output_error(e, out).exit_code == 2, name
    unreadable = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "in.png"))
    assert output_error(unreadable, out) is None
    assert output_error(OSError(errno.EIO, "I/O error"), out) is None
    # without a path (the CLI's last resort): the file the error names, if any
    named = OSError(errno.ENOSPC, "No space left on device", str(out))
    assert str(output_error(named)).startswith(f"cannot write {out}: the disk is full (")
    bare = output_error(OSError(errno.ENOSPC, "No space left on device"))
    assert str(bare).startswith("cannot write an output: the disk is full: free some space")
    assert output_error(PermissionError(errno.EACCES, "Permission denied", "x")) is None
    with pytest.raises(OutputWriteError, match="cannot write .*last.keras: the disk is full"):
        with writing(out):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(FileNotFoundError), writing(out):
        raise FileNotFoundError(errno.ENOENT, "No such file", "in.png")


def test_the_cli_tells_a_full_disk_the_library_did_not_name(capsys):
    """The last resort in run_guarded: no "unexpected OSError: [Errno 28]"."""
    from cnncli.cli.main import run_guarded

    def fails():
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/out.png")

    with pytest.raises(SystemExit) as exc:
        run_guarded(fails, [])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write /somewhere/out.png: the disk is full (")
    assert "unexpected" not in err and "Errno" not in err


def test_tensorflows_own_writers_on_a_full_disk_are_one_line_and_resume_goes_on(tmp_path, tiny):
    """TensorFlow's own writers (the --cache disk files, TensorBoard's event files) report a
    full disk as a tf.errors text, not an OSError: still one line naming the run folder,
    run.json "failed" (disk full), and --resume goes on."""
    import json

    import keras
    import tensorflow as tf

    from cnncli.training.fit import resume, train
    from cnncli.training.options import TrainOptions

    images = tiny.make_images(tmp_path / "images", ["a", "b"], per_class=6)
    ds = tiny.build(images, tmp_path / "ds", val=0.25, test=0.0)

    class CacheWriteFails(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"{tmp_path}/run/cache-1/x.data: No space left on device"
                )

    run = tmp_path / "run"
    opts = TrainOptions(epochs=2, batch_size=4, seed=1, cache="disk")
    with pytest.raises(OutputWriteError) as exc:
        train(ds, run, model=tiny.model(2), options=opts, callbacks=[CacheWriteFails()])
    line = str(exc.value)
    assert exc.value.exit_code == 1
    assert line.startswith(f"training stopped after 1 finished epoch(s): cannot write {run}")
    assert "the disk is full" in line and f"cnncli train --resume {run}" in line
    meta = json.loads((run / "run.json").read_text())
    assert (meta["status"], meta["failed_by"]) == ("failed", "disk full")
    assert resume(run).epochs_run == 2
