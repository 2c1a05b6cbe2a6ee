"""The invoice PDF (fpdf2): every field an EU invoice must carry, names in any script, fast and deterministic.

Speed comes from two caches per process: the fonts are parsed once (each document gets cheap copies
of the parsed fpdf2 font objects), and embedding uses a small TrueType subsetter of our own
(``_GlyfSource``) in place of fontTools' general one, which costs tens of milliseconds per font.
All fonts used have TrueType (glyf) outlines for that reason. The same invoice renders to the same
bytes: the creation date is the issue date and the file id is a hash of the content.
"""

from __future__ import annotations

import copy
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from itertools import islice
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import PDFResourceType
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer, _build_cmap_blocks, _cid_font_widths
from fpdf.syntax import Name, PDFObject, create_dictionary_string

from billing_core.core import money
from billing_core.core.models import Invoice, InvoiceKind, Order

# Bumped whenever the layout changes, so a regenerated file says which template drew it.
RENDER_VERSION = "pdf-2"
PAPERS = ("A4", "Letter")
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
# per process (``_embedded``); other characters get the next codes in order of first use.
_FIXED_FONTS = ("sans", "sansB")
_FIXED = {chr(code): code for code in range(0x20, 0x7F)} | {"\u2014": 0x7F}
_FIXED_HEX = {ch: f"{code:04X}" for ch, code in _FIXED.items()}
_FIRST_FREE_CODE = 0x80

EU_COUNTRIES = frozenset("AT BE BG HR CY CZ DK EE FI FR DE GR EL HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split())
REVERSE_CHARGE = "Reverse charge — VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC)"
VAT_EXEMPT = "VAT exempt"


@dataclass(frozen=True)
class Payment:
    """Issue-time facts of the payment, from the order: they never change after it was paid."""

    paid_at: datetime | None
    method: str
    provider_ref: str | None


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything printed on one invoice, as plain data (cheap to send to a worker process)."""

    invoice_id: int
    number: str
    kind: str
    issued_at: datetime
    currency: str
    subtotal_cents: int
    fee_cents: int
    tax_cents: int
    total_cents: int
    seller: dict
    buyer: dict
    lines: list
    payment: Payment | None = None
    refers_to: str | None = None

    @classmethod
    def of(cls, invoice: Invoice, order: Order | None = None, refers_to: str | None = None) -> InvoiceDocument:
        payment = None
        if order is not None:
            payment = Payment(order.paid_at, str(getattr(order.method, "value", order.method)), order.provider_ref)
        return cls(
            invoice_id=invoice.id,
            number=invoice.number,
            kind=str(getattr(invoice.kind, "value", invoice.kind)),
            issued_at=invoice.issued_at,
            currency=invoice.currency,
            subtotal_cents=invoice.subtotal_cents,
            fee_cents=invoice.fee_cents,
            tax_cents=invoice.tax_cents,
            total_cents=invoice.total_cents,
            seller=dict(invoice.seller),
            buyer=dict(invoice.buyer),
            lines=list(invoice.lines),
            payment=payment,
            refers_to=refers_to,
        )


def _document_for(session, invoice: Invoice) -> InvoiceDocument:
    """The invoice with its order's payment facts and, for a credit note, the original's number."""
    order = session.get(Order, invoice.order_id)
    refers_to = None
    if invoice.refers_to_id is not None:
        refers_to = session.get(Invoice, invoice.refers_to_id).number
    return InvoiceDocument.of(invoice, order, refers_to)


def render_invoice(
    invoice: Invoice | InvoiceDocument,
    *,
    paper: str = "A4",
    logo: str | Path | None = None,
    order: Order | None = None,
    refers_to: str | None = None,
) -> bytes:
    """The PDF of one invoice or credit note; the same input gives the same bytes."""
    if paper not in PAPERS:
        raise ValueError(f"Paper must be one of {', '.join(PAPERS)}, not {paper!r}.")
    doc = invoice if isinstance(invoice, InvoiceDocument) else InvoiceDocument.of(invoice, order, refers_to)
    pdf = _new_pdf(paper)
    pdf.set_creation_date(doc.issued_at)
    title = "Credit note" if doc.kind == InvoiceKind.CREDIT_NOTE.value else "Invoice"
    pdf.set_title(f"{title} {doc.number}")
    _Layout(pdf, doc, Path(logo) if logo else None).draw()
    return bytes(pdf.output(output_producer_class=_Output))


# --- layout ---------------------------------------------------------------------------------------


def _needs_shaping(text: str) -> bool:
    """Right-to-left and joining scripts (Hebrew, Arabic and their presentation forms) need HarfBuzz."""
    return any("\u0590" <= ch <= "\u08ff" or "\ufb1d" <= ch <= "\ufeff" for ch in text)


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "—"


def _amount(cents: int, currency: str) -> str:
    return money.format_cents(cents, currency)


def _unit_price(line: dict, currency: str) -> str:
    try:
        quantity = Decimal(str(line.get("quantity", "1")))
    except InvalidOperation:
        return ""
    if quantity == 0:
        return ""
    return money.format_unit_price(money.to_decimal(int(line["amount_cents"])) / quantity, currency)


def _description(line: dict, doc: InvoiceDocument) -> str:
    """What the customer reads for a line. Credit notes of template 1 froze staff's refund reason into
    their line ("Refund of invoice N: reason"); re-rendered, they print the part before it."""
    text = line.get("description", "")
    if doc.kind == InvoiceKind.CREDIT_NOTE.value and line.get("unit") == "refund" and doc.refers_to:
        head = f"Refund of invoice {doc.refers_to}"
        if text.startswith(f"{head}:"):
            return head
    return text


def tax_wording(doc: InvoiceDocument) -> str:
    """Why no VAT (or which rate): reverse charge for an EU business buyer in another member state."""
    seller_country = (doc.seller.get("country") or "").upper()
    buyer_country = (doc.buyer.get("country") or "").upper()
    if doc.tax_cents != 0:
        net = doc.subtotal_cents + doc.fee_cents
        rate = (Decimal(doc.tax_cents) * 100 / Decimal(net)).quantize(Decimal("0.01")) if net else Decimal(0)
        return f"VAT {rate.normalize():f}%"
    if (
        doc.buyer.get("tax_id")
        and buyer_country in EU_COUNTRIES
        and seller_country in EU_COUNTRIES
        and buyer_country != seller_country
    ):
        return REVERSE_CHARGE
    return VAT_EXEMPT


class _Layout:
    """Draws one document. Plain text goes out through ``FPDF.text`` with our own choice of font per
    run of characters, which is many times cheaper than ``cell``; text in a right-to-left script goes
    through ``cell`` with HarfBuzz shaping and fpdf2's fallback fonts."""

    MARGIN = 18.0
    LINE = 5.0

    def __init__(self, pdf: FPDF, doc: InvoiceDocument, logo: Path | None):
        self.pdf, self.doc, self.logo = pdf, doc, logo
        self.width = pdf.w - 2 * self.MARGIN
        self.y = self.MARGIN
        self.current: tuple[str, float] | None = None  # font and size last set in the content stream
        self.codes: dict[str, dict[str, str]] = {}  # per font: character -> its code as 4 hex digits
        self.fallbacks = [pdf.fonts[key] for key in FALLBACKS]

    # primitives

    def runs(self, text: str, bold: bool) -> list[tuple[str, str, str]]:
        """(family, style, characters) runs: the main font where it has the glyph, else a fallback."""
        main = self.pdf.fonts["sansB" if bold else "sans"]
        runs: list[tuple[str, str, str]] = []
        for ch in text:
            code = ord(ch)
            family, style = "sans", "B" if bold else ""
            if code not in main.cmap:
                for fallback in self.fallbacks:
                    if code in fallback.cmap:
                        family, style = fallback.fontkey, ""
                        break
            if runs and runs[-1][0] == family:
                runs[-1] = (family, style, runs[-1][2] + ch)
            else:
                runs.append((family, style, ch))
        return runs

    def put(self, x: float, w: float, text: str, *, bold=False, size=9.0, align="L", fit=False, h=None) -> None:
        """Text on the current line inside [x, x + w]; ``fit`` sets a too-long text smaller."""
        if not text:
            return
        if text.isascii() and self.ascii(x, w, text, bold, size, align, fit, h):
            return
        if _needs_shaping(text):
            self.shaped(x, w, text, bold=bold, size=size, align=align, h=h)
            return
        runs = self.runs(text, bold)
        fonts = self.pdf.fonts
        units = [sum(fonts[family + style].cw[ord(c)] for c in chars) for family, style, chars in runs]
        width = sum(units) * size / 1000 / self.pdf.k
        if fit and width > w:
            size, width = max(5.0, size * w / width), w
        if align == "R":
            x += w - width
        elif align == "C":
            x += (w - width) / 2
        baseline = self.y + 0.5 * (h or self.LINE) + 0.3 * size / self.pdf.k
        for (family, style, chars), unit in zip(runs, units, strict=True):
            self.text(family + style, size, x, baseline, chars)
            x += unit * size / 1000 / self.pdf.k

    def ascii(self, x: float, w: float, text: str, bold: bool, size: float, align: str, fit: bool, h) -> bool:
        """``put`` for printable ASCII in the main font (most text): its codes are fixed, one run."""
        key = "sansB" if bold else "sans"
        try:
            unit = sum(map(_fixed_widths(key).__getitem__, text))
            hexes = "".join(map(_FIXED_HEX.__getitem__, text))
        except KeyError:  # a control character: the general way
            return False
        k = self.pdf.k
        width = unit * size / 1000 / k
        if fit and width > w:
            size, width = max(5.0, size * w / width), w
        if align == "R":
            x += w - width
        elif align == "C":
            x += (w - width) / 2
        self.emit(key, size, x, self.y + 0.5 * (h or self.LINE) + 0.3 * size / k, hexes)
        return True

    def emit(self, key: str, size: float, x: float, baseline: float, hexes: str) -> None:
        pdf = self.pdf
        k = pdf.k
        if self.current != (key, size):
            self.current = (key, size)
            i = pdf.fonts[key].i
            pdf._resource_catalog.add(PDFResourceType.FONT, i, pdf.page)
            pdf._out(f"BT /F{i} {size:.2f} Tf {x * k:.2f} {(pdf.h - baseline) * k:.2f} Td <{hexes}> Tj ET")
        else:
            pdf._out(f"BT {x * k:.2f} {(pdf.h - baseline) * k:.2f} Td <{hexes}> Tj ET")

    def text(self, key: str, size: float, x: float, baseline: float, chars: str) -> None:
        """What ``FPDF.text`` writes (font change, position, glyph codes), straight into the page.

        The codes come from the font's subset map, so the embedded subset and the ToUnicode map
        cover them; the sans fonts' ASCII codes are fixed (``_FIXED``) and cost one lookup.
        """
        pdf = self.pdf
        font = pdf.fonts[key]
        codes = self.codes.get(key)
        if codes is None:
            codes = self.codes[key] = dict(_FIXED_HEX) if key in _FIXED_FONTS else {}
        hexes = []
        for ch in chars:
            code = codes.get(ch)
            if code is None:
                picked = font.subset.pick(ord(ch))
                code = codes[ch] = "" if picked is None else f"{picked:04X}"
            hexes.append(code)
        self.emit(key, size, x, baseline, "".join(hexes))

    def shaped(self, x: float, w: float, text: str, *, bold: bool, size: float, align: str, h=None) -> None:
        pdf = self.pdf
        pdf.set_text_shaping(True)
        pdf.set_font("sans", "B" if bold else "", size)
        pdf.current_font_is_set_on_page = False  # our own text() may have changed the font meanwhile
        pdf.set_xy(x, self.y)
        pdf.cell(w, h or self.LINE, text, align=align)
        pdf.set_text_shaping(False)
        self.current = None

    def newline(self, h: float | None = None) -> None:
        self.y += h or self.LINE
        if self.y > self.pdf.h - self.MARGIN - 2 * self.LINE:
            self.pdf.add_page()
            self.current = None
            self.y = self.MARGIN

    def rule(self) -> None:
        self.pdf.line(self.MARGIN, self.y, self.MARGIN + self.width, self.y)

    # the document

    def draw(self) -> None:
        pdf, doc = self.pdf, self.doc
        pdf.set_auto_page_break(False)
        pdf.add_page()
        pdf.set_draw_color(190, 190, 190)
        pdf.set_line_width(0.2)
        credit = doc.kind == InvoiceKind.CREDIT_NOTE.value
        if self.logo:
            pdf.image(str(self.logo), x=self.MARGIN, y=self.MARGIN, h=14)
        half = self.width / 2
        right = self.MARGIN + half
        self.put(right, half, "CREDIT NOTE" if credit else "INVOICE", bold=True, size=18, align="R", h=9)
        self.newline(11)
        for label, value in self.header_facts(credit):
            self.put(right, half * 0.45, label)
            self.put(right + half * 0.45, half * 0.55, value, bold=True, align="R")
            self.newline()
        self.newline(4)
        self.parties()
        self.newline(3)
        self.payment(credit)
        self.newline(4)
        self.lines()
        self.newline(2)
        self.totals()
        self.newline(6)
        self.notes(credit)

    def header_facts(self, credit: bool) -> list[tuple[str, str]]:
        doc = self.doc
        facts = [
            ("Credit note number" if credit else "Invoice number", doc.number),
            ("Date of issue", _date(doc.issued_at)),
        ]
        if credit:
            facts.append(("Credits invoice", doc.refers_to or "—"))
        elif doc.payment and doc.payment.paid_at:
            facts.append(("Date of supply", _date(doc.payment.paid_at)))
        facts.append(("Currency", doc.currency))
        return facts

    @staticmethod
    def party_lines(party: dict, tax_label: str) -> list[tuple[str, bool]]:
        lines: list[tuple[str, bool]] = [(party.get("name") or "", True)]
        if party.get("company"):
            lines.append((party["company"], False))
        address = party.get("address") or ""
        lines += [(part.strip(), False) for part in address.replace("\n", ", ").split(", ") if part.strip()]
        if party.get("country"):
            lines.append((f"Country: {party['country']}", False))
        if party.get("tax_id"):
            lines.append((f"{tax_label}: {party['tax_id']}", False))
        if party.get("email"):
            lines.append((party["email"], False))
        return lines

    def parties(self) -> None:
        half = self.width / 2
        columns = (self.party_lines(self.doc.seller, "VAT ID"), self.party_lines(self.doc.buyer, "Tax ID"))
        self.put(self.MARGIN, half, "Seller", bold=True, size=8)
        self.put(self.MARGIN + half, half, "Buyer (bill to)", bold=True, size=8)
        self.newline()
        self.rule()
        self.newline(1)
        for i in range(max(len(c) for c in columns)):
            for column, lines in enumerate(columns):
                if i < len(lines):
                    text, bold = lines[i]
                    self.put(self.MARGIN + column * half, half - 4, text, bold=bold, fit=True)
            self.newline()

    def payment(self, credit: bool) -> None:
        pay = self.doc.payment
        if pay is None:
            return
        method = {"stripe": "Stripe (card)", "airwallex": "Airwallex", "alipay": "Alipay"}.get(pay.method, pay.method)
        if credit:
            text = f"Refunded to the original payment: {method}, provider reference {pay.provider_ref or '—'}"
        else:
            text = f"Paid on {_date(pay.paid_at)} by {method}, provider reference {pay.provider_ref or '—'}"
        self.put(self.MARGIN, self.width, text, fit=True)
        self.newline()

    def lines(self) -> None:
        pdf, doc = self.pdf, self.doc
        widths = (self.width * 0.46, self.width * 0.18, self.width * 0.18, self.width * 0.18)
        pdf.set_fill_color(240, 240, 240)
        pdf.rect(self.MARGIN, self.y, self.width, 6, style="F")
        pdf.set_fill_color(0)  # text is drawn in the fill colour: back to black
        x = self.MARGIN
        for w, head, align in zip(widths, ("Description", "Quantity", "Unit price", "Amount"), "LRRR", strict=True):
            self.put(x + 1, w - 2, head, bold=True, size=8, align=align, h=6)
            x += w
        self.newline(7)
        for line in doc.lines:
            quantity = f"{line.get('quantity', '1')} {line.get('unit', '')}".strip()
            cells = (
                (_description(line, doc), "L"),
                (quantity, "R"),
                (_unit_price(line, doc.currency), "R"),
                (_amount(int(line["amount_cents"]), doc.currency), "R"),
            )
            x = self.MARGIN
            for w, (text, align) in zip(widths, cells, strict=True):
                self.put(x + 1, w - 2, text, align=align, fit=True)
                x += w
            self.newline(6)
        self.rule()
        self.newline(1)

    def totals(self) -> None:
        doc = self.doc
        rate = "0%" if doc.tax_cents == 0 else tax_wording(doc).removeprefix("VAT ")
        rows = [
            ("Credits top-up (before tax)", doc.subtotal_cents, False),
            ("Processing fee", doc.fee_cents, False),
            ("Amount before tax", doc.subtotal_cents + doc.fee_cents, False),
            (f"VAT rate {rate}", doc.tax_cents, False),
            (f"Total ({doc.currency})", doc.total_cents, True),
        ]
        label_w, value_w = self.width * 0.3, self.width * 0.2
        x = self.MARGIN + self.width - label_w - value_w
        for label, cents, bold in rows:
            size = 10.0 if bold else 9.0
            self.put(x, label_w, label, bold=bold, size=size)
            self.put(x + label_w, value_w - 1, _amount(cents, doc.currency), bold=bold, size=size, align="R")
            self.newline(6 if bold else self.LINE)

    def notes(self, credit: bool) -> None:
        notes = [f"VAT: {tax_wording(self.doc)}"]
        if credit:
            notes.append(f"This credit note reduces invoice {self.doc.refers_to or '—'}; its amounts are negative.")
        notes.append("Prepaid AI-model credits: drawn down by use.")
        for note in notes:
            self.put(self.MARGIN, self.width, note, size=8, fit=True)
            self.newline()


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
def _fonts() -> tuple[tuple[str, TTFFont, _GlyfSource, dict], ...]:
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
        if family in ("arabic", "hebrew"):
            font.hbfont  # noqa: B018 - open the HarfBuzz face once, shared by every copy
        fixed = {}
        if key in _FIXED_FONTS:
            subset = SubsetMap(font)
            fixed = dict(subset._char_id_per_glyph)
            for ch, code in _FIXED.items():
                glyph = subset.get_glyph(unicode=ord(ch))
                if glyph is None:
                    raise ValueError(f"Invoice font {path} has no glyph for {ch!r}.")
                fixed[glyph] = code
        loaded.append((key, font, _GlyfSource(font.ttfont), fixed))
    SubsetMap.get_glyph.cache_clear()
    return tuple(loaded)


def _new_pdf(paper: str) -> FPDF:
    """A document with copies of the parsed fonts: each copy has its own record of glyphs used."""
    pdf = FPDF(orientation="P", unit="mm", format=paper)
    pdf.set_compression(True)
    for key, proto, _, fixed in _fonts():
        font = copy.copy(proto)
        font.i = len(pdf.fonts) + 1
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.desc = copy.copy(proto.desc)
        font.subset = SubsetMap(font)
        if fixed:
            font.subset._char_id_per_glyph = dict(fixed)
            font.subset._reserved = []
            font.subset._next = _FIRST_FREE_CODE
        pdf.fonts[key] = font
    pdf.set_fallback_fonts(list(FALLBACKS), exact_match=False)
    return pdf


@cache
def _fixed_widths(key: str) -> dict[str, int]:
    font = next(f for k, f, _, _ in _fonts() if k == key)
    return {ch: font.cw[ord(ch)] for ch in _FIXED}


class _Output(OutputProducer):
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
        for head, stream in _embedded(font.fontkey, glyphs):
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
    fixed = next(f for key, _, _, f in _fonts() if key == fontkey)
    return tuple((code, glyph.glyph_id, glyph.unicode, glyph.glyph_width) for glyph, code in fixed.items() if glyph)


@lru_cache(maxsize=256)
def _embedded(fontkey: str, extra: tuple) -> tuple[tuple[str, bytes | None], ...]:
    """The six objects embedding a subset: Type0 font, CID font, ToUnicode, CIDSystemInfo, descriptor, file.

    ``extra`` is (code, glyph id, unicode, width) of each glyph the document added to the font's fixed
    ones. Latin-only invoices add none, so their subsets are built once per process; the cache is
    bounded (constant memory).
    """
    glyphs = sorted(_fixed_glyphs(fontkey) + extra)
    font = next(f for key, f, _, _ in _fonts() if key == fontkey)
    source = next(s for key, _, s, _ in _fonts() if key == fontkey)
    name = Name(f"MPDFAA+{font.name}").serialize().replace("{", "{{").replace("}", "}}")
    data = source.subset({code: glyph_id for code, glyph_id, _, _ in glyphs})
    font_file = zlib.compress(data)
    widths = _cid_font_widths({code: width for code, _, _, width in glyphs})
    bf_char = []
    for code, _, unicode, _ in glyphs:
        if isinstance(unicode, tuple) and unicode:
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
