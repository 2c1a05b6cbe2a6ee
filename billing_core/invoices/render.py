"""The invoice PDF (fpdf2): every field an EU invoice must carry, names in any script, fast and deterministic.

The fonts, parsed once per process and embedded by our own subsetter, are in ``invoices.fonts``; this
module lays out the page. The same invoice renders to the same bytes: the creation date is the issue
date and the file id is a hash of the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import PDFResourceType

from billing_core.core import money
from billing_core.core.models import Invoice, InvoiceKind, Order
from billing_core.invoices import fonts, pdfa, textlayer

# Bumped whenever the layout changes, so a regenerated file says which template drew it.
RENDER_VERSION = "pdf-2"
PAPERS = ("A4", "Letter")
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
    template_version: str = "2"  # the template the invoice was issued under; 3 and later are PDF/A-3b

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
            template_version=str(invoice.template_version),
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
    template: str | None = None,
    einvoice_format: str = "pdf",
) -> bytes:
    """The PDF of one invoice or credit note; the same input gives the same bytes.

    The document's own template version decides whether it is PDF/A-3b (``pdfa.is_archival``);
    ``template`` renders it under another one instead (a re-render that asks for the new template).
    ``einvoice_format`` "facturx" (or "facturx+ubl") embeds the EN 16931 CII XML: a Factur-X PDF/A-3.
    """
    if paper not in PAPERS:
        raise ValueError(f"Paper must be one of {', '.join(PAPERS)}, not {paper!r}.")
    from billing_core.invoices import einvoice  # it reads this module's wording

    if einvoice_format not in einvoice.FORMATS:
        raise ValueError(f"E-invoice format must be one of {', '.join(einvoice.FORMATS)}, not {einvoice_format!r}.")
    doc = invoice if isinstance(invoice, InvoiceDocument) else InvoiceDocument.of(invoice, order, refers_to)
    facturx = einvoice_format != "pdf"
    archival = facturx or pdfa.is_archival(template or doc.template_version)  # Factur-X is PDF/A-3 by definition
    pdf = fonts.new_pdf(paper, archival)
    pdf.set_creation_date(doc.issued_at)
    title = f"{'Credit note' if doc.kind == InvoiceKind.CREDIT_NOTE.value else 'Invoice'} {doc.number}"
    pdf.set_title(title)
    if archival:
        schemas, properties = einvoice.facturx_xmp() if facturx else ("", "")
        pdf.set_xmp_metadata(pdfa.xmp(title, doc.issued_at, extra_schemas=schemas, extra_properties=properties))
        pdfa.add_output_intent(pdf)
    if facturx:
        pdf.embed_file(
            bytes=einvoice.cii_xml(doc), basename=einvoice.FACTURX_FILENAME, mime_type="text/xml",
            associated_file_relationship="Alternative", desc="Factur-X invoice (EN 16931)",
            creation_date=doc.issued_at, modification_date=doc.issued_at, compress=True,
        )  # fmt: skip
    _Layout(pdf, doc, Path(logo) if logo else None).draw()
    return bytes(pdf.output(output_producer_class=fonts.Output))


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
        self.fallbacks = [pdf.fonts[key] for key in fonts.FALLBACKS]

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
            self.shaped(x, w, text, bold=bold, size=size, align=align, fit=fit, h=h)
            return
        runs = self.runs(text, bold)
        faces = self.pdf.fonts
        units = [sum(faces[family + style].cw[ord(c)] for c in chars) for family, style, chars in runs]
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
            unit = sum(map(fonts.fixed_widths(key).__getitem__, text))
            hexes = "".join(map(fonts.FIXED_HEX.__getitem__, text))
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
        cover them; the sans fonts' ASCII codes are fixed (``fonts.FIXED``) and cost one lookup.
        """
        pdf = self.pdf
        font = pdf.fonts[key]
        codes = self.codes.get(key)
        if codes is None:
            codes = self.codes[key] = dict(fonts.FIXED_HEX) if key in fonts.FIXED_FONTS else {}
        hexes = []
        for ch in chars:
            code = codes.get(ch)
            if code is None:
                picked = font.subset.pick(ord(ch))
                code = codes[ch] = "" if picked is None else f"{picked:04X}"
            hexes.append(code)
        self.emit(key, size, x, baseline, "".join(hexes))

    def shaped(self, x: float, w: float, text: str, *, bold: bool, size: float, align: str, fit: bool, h=None) -> None:
        """Right-to-left or joined text, shaped and written so its text layer reads back as ``text``."""
        pdf = self.pdf
        laid = textlayer.lay_out(text, pdf.fonts, "sansB" if bold else "sans", list(fonts.FALLBACKS))
        width = laid.width * size / 1000 / pdf.k
        if fit and width > w:
            size, width = max(5.0, size * w / width), w
        if align == "R":
            x += w - width
        elif align == "C":
            x += (w - width) / 2
        baseline = self.y + 0.5 * (h or self.LINE) + 0.3 * size / pdf.k
        for piece in laid.pieces:
            self.emit_placed(piece, size, x, baseline)

    def emit_placed(self, piece: textlayer.Piece, size: float, x: float, baseline: float) -> None:
        """One piece in its own text object: glyphs at HarfBuzz's positions (TJ offsets, rise for marks)."""
        pdf = self.pdf
        k = pdf.k
        font = pdf.fonts[piece.fontkey]
        pdf._resource_catalog.add(PDFResourceType.FONT, font.i, pdf.page)
        ops = [] if self.current == (piece.fontkey, size) else [f"/F{font.i} {size:.2f} Tf"]
        self.current = (piece.fontkey, size)
        ops.append(f"{(x * k + piece.x * size / 1000):.2f} {(pdf.h - baseline) * k:.2f} Td")
        end, rise, array = piece.x, 0.0, []
        for glyph in piece.glyphs:
            if glyph.dy != rise:
                if array:
                    ops.append(f"[{' '.join(array)}] TJ")
                    array = []
                rise = glyph.dy
                ops.append(f"{rise * size / 1000:.2f} Ts")
            gap = glyph.x - end
            if abs(gap) >= 0.01:
                array.append(f"{-gap:.2f}")
            array.append(f"<{glyph.code:04X}>")
            end = glyph.x + glyph.width
        ops.append(f"[{' '.join(array)}] TJ")
        if rise:
            ops.append("0 Ts")
        pdf._out(f"BT {' '.join(ops)} ET")

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
