"""PDF/A-3b invoices: template 3 onwards, XMP metadata (title, producer, issue date, PDF/A identification),
an output intent, every font embedded, the same bytes on every render; an invoice issued under an older
template keeps its plain PDF."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess

import pytest
from pypdf import PdfReader

from billing_core.invoices import TEMPLATE_VERSION, pdfa
from billing_core.invoices.render import render_invoice
from tests.test_invoice_render import document


def archival(name="Zoë Müller", **changes):
    return dataclasses.replace(document(name), template_version="3", **changes)


def xmp_of(pdf: bytes) -> str:
    return PdfReader(io.BytesIO(pdf)).trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")


def test_invoices_are_issued_under_the_pdfa_template():
    assert pdfa.is_archival(TEMPLATE_VERSION)
    assert not pdfa.is_archival("2") and not pdfa.is_archival("1") and not pdfa.is_archival("x")


@pytest.mark.parametrize("name", ["Zoë Müller", "ليلى العلي", "王小明"])
def test_a_template_3_invoice_is_pdfa_3b_with_xmp_that_matches_its_information(name):
    pdf = render_invoice(archival(name))
    assert pdf.startswith(b"%PDF-1.7")
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    xmp = xmp_of(pdf)
    assert "<pdfaid:part>3</pdfaid:part>" in xmp and "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    intent = root["/OutputIntents"][0].get_object()
    assert intent["/S"] == "/GTS_PDFA1" and intent["/DestOutputProfile"].get_object().get_data()
    # fpdf2 writes no document information dictionary in PDF/A mode: the XMP alone carries it.
    assert reader.metadata is None
    assert '<rdf:li xml:lang="x-default">Invoice INV-2026-000123</rdf:li>' in xmp
    assert f"<pdf:Producer>{pdfa.PRODUCER}</pdf:Producer>" in xmp
    assert "<xmp:CreateDate>2026-05-01T12:00:00+00:00</xmp:CreateDate>" in xmp
    for font in reader.pages[0]["/Resources"]["/Font"].values():
        descriptor = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor  # every font embedded


def test_a_pdfa_invoice_renders_to_the_same_bytes_every_time():
    assert render_invoice(archival("ليلى العلي")) == render_invoice(archival("ليلى العلي"))


def test_an_invoice_of_an_older_template_keeps_its_plain_pdf_unless_the_new_one_is_asked_for():
    old = document()  # issued under template 2
    plain = render_invoice(old)
    assert "/Metadata" not in PdfReader(io.BytesIO(plain)).trailer["/Root"]
    assert plain.startswith(b"%PDF-1.")
    asked = render_invoice(old, template="3")
    assert "<pdfaid:part>3</pdfaid:part>" in xmp_of(asked)
    assert asked == render_invoice(archival())


def test_qpdf_finds_pdfa_invoices_sound(tmp_path):
    qpdf = shutil.which("qpdf")
    if qpdf is None:
        pytest.skip("qpdf is not installed (make test installs it)")
    for i, doc in enumerate([archival(), archival("ليلى العلي"), archival(kind="credit_note")]):
        path = tmp_path / f"{i}.pdf"
        path.write_bytes(render_invoice(doc))
        checked = subprocess.run([qpdf, "--check", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0 and not re.search(r"WARNING|ERROR", checked.stdout + checked.stderr), checked
