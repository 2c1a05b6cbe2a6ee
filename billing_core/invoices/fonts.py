"""The invoice fonts: parsed once per process, embedded as subsets by a TrueType subsetter of our own.

Each document gets cheap copies of the parsed fpdf2 font objects (``new_pdf``), and embedding uses
``_GlyfSource`` in place of fontTools' general subsetter, which costs tens of milliseconds per font.
All fonts used have TrueType (glyf) outlines for that reason.
"""

from __future__ import annotations

import copy
import struct
import zlib
from functools import cache, lru_cache
from itertools import islice
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import PDFResourceType
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer, _build_cmap_blocks, _cid_font_widths
from fpdf.syntax import Name, PDFObject, create_dictionary_string

from billing_core.invoices import pdfa, textlayer

FONT_ROOT = Path("/usr/share/fonts/truetype")
# family, style, file (under FONT_ROOT), face index. "sans" is the main font; the rest are fallbacks.
FONTS = (
    ("sans", "", "noto/NotoSans-Regular.ttf", 0),
    ("sans", "B", "noto/NotoSans-Bold.ttf", 0),
    ("arabic", "", "noto/NotoSansArabic-Regular.ttf", 0),
    ("hebrew", "", "noto/NotoSansHebrew-Regular.ttf", 0),
    # WenQuanYi Micro Hei: Chinese, Japanese kana and Korean hangul with TrueType outlines.
    ("cjk", "", "wqy/wqy-microhei.ttc", 0),
)
FALLBACKS = ("arabic", "hebrew", "cjk")
# The main fonts' subsets always hold printable ASCII and the em dash of the template at fixed codes
# (ASCII at its own code), so most invoices embed the very same subset, built and compressed once
# per process (``embedded``); other characters get the next codes in order of first use.
FIXED_FONTS = ("sans", "sansB")
FIXED = {chr(code): code for code in range(0x20, 0x7F)} | {"\u2014": 0x7F}
FIXED_HEX = {ch: f"{code:04X}" for ch, code in FIXED.items()}
FIRST_FREE_CODE = 0x80


# --- fonts: parsed once per process ---------------------------------------------------------------


class _GlyfSource:
    """Raw TrueType tables of one face, and a subsetter that keeps only the glyphs a document used."""

    KEPT = ("cvt ", "fpgm", "prep")

    def __init__(self, ttfont) -> None:
        reader = ttfont.reader
        self.tables = {tag: bytes(reader[tag]) for tag in ("head", "hhea", "maxp", "hmtx", *self.KEPT) if tag in reader}
        self.glyf = bytes(reader["glyf"])
        count = struct.unpack(">H", self.tables["maxp"][4:6])[0]
        long_loca = struct.unpack(">h", self.tables["head"][50:52])[0] == 1
        loca = bytes(reader["loca"])
        if long_loca:
            self.loca = struct.unpack(f">{count + 1}I", loca[: 4 * (count + 1)])
        else:
            self.loca = tuple(2 * v for v in struct.unpack(f">{count + 1}H", loca[: 2 * (count + 1)]))
        metrics = struct.unpack(">H", self.tables["hhea"][34:36])[0]
        hmtx = self.tables["hmtx"]
        longs = struct.unpack(f">{2 * metrics}h", hmtx[: 4 * metrics])
        advances = [longs[2 * i] & 0xFFFF for i in range(metrics)]
        bearings = [longs[2 * i + 1] for i in range(metrics)]
        rest = count - metrics
        if rest:
            bearings += struct.unpack(f">{rest}h", hmtx[4 * metrics : 4 * metrics + 2 * rest])
            advances += [advances[-1]] * rest
        self.metrics = list(zip(advances, bearings, strict=True))
        self.parts: dict[int, list[tuple[int, int]]] = {}

    def glyph(self, gid: int) -> bytes:
        return self.glyf[self.loca[gid] : self.loca[gid + 1]]

    def parts_of(self, gid: int) -> list[tuple[int, int]]:
        found = self.parts.get(gid)
        if found is None:
            found = self.parts[gid] = self.components(self.glyph(gid))
        return found

    @staticmethod
    def components(data: bytes) -> list[tuple[int, int]]:
        """(offset of the glyph index, glyph index) of each component of a composite glyph."""
        if len(data) < 10 or struct.unpack(">h", data[:2])[0] >= 0:
            return []
        found, offset = [], 10
        while True:
            flags, gid = struct.unpack(">HH", data[offset : offset + 4])
            found.append((offset + 2, gid))
            offset += 4 + (4 if flags & 0x0001 else 2)
            if flags & 0x0008:
                offset += 2
            elif flags & 0x0040:
                offset += 4
            elif flags & 0x0080:
                offset += 8
            if not flags & 0x0020:
                return found

    def subset(self, by_code: dict[int, int]) -> bytes:
        """A font file whose glyph ids are the document's character codes (so CIDToGIDMap is Identity).

        ``by_code`` maps each code to the original glyph; unused codes get empty glyphs, and the
        components of composite glyphs are appended after the last code.
        """
        slots = [by_code.get(code, 0) if code in by_code or code == 0 else None for code in range(max(by_code) + 1)]
        new_id = {}
        for code, old in enumerate(slots):
            if old is not None:
                new_id.setdefault(old, code)
        stack = [old for old in slots if old is not None]
        while stack:
            for _, part in self.parts_of(stack.pop()):
                if part not in new_id:
                    new_id[part] = len(slots)
                    slots.append(part)
                    stack.append(part)
        glyf, offsets, metrics = bytearray(), [], []
        for old in slots:
            offsets.append(len(glyf))
            if old is None:
                metrics += (0, 0)
                continue
            data = self.glyph(old)
            parts = self.parts_of(old)
            if parts:
                data = bytearray(data)
                for at, part in parts:
                    struct.pack_into(">H", data, at, new_id[part])
            glyf += data
            glyf += b"\0" * (-len(glyf) % 4)
            metrics += _signed_metric(self.metrics[old])
        offsets.append(len(glyf))
        n = len(slots)
        head = bytearray(self.tables["head"])
        struct.pack_into(">I", head, 8, 0)
        struct.pack_into(">h", head, 50, 1)
        hhea = bytearray(self.tables["hhea"])
        struct.pack_into(">H", hhea, 34, n)
        maxp = bytearray(self.tables["maxp"])
        struct.pack_into(">H", maxp, 4, n)
        tables = {
            "glyf": bytes(glyf),
            "head": bytes(head),
            "hhea": bytes(hhea),
            "hmtx": struct.pack(f">{2 * n}h", *metrics),
            "loca": struct.pack(f">{n + 1}I", *offsets),
            "maxp": bytes(maxp),
        }
        tables |= {tag: self.tables[tag] for tag in self.KEPT if tag in self.tables}
        return _sfnt(tables)


def _signed_metric(metric: tuple[int, int]) -> tuple[int, int]:
    advance, bearing = metric
    return (advance - 0x10000 if advance > 0x7FFF else advance), bearing


def _checksum(data: bytes) -> int:
    data += b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(data) // 4}I", data)) & 0xFFFFFFFF


def _sfnt(tables: dict[str, bytes]) -> bytes:
    tags = sorted(tables)
    count = len(tags)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, count * 16 - power * 16)
    offset = 12 + 16 * count
    directory, body = bytearray(), bytearray()
    for tag in tags:
        data = tables[tag]
        directory += struct.pack(">4sIII", tag.encode("latin-1"), _checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    font = bytearray(header + directory + body)
    head_at = offset + sum(len(tables[t]) + (-len(tables[t]) % 4) for t in tags[: tags.index("head")])
    struct.pack_into(">I", font, head_at + 8, (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF)
    return bytes(font)


@cache
def parsed() -> tuple[tuple[str, TTFFont, _GlyfSource, dict], ...]:
    """Parse every font file once per process; with each, its fixed glyph codes (empty for fallbacks)."""
    loader = FPDF()
    loaded = []
    for family, style, file, index in FONTS:
        path = FONT_ROOT / file
        if not path.exists():
            raise FileNotFoundError(
                f"Invoice font {path} is missing: install the Debian packages fonts-noto-core and fonts-wqy-microhei."
            )
        loader.add_font(family, style, path, collection_font_number=index)
        key = family + style
        font = loader.fonts[key]
        font.hbfont  # noqa: B018 - open the HarfBuzz face once, shared by every copy
        fixed = {}
        if key in FIXED_FONTS:
            subset = SubsetMap(font)
            fixed = dict(subset._char_id_per_glyph)
            for ch, code in FIXED.items():
                glyph = subset.get_glyph(unicode=ord(ch))
                if glyph is None:
                    raise ValueError(f"Invoice font {path} has no glyph for {ch!r}.")
                fixed[glyph] = code
        loaded.append((key, font, _GlyfSource(font.ttfont), fixed))
    SubsetMap.get_glyph.cache_clear()
    return tuple(loaded)


def new_pdf(paper: str, archival: bool = False) -> FPDF:
    """A document with copies of the parsed fonts: each copy has its own record of glyphs used."""
    pdf = FPDF(orientation="P", unit="mm", format=paper, enforce_compliance=pdfa.COMPLIANCE if archival else None)
    pdf.set_compression(True)
    for key, proto, _, fixed in parsed():
        font = copy.copy(proto)
        font.i = len(pdf.fonts) + 1
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.desc = copy.copy(proto.desc)
        font.subset = SubsetMap(font)
        if fixed:
            font.subset._char_id_per_glyph = dict(fixed)
            font.subset._reserved = []
            font.subset._next = FIRST_FREE_CODE
        pdf.fonts[key] = font
    pdf.set_fallback_fonts(list(FALLBACKS), exact_match=False)
    return pdf


@cache
def fixed_widths(key: str) -> dict[str, int]:
    font = next(f for k, f, _, _ in parsed() if k == key)
    return {ch: font.cw[ord(ch)] for ch in FIXED}


class Output(OutputProducer):
    """fpdf2's producer with our TrueType subsetter for the fonts a page actually uses."""

    def _add_pages(self, *args, **kwargs):
        # Page contents deflated at level 1: about 5x faster than fpdf2's default level, 1-2 % larger files.
        fpdf = self.fpdf
        compress, fpdf.compress = fpdf.compress, False
        try:
            pages = super()._add_pages(*args, **kwargs)
        finally:
            fpdf.compress = compress
        if compress:
            for page in pages:
                stream = page.contents
                stream._contents = zlib.compress(stream._contents, 1)
                stream.filter, stream.length = Name("FlateDecode"), len(stream._contents)
        return pages

    def _add_fonts(self, *args, **kwargs):
        fpdf = self.fpdf
        used: set[int] = set()
        for page in range(1, len(fpdf.pages) + 1):
            used.update(int(i) for i in fpdf._resource_catalog.get_resources_per_page(page, PDFResourceType.FONT))
        objects = {}
        try:
            for font in sorted(fpdf.fonts.values(), key=lambda f: f.i):
                if font.i in used:
                    objects[font.i] = self._embed(font)
        finally:
            # fpdf2 caches these per class; clearing after each document keeps memory flat.
            SubsetMap.pick.cache_clear()
            SubsetMap.get_glyph.cache_clear()
        return objects

    def _embed(self, font: TTFFont) -> _RawObject:
        # A main font's fixed glyphs come first in its subset map, the document's own ones after them.
        fixed = len(_fixed_glyphs(font.fontkey))
        glyphs = tuple(
            (code, glyph.glyph_id, glyph.unicode, glyph.glyph_width)
            for glyph, code in islice(font.subset._char_id_per_glyph.items(), fixed, None)
            if glyph is not None
        )
        group: list[_RawObject] = []
        for head, stream in embedded(font.fontkey, glyphs):
            obj = _RawObject(head, stream, group)
            self._add_pdf_obj(obj, "fonts")
            group.append(obj)
        return group[0]


class _RawObject(PDFObject):
    """An object serialized in advance; ``{0}``..``{5}`` in its dictionary are the ids of its group."""

    def __init__(self, head: str, stream: bytes | None, group: list[_RawObject]):
        super().__init__()
        self.head, self.stream, self.group = head, stream, group

    def serialize(self, obj_dict=None, _security_handler=None) -> bytes:
        head = self.head.format(*(obj.id for obj in self.group))
        if self.stream is None:
            return f"{self.id} 0 obj\n{head}\nendobj".encode("latin-1")
        return f"{self.id} 0 obj\n{head}\nstream\n".encode("latin-1") + self.stream + b"\nendstream\nendobj"


@cache
def _fixed_glyphs(fontkey: str) -> tuple[tuple[int, int, tuple, int], ...]:
    """(code, glyph id, unicode, width) of the glyphs every document's subset of the font holds."""
    fixed = next(f for key, _, _, f in parsed() if key == fontkey)
    return tuple((code, glyph.glyph_id, glyph.unicode, glyph.glyph_width) for glyph, code in fixed.items() if glyph)


@lru_cache(maxsize=256)
def embedded(fontkey: str, extra: tuple) -> tuple[tuple[str, bytes | None], ...]:
    """The six objects embedding a subset: Type0 font, CID font, ToUnicode, CIDSystemInfo, descriptor, file.

    ``extra`` is (code, glyph id, unicode, width) of each glyph the document added to the font's fixed
    ones. Latin-only invoices add none, so their subsets are built once per process; the cache is
    bounded (constant memory).
    """
    glyphs = sorted(_fixed_glyphs(fontkey) + extra)
    font = next(f for key, f, _, _ in parsed() if key == fontkey)
    source = next(s for key, _, s, _ in parsed() if key == fontkey)
    name = Name(f"MPDFAA+{font.name}").serialize().replace("{", "{{").replace("}", "}}")
    data = source.subset({code: None if gid == textlayer.EMPTY_GLYPH else gid for code, gid, _, _ in glyphs})
    font_file = zlib.compress(data)
    widths = _cid_font_widths({code: width for code, _, _, width in glyphs})
    bf_char = []
    for code, _, unicode, _ in glyphs:
        if isinstance(unicode, tuple):  # () for a glyph that stands for no character (a shaped mark)
            target = "".join(_utf16(c) for c in unicode)
            bf_char.append(f"<{code:04X}> <{target}>\n")
    to_unicode = zlib.compress(
        (
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo\n<</Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            f"{_build_cmap_blocks(bf_char, 'bfchar')}"
            "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
        ).encode("latin-1")
    )
    descriptor = copy.copy(font.desc)
    descriptor.font_name = Name(f"MPDFAA+{font.name}")
    descriptor.id = 0  # never referenced: fpdf2 reads every attribute while building the dictionary
    described = create_dictionary_string(descriptor._build_obj_dict()).replace("{", "{{").replace("}", "}}")
    return (
        (f"<</Type /Font /Subtype /Type0 /BaseFont {name} /Encoding /Identity-H "
         "/DescendantFonts [{1} 0 R] /ToUnicode {2} 0 R>>", None),
        (f"<</Type /Font /Subtype /CIDFontType2 /BaseFont {name} /CIDSystemInfo {{3}} 0 R "
         f"/FontDescriptor {{4}} 0 R /DW {font.desc.missing_width} /W {widths} /CIDToGIDMap /Identity>>", None),
        (f"<</Filter /FlateDecode /Length {len(to_unicode)}>>", to_unicode),
        ("<</Registry (Adobe) /Ordering (UCS) /Supplement 0>>", None),
        (described[:-2] + " /FontFile2 {5} 0 R>>", None),
        (f"<</Filter /FlateDecode /Length {len(font_file)} /Length1 {len(data)}>>", font_file),
    )  # fmt: skip


def _utf16(code: int) -> str:
    if code > 0xFFFF:
        code -= 0x10000
        return f"{0xD800 | code >> 10:04X}{0xDC00 | code & 0x3FF:04X}"
    return f"{code:04X}"
