"""Right-to-left and joined text (Arabic, Hebrew, mixed with digits or Latin) laid out so that the
PDF's text layer reads back as the text itself.

HarfBuzz shapes each run of one direction and font. Every glyph code then stands for exactly one
character: a ligature such as lam-alef draws with one code and its other characters get zero-width
codes of their own, so no ToUnicode entry holds a sequence whose order a reader could take either
way (poppler spreads a sequence left to right over the glyph and then reads a right-to-left line
backwards, which is how "ليلى" came back as "ليىل" from fpdf2's sequences).

Readers disagree on order, so the codes are written to suit both kinds: poppler sorts by position,
pypdf reads the content stream in order and reverses right-to-left runs. Each run is written in
logical order as separate pieces (each its own text object), a right-to-left piece's glyphs in
visual order, and a piece starts with a strong character or holds one code only, so that no
neutral character (a space, a dot) joins the wrong neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import uharfbuzz as hb
from fpdf.bidi import BidiParagraph
from fpdf.fonts import Glyph, TTFFont

EMPTY_GLYPH = -1  # the glyph id of a zero-width code: it draws nothing and stands for one character

# pypdf's classes (pypdf._utils): characters it reverses, and characters that keep the current direction.
_RTL_RANGES = (("\u0590", "\u08ff"), ("\ufb1d", "\ufdff"), ("\ufe70", "\ufeff"))
_NEUTRAL_RANGES = (
    ("\x00", "\x2f"),
    ("\x3a", "\x40"),
    ("\u0660", "\u066d"),
    ("\u06f0", "\u06f9"),
    ("\u2000", "\u206f"),
    ("\u20a0", "\u21ff"),
)


def _is_rtl(ch: str) -> bool:
    return any(a <= ch <= b for a, b in _RTL_RANGES)


def _is_neutral(ch: str) -> bool:
    return len(ch) != 1 or any(a <= ch <= b for a, b in _NEUTRAL_RANGES)


@dataclass(frozen=True)
class Placed:
    """One code of a piece: where it is drawn (1/1000 of the font size from the piece's start) and
    its advance in the font's widths."""

    code: int
    x: float
    dy: float
    width: int


@dataclass(frozen=True)
class Piece:
    fontkey: str
    x: float  # the piece's left edge, 1/1000 of the font size from the line's left edge
    glyphs: tuple[Placed, ...]


@dataclass(frozen=True)
class LaidOut:
    width: float  # 1/1000 of the font size
    pieces: tuple[Piece, ...]  # in the order to write them


@dataclass
class _Unit:
    glyph: Glyph
    x: float  # pen position from the start of its sub-run, 1/1000 of the font size
    x_offset: float
    dy: float
    text: str


def _font_for(ch: str, rtl: bool, preferred: TTFFont | None, main: TTFFont, fallbacks: list[TTFFont]) -> TTFFont:
    code = ord(ch)
    if rtl and preferred is not None and code in preferred.cmap:
        return preferred
    if code in main.cmap:
        return main
    return next((f for f in fallbacks if code in f.cmap), main)


def _visual_order(levels: list[int]) -> list[int]:
    """Indices of runs (given their levels) in visual order, by rule L2 of the bidi algorithm."""
    order = list(range(len(levels)))
    if not levels:
        return order
    lowest_odd = min((lv for lv in levels if lv % 2), default=None)
    if lowest_odd is None:
        return order
    for level in range(max(levels), lowest_odd - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] >= level:
                j = i
                while j < len(order) and levels[order[j]] >= level:
                    j += 1
                order[i:j] = reversed(order[i:j])
                i = j
            else:
                i += 1
    return order


def _shape(text: str, start: int, end: int, font: TTFFont, rtl: bool) -> tuple[list[_Unit], float]:
    """HarfBuzz's glyphs of text[start:end] (with the whole line as context), one character per code."""
    buf = hb.Buffer()
    buf.add_codepoints([ord(c) for c in text], start, end - start)
    buf.guess_segment_properties()
    buf.direction = "rtl" if rtl else "ltr"
    hb.shape(font.hbfont, buf, {})
    infos, positions = buf.glyph_infos, buf.glyph_positions
    scale = font.scale
    bounds = [*sorted({int(info.cluster) for info in infos}), end]
    span = {c: text[c : bounds[i + 1]] for i, c in enumerate(bounds[:-1])}
    units: list[_Unit] = []
    pen = 0.0
    i = 0
    while i < len(infos):
        cluster = int(infos[i].cluster)
        glyphs = []
        while i < len(infos) and int(infos[i].cluster) == cluster:
            info, pos = infos[i], positions[i]
            name = font.ttfont.getGlyphName(info.codepoint)
            width = round(scale * font.ttfont["hmtx"].metrics[name][0])
            glyphs.append((info.codepoint, name, width, pen, pos.x_offset * scale, pos.y_offset * scale))
            pen += pos.x_advance * scale
            i += 1
        chars = span.get(cluster, "")
        # Units in stream order: the cluster's glyphs, then zero-width codes for characters beyond the
        # glyphs on the baseline. A raised or lowered glyph (a mark) stands for nothing: readers that sort
        # by position would read it as a line of its own.
        on_baseline = [k for k, glyph in enumerate(glyphs) if glyph[5] == 0]
        extra = max(0, len(chars) - len(on_baseline))
        slots: list[tuple | None] = list(glyphs) + [None] * extra
        readable = on_baseline + list(range(len(glyphs), len(slots)))
        reading = readable[::-1] if rtl else readable
        texts = [""] * len(slots)
        for k, slot_index in enumerate(reading[: len(chars)]):
            texts[slot_index] = chars[k]
        for slot, ch in zip(slots, texts, strict=True):
            if slot is None:
                glyph = Glyph(EMPTY_GLYPH, (ord(ch),), ".companion", 0)
                units.append(_Unit(glyph, pen, 0.0, 0.0, ch))
            else:
                gid, name, width, x, dx, dy = slot
                glyph = Glyph(gid, tuple(ord(c) for c in ch), name, width)
                units.append(_Unit(glyph, x, dx, dy, ch))
    return units, pen


def _unshaped(text: str, start: int, end: int, font: TTFFont) -> tuple[list[_Unit], float]:
    units, pen = [], 0.0
    for ch in text[start:end]:
        glyph = font.subset.get_glyph(unicode=ord(ch))
        if glyph is None:
            continue
        units.append(_Unit(glyph, pen, 0.0, 0.0, ch))
        pen += font.cw[ord(ch)]
    return units, pen


def _pieces(units: list[_Unit], rtl: bool) -> list[list[_Unit]]:
    """Split a sub-run's units (stream order) so each piece starts with a strong character of the run's
    direction or is one unit; right-to-left pieces are returned right to left (their logical order)."""
    pieces: list[list[_Unit]] = []
    for unit in units:
        if pieces and _strong(pieces[-1][0].text, rtl) and (_is_neutral(unit.text) or _strong(unit.text, rtl)):
            pieces[-1].append(unit)
        else:
            pieces.append([unit])
    return pieces[::-1] if rtl else pieces


def _strong(ch: str, rtl: bool) -> bool:
    return not _is_neutral(ch) and _is_rtl(ch) == rtl


def lay_out(text: str, fonts: dict[str, TTFFont], main_key: str, fallback_keys: list[str]) -> LaidOut:
    """The glyphs of one line of ``text``, placed and grouped into pieces in the order to write them."""
    main = fonts[main_key]
    fallbacks = [fonts[key] for key in fallback_keys]
    chars = BidiParagraph(text).get_characters_with_embedding_level()
    levels = [c.embedding_level for c in chars]
    runs: list[tuple[int, int, int]] = []  # (start, end, level) in logical order
    for i, level in enumerate(levels):
        if runs and runs[-1][2] == level:
            runs[-1] = (runs[-1][0], i + 1, level)
        else:
            runs.append((i, i + 1, level))
    # Each run: its sub-runs of one font (logical order), shaped.
    shaped_runs = []
    for start, end, level in runs:
        rtl = level % 2 == 1
        strong = next((ch for ch in text[start:end] if _is_rtl(ch)), None)
        preferred = next((f for f in fallbacks if strong and ord(strong) in f.cmap), None)
        subruns: list[tuple[int, int, TTFFont]] = []
        for i in range(start, end):
            font = _font_for(text[i], rtl, preferred, main, fallbacks)
            if subruns and subruns[-1][2] is font:
                subruns[-1] = (subruns[-1][0], i + 1, font)
            else:
                subruns.append((i, i + 1, font))
        shaped = []
        for s, e, font in subruns:
            units, width = _shape(text, s, e, font, rtl) if rtl or font in fallbacks else _unshaped(text, s, e, font)
            shaped.append((font, units, width))
        shaped_runs.append((rtl, shaped))
    # Visual placement: runs by rule L2; a right-to-left run's sub-runs from right to left.
    origin: dict[tuple[int, int], float] = {}
    x = 0.0
    for r in _visual_order([level for _, _, level in runs]):
        rtl, shaped = shaped_runs[r]
        order = range(len(shaped) - 1, -1, -1) if rtl else range(len(shaped))
        for s in order:
            origin[(r, s)] = x
            x += shaped[s][2]
    pieces: list[Piece] = []
    for r, (rtl, shaped) in enumerate(shaped_runs):
        for s, (font, units, _) in enumerate(shaped):
            base = origin[(r, s)]
            for part in _pieces(units, rtl):
                placed = tuple(
                    Placed(font.subset.pick_glyph(u.glyph), base + u.x + u.x_offset, u.dy, u.glyph.glyph_width)
                    for u in part
                )
                pieces.append(Piece(font.fontkey, placed[0].x, placed))
    return LaidOut(x, tuple(pieces))
