"""The invoice PDF: required fields, names in every script as real text, paper sizes, identical bytes."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from billing_core.invoices.render import REVERSE_CHARGE, VAT_EXEMPT, InvoiceDocument, Payment, render_invoice

NAMES = ["Zoë Müller", "Зоя Смирнова", "Γιώργος Παπαδόπουλος", "王小明", "山田太郎", "김민준"]
NAMES += ["محمد العلي", "ليلى العلي"]
SELLER = {
    "name": "Model Router Ltd.",
    "address": "1 Example Street, Dublin D02, Ireland",
    "tax_id": "IE1234567X",
    "email": "billing@example.com",
    "country": "IE",
}


def document(name="Zoë Müller", *, country="DE", tax_id="DE123456789", kind="invoice", sign=1) -> InvoiceDocument:
    return InvoiceDocument(
        invoice_id=1,
        number="CN-2026-000004" if kind == "credit_note" else "INV-2026-000123",
        kind=kind,
        issued_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
        currency="USD",
        subtotal_cents=sign * 50000,
        fee_cents=sign * 2750,
        tax_cents=0,
        total_cents=sign * 52750,
        seller=SELLER,
        buyer={
            "name": name,
            "company": "ACME GmbH",
            "address": "Hauptstraße 5, 10115 Berlin, Germany",
            "tax_id": tax_id,
            "country": country,
            "email": "zoe@example.com",
        },
        lines=[
            {
                "description": "AI model credits top-up (Pro)",
                "quantity": "50000.00",
                "unit": "credit",
                "amount_cents": sign * 50000,
            },
            {
                "description": "Payment processing fee (stripe)",
                "quantity": "1",
                "unit": "fee",
                "amount_cents": sign * 2750,
            },
        ],
        payment=Payment(datetime(2026, 5, 1, 11, 58, tzinfo=UTC), "stripe", "pi_3Nabc123"),
        refers_to="INV-2026-000123" if kind == "credit_note" else None,
    )


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_invoice_carries_every_required_field():
    text = text_of(render_invoice(document()))
    for expected in [
        "INVOICE",
        "INV-2026-000123",
        "Date of issue 2026-05-01",
        "Model Router Ltd.",
        "1 Example Street",
        "VAT ID: IE1234567X",
        "ACME GmbH",
        "Hauptstraße 5",
        "Tax ID: DE123456789",
        "AI model credits top-up (Pro)",
        "50000.00 credit",
        "$0.01",
        "Paid on 2026-05-01 by Stripe (card), provider reference pi_3Nabc123",
        "Amount before tax $527.50",
        "VAT rate 0% $0.00",
        "Processing fee $27.50",
        "Total (USD) $527.50",
        REVERSE_CHARGE,
    ]:
        assert expected in text, expected


def test_domestic_or_untaxed_buyer_is_vat_exempt_not_reverse_charge():
    text = text_of(render_invoice(document(country="IE", tax_id="IE999")))
    assert VAT_EXEMPT in text and "Reverse charge" not in text
    assert VAT_EXEMPT in text_of(render_invoice(document(country="DE", tax_id=None)))


def test_credit_note_refers_to_the_invoice_with_negative_amounts():
    text = text_of(render_invoice(document(kind="credit_note", sign=-1)))
    assert "CREDIT NOTE" in text
    assert "CN-2026-000004" in text
    assert "Credits invoice INV-2026-000123" in text
    assert "-$527.50" in text and "-$500.00" in text


def issued_credit_note(description: str) -> InvoiceDocument:
    """A credit note for $263.75 of invoice INV-2026-000123, its one line as frozen at issue."""
    line = {"description": description, "quantity": "1", "unit": "refund", "amount_cents": -26375}
    return dataclasses.replace(
        document(kind="credit_note"),
        subtotal_cents=-25000, fee_cents=-1375, total_cents=-26375, lines=[line],
    )  # fmt: skip


def test_a_credit_note_prints_its_negative_amounts_one_way():
    text = text_of(render_invoice(issued_credit_note("Refund of invoice INV-2026-000123")))
    assert "-$263.75" in text and "$-" not in text


def test_a_credit_note_frozen_with_staffs_reason_re_renders_without_it():
    """Template 1 froze the refund reason into the line; the customer's copy never shows it."""
    frozen = "Refund of invoice INV-2026-000123: Half refund requested by customer, ticket 1234"
    text = text_of(render_invoice(issued_credit_note(frozen)))
    assert "Refund of invoice INV-2026-000123" in text
    assert "ticket 1234" not in text and "Half refund" not in text


@pytest.mark.parametrize("name", NAMES)
def test_names_in_every_script_come_back_as_text(name):
    assert name in text_of(render_invoice(document(name)))


@pytest.mark.parametrize(("paper", "size"), [("A4", (595.28, 841.89)), ("Letter", (612.0, 792.0))])
def test_paper_sizes(paper, size):
    box = PdfReader(io.BytesIO(render_invoice(document(), paper=paper))).pages[0].mediabox
    assert (round(float(box.width), 2), round(float(box.height), 2)) == size


@pytest.mark.parametrize("name", ["Zoë Müller", "王小明", "محمد العلي"])
def test_same_invoice_renders_to_identical_bytes(name):
    assert render_invoice(document(name)) == render_invoice(document(name))


def test_unknown_paper_is_refused():
    with pytest.raises(ValueError, match="Paper"):
        render_invoice(document(), paper="A3")


def test_bytes_do_not_depend_on_what_the_process_rendered_before():
    from billing_core.invoices import fonts

    fonts.embedded.cache_clear()
    first = render_invoice(document())
    for name in NAMES:
        render_invoice(document(name))
    assert render_invoice(document()) == first
    fonts.embedded.cache_clear()
    assert render_invoice(document()) == first


@pytest.mark.parametrize("name", ["Zoë Müller", "王小明", "محمد العلي"])
def test_embedded_fonts_are_valid_truetype_subsets(name):
    from fontTools.ttLib import TTFont

    page = PdfReader(io.BytesIO(render_invoice(document(name)))).pages[0]
    fonts = page["/Resources"]["/Font"]
    assert len(fonts) >= 2
    for ref in fonts.values():
        descendant = ref.get_object()["/DescendantFonts"][0].get_object()
        data = descendant["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
        font = TTFont(io.BytesIO(data))
        count = font["maxp"].numGlyphs
        assert 0 < count < 1000
        assert all(font["glyf"][name] is not None for name in font.getGlyphOrder())
