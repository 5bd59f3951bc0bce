"""Fuzz probe (issue 13): many more random inputs than the test suite's through the readers
tests/test_fuzz.py fuzzes (label tables, images, model metadata and config) and `dataset
build` command lines with the task and table options (issue 23: --task, --label-cols,
--target-col, --label-delim, --split-files; a tenth as many), counting the inputs tried and
the unexpected exceptions: anything but cnncli's own CnnError, or a command line answered
otherwise than with exit 0 or one "error:" line (goal 0).

    python bench/fuzz_probe.py [--examples N] [--seed S]

Also the `fuzz` section of bench/probe_reliability.py. Each input is a random program read by
tests/test_fuzz.py's generators (one home for them); an unexpected exception is shown with
its program in hex, which that file's table_example / image_example / model_example replay.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND_SHARE = 0.1  # a `dataset build` command line costs about 30 times a table read


def _examples_module():
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("fuzz_examples", ROOT / "tests" / "test_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _quiet_stderr():
    """libtiff writes its complaints to file descriptor 2 itself: thousands of lines here."""
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def fuzz(examples: int = 10_000, seed: int = 13, work: Path | None = None, echo=print) -> dict:
    """`examples` random inputs per reader -> {"trials", "lost" (unexpected exceptions),
    per reader the inputs tried, and "unexpected": what came out, with a program}."""
    f = _examples_module()
    work = Path(work or tempfile.mkdtemp(prefix="fuzz_probe-"))
    bases = f.small_images()
    folder = f.images_folder(work / "tables")
    commands = f.images_folder(work / "commands" / "images")
    readers = {
        "tables": lambda data: f.table_example(data, folder),
        "images": lambda data: f.image_example(data, work, bases),
        "models": lambda data: f.model_example(data, work),
        "commands": lambda data: f.command_example(data, commands),
    }
    share = {"commands": COMMAND_SHARE}
    rng = random.Random(seed)
    counts: dict = {"trials": 0, "lost": 0}
    unexpected: Counter = Counter()
    first: dict[str, str] = {}
    with _quiet_stderr():
        for name, run in readers.items():
            start = time.perf_counter()
            tried = max(1, int(examples * share.get(name, 1)))
            for _ in range(tried):
                data = rng.randbytes(rng.randint(1, 96))
                try:
                    run(data)
                except AssertionError as e:  # a command line's answer (command_example)
                    said = re.findall(r"error: [^'\"\\]{0,80}", str(e)) or [str(e)[:80]]
                    key = f"{name}: {said[-1]}"
                    unexpected[key] += 1
                    first.setdefault(key, data.hex())
                except Exception as e:  # the CnnErrors were let through by only_cnncli_errors
                    at = traceback.extract_tb(e.__traceback__)[-1]
                    key = f"{name}: {type(e).__name__} at {Path(at.filename).name}:{at.lineno}"
                    unexpected[key] += 1
                    first.setdefault(key, data.hex())
            counts[name] = tried
            counts["trials"] += tried
            found = sum(n for key, n in unexpected.items() if key.startswith(name))
            echo(
                f"  {name}: {tried} inputs in {time.perf_counter() - start:.0f} s, "
                f"{found} unexpected"
            )
    counts["lost"] = sum(unexpected.values())
    if unexpected:
        counts["unexpected"] = "; ".join(
            f"{key} x{n} (program {first[key]})" for key, n in unexpected.most_common()
        )
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=10_000, help="inputs per reader (command lines: a tenth)"
    )
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    counts = fuzz(args.examples, args.seed)
    print(f"inputs tried {counts['trials']}, unexpected exceptions {counts['lost']}")
    if counts.get("unexpected"):
        print(counts["unexpected"])
    return 1 if counts["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
