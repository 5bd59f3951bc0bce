"""Start-up stays light: help, version and the NumPy/Pillow commands never load TensorFlow."""

import os
import subprocess
import sys
import time

import pytest

PROBE = """
import sys
from cnncli.cli.main import app
from typer.testing import CliRunner
result = CliRunner().invoke(app, {args!r})
assert result.exit_code in (0, 2), (result.exit_code, result.output)
heavy = sorted(m for m in ("tensorflow", "keras", "optuna", "ray") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["dataset", "--help"]],
    ids=lambda a: " ".join(a),
)
def test_no_tensorflow_at_startup(args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY=\n" in out or out.strip().endswith("HEAVY="), out


EVERY_HELP = """
import sys
import typer.main
from typer.testing import CliRunner
from cnncli.cli.main import app

def paths(group, path=()):
    for name, cmd in sorted(group.commands.items()):
        yield from paths(cmd, (*path, name)) if hasattr(cmd, "commands") else [(*path, name)]

shown = []
for path in paths(typer.main.get_command(app)):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)
    shown.append(" ".join(path))
print("SHOWN=" + ",".join(shown))
print("HEAVY=" + ",".join(m for m in ("tensorflow", "keras", "optuna", "ray") if m in sys.modules))
"""


def test_no_command_help_loads_tensorflow():
    """Every command's --help (train, tune, predict, evaluate, ... included) stays light
    (no TensorFlow, Keras or Optuna)."""
    out = subprocess.run(
        [sys.executable, "-c", EVERY_HELP], capture_output=True, text=True, check=True
    ).stdout
    shown = out.split("SHOWN=")[1].splitlines()[0].split(",")
    assert {"train", "tune", "predict", "evaluate", "dataset build", "filter"} <= set(shown), shown
    assert out.strip().endswith("HEAVY="), out


def test_usage_error_is_one_line_exit_2(cli):
    result = cli("--no-such-option")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: No such option"), result.stderr
    assert "Traceback" not in result.output


def test_version(cli):
    from cnncli import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cnncli {__version__}"


@pytest.mark.slow
def test_tensorflow_load_noise_is_silenced():
    """TensorFlow's load-time info lines (absl, before its level applies) are dropped."""
    out = subprocess.run(
        [sys.executable, "-m", "cnncli", "summary", "--arch", "tiny", "--input", "16x16x1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Total params" in out.stdout
    assert "absl" not in out.stderr and "I0000" not in out.stderr, out.stderr


def test_load_noise_filter_keeps_real_errors():
    from cnncli.cli.tf_load import drop_load_noise

    captured = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1795392393.534363   24491 port.cc:153] oneDNN custom operations are on.\n"
        b"W0000 00:00:1795392393.535474   24491 cudart_stub.cc:31] Could not find cuda drivers\n"
        b"E0000 00:00:1795392393.535474   24491 some.cc:1] a real error\n"
        b"UserWarning: something the user should see\n"
    )
    assert drop_load_noise(captured) == (
        b"E0000 00:00:1795392393.535474   24491 some.cc:1] a real error\n"
        b"UserWarning: something the user should see\n"
    )


COMPLETE = """
import sys
from cnncli.cli.main import main
sys.argv = ["cnncli", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in ("tensorflow", "keras", "optuna", "ray") if m in sys.modules))
"""


def _complete(args=(), **env):
    import os

    return subprocess.run(
        [sys.executable, "-c", COMPLETE, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout


@pytest.mark.parametrize(
    ("shell", "line"),
    [
        ("bash", "complete -o default -F _cnncli_completion cnncli"),
        ("zsh", "compdef _cnncli_completion cnncli"),
        ("fish", "complete --command cnncli"),
    ],
)
def test_show_completion_prints_the_script_without_tensorflow(shell, line):
    """`cnncli --show-completion` (Typer's; the shell named here, as Typer's tests do, instead
    of detected from the parent process); nothing is installed."""
    out = _complete(["--show-completion", shell], _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert line in out and f"_CNNCLI_COMPLETE=complete_{shell}" in out, out
    assert out.strip().endswith("HEAVY="), out


def test_completing_commands_and_options_loads_no_tensorflow():
    """What the installed script asks on <Tab>: command names, then a command's options."""
    out = _complete(_CNNCLI_COMPLETE="complete_bash", COMP_WORDS="cnncli tr", COMP_CWORD="1")
    assert out.splitlines()[0] == "train" and out.strip().endswith("HEAVY="), out
    words = "cnncli activations --ov"
    out = _complete(_CNNCLI_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD="2")
    assert out.splitlines()[0] == "--overwrite" and out.strip().endswith("HEAVY="), out


@pytest.mark.slow
def test_a_command_that_loaded_tensorflow_leaves_at_once_with_its_code(tmp_path):
    """Python's own shutdown after TensorFlow took 5-8 s (and can deadlock in tf.data's
    threads): exit_now flushes what was printed and leaves with the command's exit code."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, time\n"
        "import tensorflow as tf\n"
        "from cnncli.cli.state import exit_now\n"
        "@tf.function\n"
        "def f(x):\n"
        "    return x * 2 if x > 0 else x\n"  # autograph writes a temporary module for it
        "f(tf.constant(1))\n"
        "ds = tf.data.Dataset.range(10**6).map(lambda x: x * 2, num_parallel_calls=-1)"
        ".batch(32).prefetch(-1)\n"
        "it = iter(ds)\n"
        "for _ in range(20):\n"
        "    next(it)\n"
        "print('last line', time.time(), end='')\n"
        "exit_now(int(sys.argv[1]))\n"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    for code in (0, 3):
        done = subprocess.run(
            [sys.executable, str(script), str(code)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(scratch)},
        )
        ended = time.time()
        assert done.returncode == code, done.stderr[-2000:]
        assert done.stdout.startswith("last line")  # flushed although os._exit skips it
        assert ended - float(done.stdout.split()[-1]) < 3.0
        assert list(scratch.iterdir()) == []  # atexit ran: autograph's temporary files gone


LEAN = """
import sys
from cnncli.cli.tf_load import KERAS_OPTIONAL, prepare
prepare({verbose})
import keras
import tensorflow as tf
print("LOADED=" + ",".join(m for m in KERAS_OPTIONAL if m in sys.modules))
import numpy as np
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(np.ones((4, 3), "float32"), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
import matplotlib.pyplot, pandas, sklearn.metrics  # cnncli's own imports, after the load
print("AFTER=" + ",".join(m for m in KERAS_OPTIONAL if m in sys.modules))
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_tensorflow_loads_without_keras_optional_extras(verbose):
    """Keras' optional imports (scikit-learn, matplotlib, pandas: 1.5-2.3 s of its load here)
    are left out while TensorFlow loads under a command, Keras still trains, and the three
    load normally afterwards for cnncli's own use."""
    out = subprocess.run(
        [sys.executable, "-c", LEAN.format(verbose=verbose)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED=\n" in out.stdout, out.stdout
    assert "AFTER=sklearn,pandas,matplotlib" in out.stdout, out.stdout  # loaded when asked


def test_keras_optional_extras_already_loaded_are_kept(monkeypatch):
    """While TensorFlow loads, an extra not loaded yet is refused; one the process loaded
    before is not (Keras sees it as usual); after the load nothing is refused."""
    import pandas

    from cnncli.cli.tf_load import _TensorFlowFinder

    finder = _TensorFlowFinder()
    finder.loading = 1
    monkeypatch.setitem(sys.modules, "pandas", pandas)
    monkeypatch.delitem(sys.modules, "sklearn", raising=False)
    assert finder.find_spec("pandas.core") is None  # loaded before: left to Python
    assert finder.find_spec("json") is None
    with pytest.raises(ModuleNotFoundError, match="sklearn.base"):
        finder.find_spec("sklearn.base")
    finder.loading = 0
    assert finder.find_spec("sklearn.base") is None  # after the load: as usual


NEEDED = """
import sys
from cnncli.cli import tf_load
tf_load.prepare(False)
finder = next(f for f in sys.meta_path if isinstance(f, tf_load._TensorFlowFinder))
finder.refuse = (*tf_load.KERAS_OPTIONAL, "requests")  # TensorFlow imports requests unguarded
import keras
import numpy as np
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(np.ones((4, 3), "float32"), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
print("LOADED=" + ",".join(m for m in ("requests", "sklearn") if m in sys.modules))
"""


def test_a_tensorflow_that_needs_a_refused_package_loads_with_it():
    """Where TensorFlow or Keras imports one of the refused packages without a fallback (as
    TensorFlow does requests), the load is run again with every package allowed: the
    command works, it only loads slower."""
    out = subprocess.run(
        [sys.executable, "-c", NEEDED], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED=requests,sklearn" in out.stdout, out.stdout
