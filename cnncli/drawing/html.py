"""HTML pages: every page cnncli writes is made here, so each one carries the bundled Hangul
font and says its language.

A page embeds CnncliGothic (cnncli/fonts) as a base64 `@font-face`, cut down with fontTools
(matplotlib's own dependency) to the characters the page uses, so Korean class names draw on
a machine without CJK fonts and the page's folder stays self-contained (no font file beside
it, nothing fetched). A page of the façade model's activations embeds about 20 kB of font
(the whole font would be 1.8 MB of base64 in every page). `<html lang>` is "ko" when the
page's text holds Hangul, else "en", so browsers and screen readers pick Korean rules.
"""

from __future__ import annotations

import base64
import html
import io
import os
from functools import lru_cache
from pathlib import Path

from cnncli.atomic import write_text
from cnncli.drawing.fonts import FONT_PATH, has_hangul

FAMILY = "CnncliGothic"
BASE_CSS = (
    f"body{{font-family:{FAMILY},sans-serif;margin:1.5em;max-width:100%}}"
    "img{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}"
    "section{margin:1.5em 0}td,th{padding:0 .6em;text-align:left}"
)
ALWAYS = "".join(chr(c) for c in range(0x20, 0x7F))  # ASCII: the page's own words


def page_lang(text: str) -> str:
    """ "ko" when `text` holds Hangul, else "en"."""
    return "ko" if has_hangul(text) else "en"


@lru_cache(maxsize=64)
def _subset_font(chars: str) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(str(FONT_PATH), recalcTimestamp=False)  # same characters, same bytes
    options = subset.Options()
    options.layout_features = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=chars)
    subsetter.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    return buf.getvalue()


def font_face_css(text: str) -> str:
    """A CSS `@font-face` rule embedding the bundled font with the glyphs `text` needs
    (plus ASCII), as a base64 data URL; "" when the font file is missing."""
    if not FONT_PATH.is_file():
        return ""
    chars = "".join(sorted(set(html.unescape(text)) | set(ALWAYS)))
    data = base64.b64encode(_subset_font(chars)).decode("ascii")
    return (
        f"@font-face{{font-family:{FAMILY};font-display:block;"
        f"src:url(data:font/ttf;base64,{data}) format('truetype')}}"
    )


VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'  # phones


def html_page(title: str, body: str, css: str = "") -> str:
    """A whole HTML document: `title` (plain text), `body` (HTML), the bundled font embedded
    for the characters used, `lang` from the content, a viewport for phones, BASE_CSS then
    `css`."""
    text = f"{title}\n{body}"
    head = (
        f'<!doctype html>\n<html lang="{page_lang(text)}"><head><meta charset="utf-8">\n'
        f"{VIEWPORT}\n"
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{font_face_css(text)}\n{BASE_CSS}{css}</style></head>"
    )
    return f"{head}<body>\n{body}\n</body></html>\n"


def write_page(path: str | os.PathLike, title: str, body: str, css: str = "") -> Path:
    """Write `html_page(title, body, css)` to `path` atomically (UTF-8)."""
    return write_text(path, html_page(title, body, css))
