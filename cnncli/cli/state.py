"""Global CLI options, set by the root callback and read by the error handler."""

from __future__ import annotations

import os

debug = False
verbose = False


def quiet_tensorflow(verbose_logs: bool) -> None:
    """Silence TensorFlow's C++ and Python logs unless --verbose. Must run before TF loads."""
    if verbose_logs:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")  # absl C++ logging (TF >= 2.17)
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("KERAS_HOME", os.environ.get("KERAS_HOME", ""))
    if not os.environ["KERAS_HOME"]:
        del os.environ["KERAS_HOME"]
