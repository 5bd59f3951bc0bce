"""Make CnncliGothic.ttf: a subset of Debian's NanumGothic (fonts-nanum, SIL OFL 1.1).

Run as root on Debian: `apt-get install -y fonts-nanum && python cnncli/fonts/make_font.py`.
Keeps ASCII, Latin-1, all 11,172 Hangul syllables, Hangul Jamo and compatibility Jamo and
common punctuation; drops hinting (FreeType renders it well without) to keep the repo small.
The OFL forbids Reserved Font Names ("NanumGothic", ...) on modified versions, and a subset is
a modified version, so the family is renamed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fontTools.ttLib import TTFont

SOURCE = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
TARGET = Path(__file__).with_name("CnncliGothic.ttf")
FAMILY = "CnncliGothic"
UNICODES = ",".join(
    [
        "U+0020-007E",  # ASCII
        "U+00A0-00FF",  # Latin-1
        "U+1100-11FF",  # Hangul Jamo
        "U+3130-318F",  # Hangul compatibility Jamo
        "U+AC00-D7A3",  # Hangul syllables
        "U+2010-2027,U+2030-203A,U+2190-2193,U+2212,U+20A9",  # dashes, quotes, arrows, minus, won
        "U+3000-3003,U+3008-3011,U+FF01-FF5E",  # CJK punctuation, full-width ASCII
    ]
)


def main() -> int:
    subprocess.run(
        [
            "pyftsubset",
            str(SOURCE),
            f"--unicodes={UNICODES}",
            "--no-hinting",
            "--layout-features=*",
            f"--output-file={TARGET}",
        ],
        check=True,
    )
    font = TTFont(TARGET)
    name = font["name"]
    name.names = [r for r in name.names if r.nameID not in (1, 3, 4, 6, 7, 16, 20)]
    for plat, enc, lang in ((1, 0, 0), (3, 1, 0x409)):
        name.setName(FAMILY, 1, plat, enc, lang)
        name.setName(f"{FAMILY}-Regular;subset-of-NanumGothic-3.021", 3, plat, enc, lang)
        name.setName(FAMILY, 4, plat, enc, lang)
        name.setName(FAMILY, 6, plat, enc, lang)
        name.setName(
            "Subset of NanumGothic 3.021 (c) 2010 NAVER Corporation, renamed under the SIL "
            "Open Font License 1.1 for cnncli's contact sheets.",
            10,
            plat,
            enc,
            lang,
        )
    add_minus(font)
    font.save(TARGET)
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes")
    return 0


def add_minus(font: TTFont) -> None:
    """Give the font a MINUS SIGN (U+2212), which NanumGothic lacks: matplotlib's mathtext
    draws every negative tick label ("10^-7") with it in the first font of font.family, and
    mathtext has no fallback to a second font, so without it each minus is a box and a
    warning. The glyph is the bar of the plus sign, as wide as the plus."""
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    cmap = font.getBestCmap()
    if 0x2212 in cmap:
        return
    plus = font["glyf"][cmap[ord("+")]]
    width, lsb = font["hmtx"][cmap[ord("+")]]
    dash = font["glyf"][cmap[0x2013]]  # the en dash's bar: its height and thickness
    pen = TTGlyphPen(None)
    for x, y in (
        (plus.xMin, dash.yMin),
        (plus.xMin, dash.yMax),
        (plus.xMax, dash.yMax),
        (plus.xMax, dash.yMin),
    ):
        (pen.lineTo if x != plus.xMin or y != dash.yMin else pen.moveTo)((x, y))
    pen.closePath()
    glyf = font["glyf"]
    glyf["minus"] = pen.glyph()  # appended to the glyph order too
    font.setGlyphOrder(glyf.glyphOrder)
    font["hmtx"]["minus"] = (width, lsb)
    for table in font["cmap"].tables:
        if table.isUnicode():
            table.cmap[0x2212] = "minus"


if __name__ == "__main__":
    sys.exit(main())
