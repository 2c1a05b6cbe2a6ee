"""After an edit of billing details, finance regenerates the customer's issued documents with the new
details: a new version beside the old one, audited; the invoice itself keeps its frozen buyer."""

from __future__ import annotations

import dataclasses
from io import BytesIO

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing_core.core.config import Settings
from billing_core.core.errors import BillingError
from billing_core.core.models import AuditEvent, Invoice, InvoiceFile
from billing_core.invoices import new_details, render, storage
from billing_core.orders import customers
from billing_core.orders import lifecycle as orders
from tests.helpers import make_customer, make_order, paid


@pytest.fixture
def files_settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, invoice_dir=str(tmp_path / "invoices"))


def text_of(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)


def paid_customer(db, admin, pricing, settings, n=2) -> tuple[str, list[str]]:
    with db.session() as s:
        customer = make_customer(s, admin, email="ines@example.com", name="Inês Gonçalves", company="Old Lda")
        numbers = []
        for _ in range(n):
            order = make_order(s, admin, customer, pricing)
            done = orders.complete_order(s, admin, order.id, settings=settings, reason="r", payment=paid(order))
            numbers.append(done.invoice_number)
        return customer.public_id, numbers


def edit(db, finance, public_id, company="New Company GmbH"):
    with db.session() as s:
        customers.update_billing_details(
            s, finance, public_id, reason="moved", address="Hauptstr. 1, Berlin", company=company, tax_id=None,
            country="DE",
        )  # fmt: skip


def test_nothing_is_stale_before_an_edit(db, admin, finance, pricing, files_settings):
    public_id, _ = paid_customer(db, admin, pricing, files_settings)
    with db.session() as s:
        assert new_details.stale_documents(s, finance, public_id).numbers == []
    with pytest.raises(BillingError, match="nothing to regenerate"):
        new_details.regenerate_with_new_details(db, finance, files_settings, public_id, reason="r")


def test_regeneration_adds_a_version_with_the_new_details_beside_the_issued_one(
    db, admin, finance, pricing, files_settings
):
    public_id, numbers = paid_customer(db, admin, pricing, files_settings)
    edit(db, finance, public_id)
    with db.session() as s:
        assert new_details.stale_documents(s, finance, public_id).numbers == numbers

    done = new_details.regenerate_with_new_details(db, finance, files_settings, public_id, reason="customer moved")

    assert (done.numbers, done.first_versions) == (numbers, 2)
    root = storage.storage_root(files_settings)
    with db.session() as s:
        invoice = s.scalar(select(Invoice).where(Invoice.number == numbers[0]))
        assert invoice.buyer["company"] == "Old Lda"  # the invoice row stays as issued
        old, new = storage.files_for(s, finance, invoice.id)
        assert (old.version, new.version) == (1, 2)
        assert old.reason == storage.ISSUED_REASON and new.reason == "new billing details: customer moved"
        issued = render._document_for(s, invoice)
        assert storage.read_file(old, root) == render.render_invoice(issued)
        assert "Old Lda" in text_of(storage.read_file(old, root))
        assert "New Company GmbH" in text_of(storage.read_file(new, root))
        shown = text_of(storage.read_file(new, root))
        assert "Hauptstr. 1" in shown and "Berlin" in shown and "Old Lda" not in shown
        expected = dataclasses.replace(issued, buyer=new_details.stale_documents(s, finance, public_id).details)
        assert storage.read_file(new, root) == render.render_invoice(expected)
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == new_details.ACTION)).all()
        assert (event.entity_id, event.reason, event.actor_email) == (public_id, "customer moved", finance.email)
        assert event.after["numbers"] == numbers and event.after["details"]["company"] == "New Company GmbH"
        assert new_details.stale_documents(s, finance, public_id).numbers == []  # offered once per edit


def test_a_second_edit_offers_the_documents_again_and_keeps_every_version(db, admin, finance, pricing, files_settings):
    public_id, numbers = paid_customer(db, admin, pricing, files_settings, n=1)
    edit(db, finance, public_id)
    new_details.regenerate_with_new_details(db, finance, files_settings, public_id, reason="first")
    edit(db, finance, public_id, company="Third Name SA")
    with db.session() as s:
        assert new_details.stale_documents(s, finance, public_id).numbers == numbers
    new_details.regenerate_with_new_details(db, finance, files_settings, public_id, reason="second")
    with db.session() as s:
        versions = s.scalars(select(InvoiceFile.version).order_by(InvoiceFile.version)).all()
    assert versions == [1, 2, 3]


def test_a_missing_reason_changes_nothing(db, admin, finance, pricing, files_settings):
    public_id, _ = paid_customer(db, admin, pricing, files_settings, n=1)
    edit(db, finance, public_id)
    with pytest.raises(BillingError, match="reason"):
        new_details.regenerate_with_new_details(db, finance, files_settings, public_id, reason="  ")
    with db.session() as s:
        assert s.scalars(select(InvoiceFile)).all() == []
