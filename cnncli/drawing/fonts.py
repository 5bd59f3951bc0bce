"""The bundled Hangul font, for Pillow and matplotlib alike.

CnncliGothic (a Hangul subset of NanumGothic, SIL OFL; see cnncli/fonts/README.md) draws
every caption, title and figure cnncli makes, so Korean class names render on any machine.
`load_font` gives it to Pillow; `matplotlib_rc` registers it with matplotlib once.
"""

from __future__ import annotations

import os
import re
import unicodedata
import weakref
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONTS_DIR = Path(__file__).resolve().parent.parent / "fonts"
FONT_PATH = FONTS_DIR / "CnncliGothic.ttf"
_PROBE = "\U0010fffd"  # a private-use code point no font maps: renders the font's .notdef

AnyFont = ImageFont.FreeTypeFont | ImageFont.ImageFont
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")  # syllables and Jamo


def has_hangul(text: str) -> bool:
    """Whether `text` holds a Hangul syllable or Jamo (Korean text)."""
    return bool(HANGUL.search(text))


@lru_cache(maxsize=32)
def load_font(size: int, path: str | os.PathLike | None = None) -> AnyFont:
    """The bundled Hangul font at `size` pixels (or the font file at `path`).

    Falls back to Pillow's default font (Aileron, Latin only) when the file is missing or
    not a usable font; `is_fallback_font` tells which one was loaded.
    """
    size = max(1, int(size))
    try:
        return ImageFont.truetype(str(path or FONT_PATH), size)
    except (OSError, ValueError):
        return ImageFont.load_default(size)


def is_fallback_font(font: AnyFont) -> bool:
    """True unless `font` was loaded from a file on disk (the bundled font or another)."""
    return not isinstance(getattr(font, "path", None), (str, bytes, os.PathLike))


def _glyph_signature(font: AnyFont, ch: str) -> tuple:
    mask = font.getmask(ch)
    return (mask.size, bytes(mask), font.getbbox(ch), font.getlength(ch))


_COVERAGE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _covers_char(font: AnyFont, ch: str) -> bool:
    if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Mn"):
        return True
    known = _COVERAGE.setdefault(font, {})
    if ch not in known:
        # A character the font lacks renders as its .notdef glyph (a box, or blank in
        # NanumGothic): compare with the rendering of a code point that no font maps.
        known[ch] = _glyph_signature(font, ch) != _glyph_signature(font, _PROBE)
    return known[ch]


def font_covers(text: str, font: AnyFont | None = None) -> bool:
    """Whether `font` (default: the bundled font at 14 px) has a glyph for every character."""
    font = font or load_font(14)
    text = unicodedata.normalize("NFC", text)
    return all(_covers_char(font, ch) for ch in text)


def drawable_text(text: str, font: AnyFont) -> str:
    """`text` with the characters the font lacks written as code points ("U+BCBD U+B3CC")."""
    out: list[str] = []
    missing = False
    for ch in unicodedata.normalize("NFC", text):
        if _covers_char(font, ch):
            out.append(ch)
            missing = False
        else:
            out.append(f"{' ' if missing else ''}U+{ord(ch):04X}")
            missing = True
    return "".join(out)


def line_height(font: AnyFont) -> int:
    """Pixels per caption line: the font's ascent plus descent, plus 2 of leading."""
    if hasattr(font, "getmetrics"):
        ascent, descent = font.getmetrics()
        return int(ascent + descent) + 2
    box = font.getbbox("Ag")
    return int(box[3]) + 2


_family: list[str | None] = []


def matplotlib_family() -> str | None:
    """Register the bundled font(s) (cnncli/fonts/*.ttf) with matplotlib, once per process;
    return the family name, or None when no font is bundled."""
    if _family:
        return _family[0]
    from matplotlib import font_manager

    family = None
    for ttf in sorted(FONTS_DIR.glob("*.ttf")):
        try:
            font_manager.fontManager.addfont(str(ttf))
            family = family or font_manager.FontProperties(fname=str(ttf)).get_name()
        except (OSError, RuntimeError, ValueError):
            continue
    _family.append(family)
    return family


def matplotlib_rc() -> dict:
    """rc settings that draw text with the bundled font first (Hangul), DejaVu Sans for
    what it lacks."""
    family = matplotlib_family()
    return {"font.family": [family, "DejaVu Sans"]} if family else {}
