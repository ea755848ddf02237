"""The PDF report's typefaces, and text marked up so every character prints in a font that has it.

The report's own typeface is DejaVu Sans Condensed (as wide as Helvetica), embedded, where the
system has it (``./dev`` installs fonts-dejavu-core and -extra), so names and notes in Latin,
Greek or Cyrillic script print as typed; else DejaVu Sans; else PDF's built-in Helvetica, which
has only the Western European characters.

DejaVu has no Chinese, Japanese or Korean. A name such as "Zoë Núñez-李小龍" would print its last
three characters as empty boxes, and a text extractor would lose them. So text is cut into runs
by which font has each character: the report's typeface where it has the character, else the
first fallback font that has it (loaded only when a character needs it), embedded as a subset.
The fallbacks are TrueType CJK fonts: reportlab embeds TrueType (``.ttf``, and ``.ttc`` by
subfont index) but not CFF outlines, so Noto Sans CJK (``.ttc``/``.otf`` with CFF outlines) cannot
be used. WenQuanYi Zen Hei (Debian's fonts-wqy-zenhei, which ``./dev`` and CI install) comes first:
TrueType, and it covers Chinese (simplified and traditional), Japanese kana and Korean hangul;
Droid Sans Fallback, the smaller one, has no hangul. A character no installed font has stays in the
report's typeface (a box) rather than vanish.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

__all__ = [
    "FALLBACK_FONTS",
    "SANS",
    "SANS_BOLD",
    "SANS_BOLD_ITALIC",
    "SANS_ITALIC",
    "base_font",
    "fallback_font_for",
    "markup",
    "register_fonts",
    "runs",
]

#: The report's four faces, by kapmonitor's own names.
SANS, SANS_BOLD, SANS_ITALIC, SANS_BOLD_ITALIC = (
    "KapSans", "KapSans-Bold", "KapSans-Oblique", "KapSans-BoldOblique"
)  # fmt: skip
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/local/share/fonts",
    "/Library/Fonts",
    "C:/Windows/Fonts",
)
_FACES = ("", "-Bold", "-Oblique", "-BoldOblique")
_DEJAVU = ("DejaVuSansCondensed", "DejaVuSans")
_HELVETICA = ("Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Helvetica-BoldOblique")

#: TrueType fonts with CJK characters, in the order tried: (path, subfont index in a .ttc).
FALLBACK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # Debian fonts-wqy-zenhei
    ("/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc", 0),  # Fedora
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # Debian fonts-wqy-microhei
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),  # fonts-droid-fallback
    ("C:/Windows/Fonts/msyh.ttc", 0),  # Microsoft YaHei
    ("C:/Windows/Fonts/simsun.ttc", 0),
    ("/Library/Fonts/Arial Unicode.ttf", 0),
)

_family: str | None = None  #: what register_fonts chose, once per process
_covers_main: Callable[[int], bool]  #: the report typeface's test for a character (register_fonts)
_fallbacks: list[tuple[str, frozenset[int]]] | None = None  #: (font name, its characters)


def register_fonts() -> str:
    """Register the report's four faces (once); returns the family used."""
    global _family, _covers_main
    if _family is not None:
        return _family
    names = (SANS, SANS_BOLD, SANS_ITALIC, SANS_BOLD_ITALIC)
    dejavu = _register_dejavu(names)
    if dejavu is None:
        for name, face in zip(names, _HELVETICA, strict=True):
            pdfmetrics.registerFont(pdfmetrics.Font(name, face, "WinAnsiEncoding"))
        family = "Helvetica"
        _covers_main = _win_ansi
    else:
        family, upright = dejavu
        has = frozenset(upright.face.charWidths)
        _covers_main = has.__contains__
    pdfmetrics.registerFontFamily(SANS, normal=SANS, bold=SANS_BOLD, italic=SANS_ITALIC,
                                  boldItalic=SANS_BOLD_ITALIC)  # fmt: skip
    _family = family
    return family


def _win_ansi(code: int) -> bool:
    try:
        chr(code).encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _register_dejavu(names: tuple[str, ...]) -> tuple[str, TTFont] | None:
    """The first DejaVu family found with its upright faces, and its regular face; a missing
    oblique face is the upright one (slanted text matters less than the right letters)."""
    for folder in FONT_DIRS:
        for base in _DEJAVU:
            paths = [Path(folder) / f"{base}{face}.ttf" for face in _FACES]
            if not (paths[0].is_file() and paths[1].is_file()):
                continue
            try:
                fonts = [
                    TTFont(name, str(paths[i] if paths[i].is_file() else paths[i % 2]))
                    for i, name in enumerate(names)
                ]
            except (TTFError, OSError):
                continue
            for font in fonts:
                pdfmetrics.registerFont(font)
            return base, fonts[0]
    return None


def _load_fallbacks() -> list[tuple[str, frozenset[int]]]:
    """Every installed fallback font reportlab can embed, registered as its own family (one
    face serves bold and italic too: the right character matters more than its weight)."""
    global _fallbacks
    if _fallbacks is None:
        _fallbacks = []
        for i, (path, index) in enumerate(FALLBACK_FONTS):
            if not Path(path).is_file():
                continue
            name = f"KapFallback{i}"
            try:
                font = TTFont(name, path, subfontIndex=index)
            except (TTFError, OSError):  # CFF outlines, a damaged file: not usable
                continue
            pdfmetrics.registerFont(font)
            pdfmetrics.registerFontFamily(name, normal=name, bold=name, italic=name,
                                          boldItalic=name)  # fmt: skip
            _fallbacks.append((name, frozenset(font.face.charWidths)))
    return _fallbacks


def fallback_font_for(char: str) -> str | None:
    """The font a character prints in when the report's typeface lacks it; None: the report's
    typeface (it has the character, or no installed font has it)."""
    register_fonts()
    code = ord(char)
    if _covers_main(code) or char.isspace():
        return None
    for name, has in _load_fallbacks():
        if code in has:
            return name
    return None


def runs(text: str) -> list[tuple[str | None, str]]:
    """``text`` cut into (font, run) pairs, font None for the report's own typeface."""
    out: list[tuple[str | None, str]] = []
    for char in text:
        font = fallback_font_for(char)
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + char)
        else:
            out.append((font, char))
    return out


def markup(text: str) -> str:
    """Plain (user) text as paragraph markup: escaped (a note may contain "<"), each run the
    report's typeface lacks in a ``<font>`` that has it."""
    return "".join(
        escape(run) if font is None else f'<font face="{font}">{escape(run)}</font>'
        for font, run in runs(text)
    )


def base_font(name: str) -> str:
    """The PostScript name a registered TrueType font is embedded under (a subset's name ends
    with it), e.g. to find the font in the written file."""
    font = pdfmetrics.getFont(name)
    if not isinstance(font, TTFont):
        raise ValueError(f"{name} is not a TrueType font")
    return str(font.face.name.decode("ascii", "replace"))
