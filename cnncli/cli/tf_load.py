"""How TensorFlow and Keras load under a command: quietly, and without the optional extras
Keras imports for features cnncli never uses.

`prepare(verbose)` runs before TensorFlow loads (the root callback and `main`) and puts one
finder first on sys.meta_path:

- **Quiet.** absl writes every C++ message to stderr until absl::InitializeLog() runs, and
  TensorFlow never calls it (tensorflow/tensorflow#102212), so TF_CPP_MIN_LOG_LEVEL=3 is not
  applied to "oneDNN custom operations are on" or "Could not find cuda drivers". Unless
  --verbose, `import tensorflow` runs with file descriptor 2 captured, and what is not such a
  line (errors, Python warnings) is replayed.
- **Lean.** `import keras` (and `import tensorflow`, which loads Keras) also loads
  scikit-learn (for keras.wrappers' SKLearnClassifier), matplotlib.pyplot (for
  keras.visualization's plot_image_gallery), pandas (to slice DataFrames given to `fit`),
  IPython (to tell whether it runs in a notebook) and OpenCV (for draw_bounding_boxes),
  each under `try: ... except ImportError`, Keras' own way of making them optional. cnncli
  uses none of those features; scikit-learn, matplotlib and pandas alone cost 1.5-2.3 s
  of `import keras`'s 6.7-8.2 s on the 2-core test machine, IPython 0.3 s more. (requests
  is not among them: TensorFlow imports it unguarded; a TensorFlow or Keras that imports
  one of these so is loaded a second time, with them.) While
  TensorFlow or Keras is being loaded, an import of one of KERAS_OPTIONAL that is not loaded
  yet is refused with ImportError, so Keras takes its "not installed" branch; once they are
  loaded, cnncli's own imports of them (history.png, the metrics of `evaluate`) load them as
  usual. Only those Keras features see them missing.
- **Without the garbage collector.** The load makes about 600,000 objects that live as long
  as the process, and the collector's full passes over them took 0.5-1 s of it; it is off
  while TensorFlow and Keras load, and what they made is then frozen (gc.freeze: left out
  of later passes, which the tracing of the first train step also runs).
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile

# the top-level packages Keras imports only for features cnncli does not use (see above)
KERAS_OPTIONAL = ("sklearn", "pandas", "matplotlib", "IPython", "cv2")
_LOADS_KERAS = ("tensorflow", "keras")

# The absl lines TensorFlow's C++ side prints while it loads (glog's shape).
_ABSL_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:. ]+\d+ [\w.]+:\d+\])"
)


def prepare(verbose: bool) -> None:
    """Before TensorFlow loads: its logs silenced unless `verbose`, and the finder that loads
    it quietly (unless `verbose`) and without Keras' optional extras (KERAS_OPTIONAL)."""
    finder = next((f for f in sys.meta_path if isinstance(f, _TensorFlowFinder)), None)
    if finder is None and "tensorflow" not in sys.modules:
        finder = _TensorFlowFinder()
        sys.meta_path.insert(0, finder)
    if finder is not None:
        finder.quiet = not verbose
    if verbose:
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


def drop_load_noise(captured: bytes) -> bytes:
    """The captured stderr of TensorFlow's import without absl's info/warning lines."""
    kept = [line for line in captured.splitlines(keepends=True) if not _ABSL_NOISE.match(line)]
    return b"".join(kept)


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Wraps the loaders of `tensorflow` and `keras` (_TensorFlowLoader) and, while one of
    them runs, refuses the imports of the `refuse` packages (KERAS_OPTIONAL) not loaded
    yet."""

    def __init__(self, refuse: tuple[str, ...] = KERAS_OPTIONAL) -> None:
        self.quiet = True
        self.refuse = refuse
        self.loading = 0  # tensorflow/keras module bodies running now (nested)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if self.loading and top in self.refuse and top not in sys.modules:
            raise ModuleNotFoundError(f"{fullname}: {_REFUSED}", name=fullname)
        if fullname not in _LOADS_KERAS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _TensorFlowLoader(spec.loader, self)
        return spec


_REFUSED = "not loaded with TensorFlow under cnncli"


class _TensorFlowLoader(importlib.abc.Loader):
    def __init__(self, loader, finder: _TensorFlowFinder) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        outermost = self._finder.loading == 0
        collecting = outermost and gc.isenabled()
        if collecting:
            gc.disable()
        try:
            try:
                self._exec(module)
            except ModuleNotFoundError as e:
                if not (outermost and _REFUSED in str(e)):
                    raise
                # a TensorFlow or Keras that needs one of them: loaded again, with them
                self._finder.refuse = ()
                self._exec(module)
        finally:
            module.__loader__ = module.__spec__.loader = self._loader  # as if loaded plainly
            if collecting:
                gc.enable()
                gc.freeze()

    def _exec(self, module) -> None:
        self._finder.loading += 1
        try:
            if self._finder.quiet and module.__name__ == "tensorflow":
                _run_capturing_stderr(lambda: self._loader.exec_module(module))
            else:
                self._loader.exec_module(module)
        finally:
            self._finder.loading -= 1


def _run_capturing_stderr(run) -> None:
    """run() with file descriptor 2 captured; what is not absl's load noise is replayed.
    The C++ messages bypass Python's sys.stderr, so only a descriptor-level redirect reaches
    them; anything else written meanwhile (errors, Python warnings) is passed through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            run()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = drop_load_noise(capture.read())
            if rest:
                os.write(2, rest)
