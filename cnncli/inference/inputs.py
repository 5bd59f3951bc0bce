"""The images `predict` is given: image files and folders (cnncli.images.collect_images
walks the folders), glob patterns the shell left alone (`'test/*.png'`, `'data/**/*.jpg'`,
quoted, or on a shell that does not expand them), and a list file (`--files list.txt`: one
path a line, relative to the list's folder unless absolute; blank lines and `#` lines
ignored), in the order given. No TensorFlow: commands call it before loading a model.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cnncli.datasets.tables import read_text
from cnncli.errors import InputError, UsageError
from cnncli.images import is_image_file, path_key

LIST_LIMIT = 64 * 2**20  # a list of a million paths is about 50 MB
_GLOB = re.compile(r"[*?\[]")


def expand_inputs(
    inputs: Sequence | None = (), files_list: str | os.PathLike | None = None
) -> list[Path]:
    """The paths to predict: `inputs` with each glob pattern that names no file replaced by
    its matches, then the paths of `files_list`. UsageError when nothing is given,
    InputError for a pattern that matches no image or a list that cannot be used."""
    out: list[Path] = []
    for item in inputs or ():
        p = Path(item)
        if not p.exists() and _GLOB.search(str(item)):
            out += expand_glob(str(item))
        else:
            out.append(p)
    if files_list is not None:
        out += read_image_list(files_list)
    if not out:
        raise UsageError(
            "no images given",
            "give image files, folders, a quoted pattern such as 'test/*.png', or --files LIST",
        )
    return out


def expand_glob(pattern: str) -> list[Path]:
    """The image files and folders matching `pattern` (`**` crosses folders), in natural
    order (img2 before img10); hidden files left out."""
    found = [Path(m) for m in glob.glob(pattern, recursive=True)]
    images = sorted((p for p in found if p.is_dir() or is_image_file(p)), key=path_key)
    if not images:
        raise InputError(
            f"no image file matches {pattern}",
            "check the pattern, or give the files or their folder",
        )
    return images


def read_image_list(path: str | os.PathLike) -> list[Path]:
    """The image paths listed in the text file `path` (see the module docstring)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"image list {path} not found", "check the --files path") from None
    except OSError as e:
        raise InputError(f"cannot read image list {path} ({e.strerror or e})") from None
    if path.is_dir():
        raise InputError(
            f"{path} is a folder, not an image list",
            "give the folder as IMAGE|DIR, or a text file to --files",
        )
    if size > LIST_LIMIT:
        raise InputError(
            f"image list {path} is {size / 2**20:.0f} MiB, more than the "
            f"{LIST_LIMIT // 2**20} MiB an image list may be",
            "split it into several lists",
        )
    text, _ = read_text(path, None, "list of image paths", "--files", "a text file of image paths")
    out = []
    for line in text.splitlines():
        item = line.strip()
        if item and not item.startswith("#"):
            p = Path(item)
            out.append(p if p.is_absolute() else path.parent / p)
    if not out:
        raise InputError(
            f"image list {path} lists no image",
            "write one image path a line, relative to the list's folder",
        )
    return out
