"""Global CLI options, set by the root callback and read by the error handler."""

from __future__ import annotations

import atexit
import logging
import os
import sys

debug = False
verbose = False


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
