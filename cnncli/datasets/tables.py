"""Reading a label table: its text encoding (UTF-8 with or without BOM, cp949/EUC-KR,
UTF-16), its separator (comma, tab, semicolon), and which column holds the image files, the
labels and the class names, found without flags (an unnamed pandas index column such as the
course's `,image,type,y` is recognised and ignored). Values are NFC-normalized and stripped."""

from __future__ import annotations

import io
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from cnncli.errors import InputError, UsageError, path_error
from cnncli.images import is_image_file

if TYPE_CHECKING:
    import pandas as pd

LABEL_NAMES = ("y", "label", "labels", "class", "target")
NAME_NAMES = ("type", "name", "class_name", "classname", "label_name", "category", "kind")
INDEX_NAMES = ("index", "idx", "id", "no", "#")
_INT = re.compile(r"[+-]?[0-9]+(\.0*)?")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", str(text))


def read_table(path: str | os.PathLike, encoding: str | None = None) -> tuple[Any, str, str]:
    """Read a label table -> (DataFrame of stripped strings, encoding used, separator)."""
    import pandas as pd

    path = Path(path)
    text, used = read_text(path, encoding, "label table", "--labels TABLE.csv", "the CSV/TSV file")
    if not text.strip():
        raise InputError(f"label table {path} is empty", "give a table with a header row")
    first = text.splitlines()[0]
    counts = {sep: first.count(sep) for sep in ("\t", ",", ";")}
    sep = max(counts, key=lambda s: (counts[s], s == ","))
    if counts[sep] == 0:
        sep = ","
    try:
        df = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except Exception as e:  # pandas' parser errors name the line
        raise InputError(f"cannot parse label table {path}: {' '.join(str(e).split())}") from None
    _check_header(text, sep, path)
    df.columns = [nfc(str(c)).strip() for c in df.columns]
    df = df.apply(lambda col: col.map(lambda s: nfc(s).strip() if isinstance(s, str) else ""))
    return df, used, sep


def _check_header(text: str, sep: str, path: Path) -> None:
    """Refuse a header that names a column twice ('y,y', or 'y' and ' y'): pandas would
    rename the second 'y.1' and a command would read whichever it finds. The raw header
    is read as pandas reads it, then compared as the columns are (NFC, stripped)."""
    import pandas as pd

    raw = pd.read_csv(
        io.StringIO(text),
        sep=sep,
        dtype=str,
        header=None,
        nrows=1,
        keep_default_na=False,
        skip_blank_lines=True,
    )
    names = [nfc(str(c)).strip() for c in raw.iloc[0]] if len(raw) else []
    first: dict[str, int] = {}
    for k, name in enumerate(names, 1):
        if name and name in first:
            raise InputError(
                f"label table {path} names column {name!r} twice (columns {first[name]} and {k})",
                "rename one of them, so that each column has its own name",
            )
        first.setdefault(name, k)


def read_text(
    path: Path, encoding: str | None, what: str, flag: str, expected: str
) -> tuple[str, str]:
    """A text input (`what`: "label table", "split file") -> (text without BOM, encoding
    used): `encoding`, else UTF-8 (BOM or not), UTF-16 with a BOM, or cp949/EUC-KR. An
    image, model, workbook or other binary file is refused by name: "give `expected` (`flag`)"."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found", f"check the {flag.split()[0]} path") from None
    except OSError as e:
        told = path_error(e)  # a name too long for the file system, a symlink loop
        if told is not None:
            raise told from None
        raise InputError(f"cannot read {what} {path} ({e.strerror or e})") from None
    kind = binary_kind(raw, path, nul_counts=encoding is None)
    if kind:
        raise InputError(f"{path} is {kind}, not a {what}", f"give {expected} ({flag})")
    if encoding:
        try:
            text = raw.decode(encoding)
        except LookupError:
            raise UsageError(f"unknown encoding {encoding!r}", "try utf-8 or cp949") from None
        except UnicodeDecodeError as e:
            raise InputError(
                f"{what} {path} is not valid {encoding} (byte {e.start})",
                "pass the file's real encoding with --encoding",
            ) from None
        used = encoding
    else:
        text, used = _decode_guess(raw, path, what)
    return text.lstrip("\ufeff"), used


# The first bytes of files that are given by mistake where a text table belongs.
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 model?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Excel workbook (.xls) or Office file"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\x93NUMPY", "a NumPy array file (.npy)"),
)


def binary_kind(raw: bytes, path: Path, nul_counts: bool = True) -> str | None:
    """What a file is when it is not text ("a PNG image", "an Excel workbook (.xlsx)", "a
    binary file"), from its first bytes; None for text. NUL bytes mean binary only when
    `nul_counts` (not when an --encoding such as UTF-16 was given)."""
    for magic, kind in MAGIC:
        if raw.startswith(magic):
            return kind
    if raw.startswith(b"BM") and raw[6:10] == b"\0\0\0\0":
        return "a BMP image"
    if raw.startswith(b"RIFF") and raw[8:12] == b"WEBP":
        return "a WebP image"
    if raw.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if nul_counts and b"\0" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a binary file (it holds NUL bytes)"
    return None


def _zip_kind(path: Path) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a ZIP archive"
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (.xlsx; save it as CSV)"
    if "config.json" in names and any(n.endswith(".h5") for n in names):
        return "a Keras model (.keras)"
    if "mimetype" in names and any(n == "content.xml" for n in names):
        return "an OpenDocument file (save it as CSV)"
    return "a ZIP archive"


def _decode_guess(raw: bytes, path: Path, what: str) -> tuple[str, str]:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as e:  # an odd byte count (cut short), a lone surrogate
            why = "an odd number of bytes" if len(raw) % 2 else f"bad data at byte {e.start}"
            raise InputError(
                f"{what} {path} starts as UTF-16 but is damaged ({why})",
                "save it again (as UTF-8 or UTF-16), or pass its encoding with --encoding",
            ) from None
    for enc in ("utf-8-sig", "cp949"):  # cp949 is a superset of EUC-KR
        try:
            text = raw.decode(enc)
            if enc == "utf-8-sig":
                enc = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
            return text, enc
        except UnicodeDecodeError:
            continue
    raise InputError(
        f"{what} {path} is neither UTF-8 nor cp949/EUC-KR",
        "pass its encoding with --encoding (for example --encoding latin-1)",
    )


def is_whole_number(s: str) -> bool:
    """'3', '+3', '3.0': a value that can be a class index (ASCII digits only)."""
    return bool(_INT.fullmatch(s))


def is_numeric_column(series: Iterable[str]) -> bool:
    """Whole numbers in all the non-empty values but at most one in ten (or one, in a
    short table), and in more of them than not: a column of class indices with a typo or
    two ('O' for '0', a stray NUL byte) is still one, and those rows are bad rows."""
    values = [v for v in series if v != ""]
    whole = sum(1 for v in values if is_whole_number(v))
    others = len(values) - whole
    return whole > others and others <= max(1, len(values) // 10)


def _ignorable_index(name: str, series) -> bool:
    """An unnamed pandas index column (',image,...') or an 'Index' counter column."""
    if not (name == "" or name.startswith("Unnamed:") or name.casefold() in INDEX_NAMES):
        return False
    return is_numeric_column(series)


@overload
def need_column(df: pd.DataFrame, name: str, flag: str, path: str | os.PathLike) -> str: ...
@overload
def need_column(df: pd.DataFrame, name: None, flag: str, path: str | os.PathLike) -> None: ...
def need_column(
    df: pd.DataFrame, name: str | None, flag: str, path: str | os.PathLike
) -> str | None:
    """`name` as a column of the table, or a UsageError naming the closest column."""
    if name is None:
        return None
    name = nfc(name).strip()
    if name not in df.columns:
        import difflib

        cols = ", ".join(repr(c) for c in df.columns)
        close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=1, cutoff=0.5)
        if not close:  # 'Tags' for 'tags'
            close = [c for c in df.columns if str(c).casefold() == name.casefold()][:1]
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"{flag} {name!r} is not a column of {path}", f"{hint}the columns are {cols}"
        )
    return name


def detect_columns(
    df: pd.DataFrame,
    files: dict[str, str],
    *,
    image_col: str | None = None,
    label_col: str | None = None,
    name_col: str | None = None,
    split_col: str | None = None,
    path: str | os.PathLike = "the table",
) -> dict:
    """Choose the image, label and name columns (overrides first) -> dict of column names."""
    image_col = need_column(df, image_col, "--image-col", path)
    label_col = need_column(df, label_col, "--label-col", path)
    name_col = need_column(df, name_col, "--name-col", path)
    split_col = need_column(df, split_col, "--split-col", path)
    explicit = {c for c in (image_col, label_col, name_col, split_col) if c}
    ignored = [c for c in df.columns if c not in explicit and _ignorable_index(c, df[c])]
    free = [c for c in df.columns if c not in explicit and c not in ignored]

    if image_col is None:

        def score(col):
            keys = {nfc(v).replace("\\", "/") for v in df[col] if v}
            return sum(1 for k in keys if os.path.normpath(k).replace(os.sep, "/") in files)

        scores = {c: score(c) for c in free}
        best = max(scores.values(), default=0)
        winners = [c for c, s in scores.items() if s == best and s > 0]
        if not winners:  # nothing matches: take the column that looks like file names
            winners = [c for c in free if sum(is_image_file(v) for v in df[c]) > len(df) / 2]
        if len(winners) != 1:
            why = "several columns" if winners else "no column"
            raise UsageError(
                f"{why} of {path} name image files under IMAGES_DIR",
                "name the image column with --image-col",
            )
        image_col = winners[0]
    free = [c for c in free if c != image_col]

    if label_col is None:
        folded = {c: c.casefold() for c in free}
        numeric_named = [c for c in free if folded[c] in LABEL_NAMES and is_numeric_column(df[c])]
        text_named = [c for c in free if folded[c] in LABEL_NAMES]
        name_named = [c for c in free if folded[c] in NAME_NAMES]
        if numeric_named:
            label_col = numeric_named[0]
        elif text_named:
            label_col = text_named[0]
        elif name_named:
            label_col = name_named[0]
        elif len(free) == 1:
            label_col = free[0]
        else:
            raise UsageError(
                f"cannot tell which column of {path} holds the labels "
                f"(looked for {', '.join(LABEL_NAMES)})",
                "name it with --label-col",
            )
    free = [c for c in free if c != label_col]
    if name_col is None and is_numeric_column(df[label_col]):
        text_cols = [c for c in free if not is_numeric_column(df[c])]
        named = [c for c in text_cols if c.casefold() in LABEL_NAMES + NAME_NAMES]
        if named:
            name_col = named[0]
        elif len(text_cols) == 1:
            name_col = text_cols[0]
    elif (
        name_col is not None
        and not is_numeric_column(df[label_col])
        and is_numeric_column(df[name_col])
    ):
        label_col, name_col = name_col, label_col  # the number is the index, the text its name
    return {
        "image": image_col,
        "label": label_col,
        "name": name_col,
        "split": split_col,
        "ignored": ignored,
    }
