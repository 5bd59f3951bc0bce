"""The one place matplotlib is set up: `pyplot()`, headless unless the host program chose
a backend. Every module that draws (plots, lr_plots, runs' charts, inference's task plots)
gets pyplot here."""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot, headless: the Agg backend (no display needed) unless the host
    program already chose one (matplotlib.use, MPLBACKEND such as Jupyter's inline backend,
    or pyplot imported), which is left as it is. Draw inside
    `plt.rc_context(matplotlib_rc())` so text uses the bundled Hangul font without changing
    the settings of a host program, and close each figure."""
    import matplotlib

    if not _backend_chosen():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _backend_chosen() -> bool:
    """Whether this process already picked a matplotlib backend (or imported pyplot, which
    picks one when it draws). `matplotlib.use(..., force=False)` is no such test: it still
    switches the backend whenever the new one can be loaded."""
    import matplotlib

    if "matplotlib.pyplot" in sys.modules:
        return True
    # None while the backend is still "auto" (no matplotlib.use, no MPLBACKEND, no rc file)
    chosen = getattr(matplotlib.rcParams, "_get_backend_or_none", lambda: None)()
    return chosen is not None


def load_in_background(*modules: str) -> threading.Thread:
    """Load matplotlib (set up as pyplot() does) and `modules` in a daemon thread, for a
    figure this process draws later (history.png when training ends). The import takes
    0.5-0.7 s on the 2-core test machine; started once TensorFlow computes (which releases
    the GIL and leaves part of a core idle), it is done by the time the figure is drawn. A
    failure is left for the drawing's own import to report."""

    def load() -> None:
        try:
            pyplot()
            for name in modules:
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported where the figure is drawn
            pass

    thread = threading.Thread(target=load, name="cnncli-load-matplotlib", daemon=True)
    thread.start()
    return thread
