"""Global CLI options, set by the root callback and read by the error handler."""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile

debug = False
verbose = False

# What TensorFlow's C++ side prints while it loads even with TF_CPP_MIN_LOG_LEVEL=3: absl
# writes every message to stderr until absl::InitializeLog() runs, and TensorFlow never calls
# it (tensorflow/tensorflow#102212), so the level is not applied to "oneDNN custom operations
# are on" or "Could not find cuda drivers". The lines have glog's shape.
_ABSL_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:. ]+\d+ [\w.]+:\d+\])"
)


def quiet_tensorflow(verbose_logs: bool) -> None:
    """Silence TensorFlow's C++ and Python logs unless --verbose. Must run before TF loads."""
    if verbose_logs:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")  # absl C++ logging (TF >= 2.17)
    # gRPC (multi-worker training): at "ERROR" it still prints a NodeDef line on every run;
    # a real cluster failure reaches the user as TensorFlow's exception, in one line.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    # Keras' and TensorFlow's Python-side notices go through absl's logger ("absl"):
    # "WARNING:absl:You are saving your model as an HDF5 file ... legacy" on every .h5
    # checkpoint, "Compiled the loaded model, but the compiled metrics ...". Errors still show.
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def drop_load_noise(captured: bytes) -> bytes:
    """The captured stderr of TensorFlow's import without absl's info/warning lines."""
    kept = [line for line in captured.splitlines(keepends=True) if not _ABSL_NOISE.match(line)]
    return b"".join(kept)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs `import tensorflow` with file descriptor 2 captured, then replays what was not noise.

    The C++ messages bypass Python's sys.stderr, so only a descriptor-level redirect reaches
    them; anything else written meanwhile (errors, Python warnings) is passed through.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                module.__loader__ = module.__spec__.loader = self._loader  # as if loaded plainly
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                rest = drop_load_noise(capture.read())
                if rest:
                    os.write(2, rest)


def exit_now(code: str | int | None = 0) -> None:
    """End the process with SystemExit's `code` (None, a number or a message).

    Once TensorFlow is loaded, Python's own shutdown tears its runtime down piece by piece:
    measured 5-8 s after a command's last line on this 2-core machine (the "stall after the
    last epoch"), and a tf.data iterator destroyed then can deadlock in its thread pool (a
    test process seen never to exit). By then every output of a command is committed
    (written under temporary names and renamed; claims released by their `with` blocks), so
    the functions registered with atexit run (TensorFlow's autograph deletes its temporary
    files there), the streams are flushed and the process leaves through os._exit, skipping
    the teardown. Without TensorFlow loaded, a plain sys.exit."""
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # what a normal exit runs first: temporary files removed, ...
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    os._exit(code)
