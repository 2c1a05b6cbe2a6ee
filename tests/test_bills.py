"""Bills review: documents listed, filtered, paged and totalled in the database; trouble checks; app jobs."""

from __future__ import annotations

import csv
import io
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.errors import BillingError, NotFound, PermissionDenied
from billing_core.core.models import (
    AuditEvent,
    Customer,
    Invoice,
    InvoiceKind,
    Order,
    RegenerationJob,
    RegenerationStatus,
)
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, storage
from billing_core.invoices import review as bills
from billing_core.invoices.review import DocumentFilters
from billing_core.orders import lifecycle as orders
from tests.helpers import FINANCE, make_customer, make_order, paid


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=400, seed=11, actor=admin)
    return db


@pytest.fixture
def files_settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, invoice_dir=tmp_path / "files")


def pay(session, admin, support, pricing, settings, email, amount="500", method="stripe", **customer):
    order = make_order(session, admin, make_customer(session, admin, email=email, **customer), pricing, amount, method)
    orders.complete_order(session, support, order.id, settings=settings, reason="paid", payment=paid(order))
    return orders._invoice_for(session, order.id)


@pytest.fixture
def three(session, admin, support, pricing, settings):
    """Three paid orders: a Pro by Stripe from Germany, a Study by Alipay from China, a custom by Airwallex."""
    return [
        pay(session, admin, support, pricing, settings, "de@example.com", "500", "stripe", country="DE"),
        pay(session, admin, support, pricing, settings, "cn@example.com", "20", "alipay", country="CN"),
        pay(session, admin, support, pricing, settings, "fr@example.com", "42", "airwallex", country="FR"),
    ]


def numbers(session, filters: DocumentFilters, page_size: int = 50) -> list[str]:
    return [r.number for r in bills.list_documents(session, FINANCE, filters, page_size).rows]


# --- the list and its filters ---------------------------------------------------------------------


def test_the_list_shows_each_invoice_with_its_order_customer_and_amounts(session, three):
    rows = bills.list_documents(session, FINANCE, DocumentFilters()).rows
    assert [r.number for r in rows] == [i.number for i in reversed(three)]  # newest first
    pro = rows[-1]
    order = session.get(Order, three[0].order_id)
    assert (pro.plan, pro.method, pro.country, pro.customer_email) == ("pro", "stripe", "DE", "de@example.com")
    assert (pro.subtotal_cents, pro.fee_cents, pro.total_cents) == (50000, 2750, 52750)
    assert (pro.order_public_id, pro.kind, pro.refers_to, pro.latest_version) == (
        order.public_id,
        InvoiceKind.INVOICE,
        None,
        None,
    )


def test_filters_by_plan_method_country_and_customer(session, three):
    de, cn, fr = (i.number for i in three)
    assert numbers(session, DocumentFilters(plans=("pro", "study"))) == [cn, de]
    assert numbers(session, DocumentFilters(methods=("airwallex",))) == [fr]
    assert numbers(session, DocumentFilters(country="cn")) == [cn]
    assert numbers(session, DocumentFilters(customer="FR@example.com")) == [fr]
    customer = session.get(Order, three[0].order_id).customer_id
    public_id = session.get(Customer, customer).public_id
    assert numbers(session, DocumentFilters(customer=public_id)) == [de]
    with pytest.raises(NotFound, match="nobody@example.com"):
        bills.list_documents(session, FINANCE, DocumentFilters(customer="nobody@example.com"))


def test_an_unknown_customer_is_quoted_short_however_long_the_paste(session, three):
    with pytest.raises(NotFound) as refused:
        bills.list_documents(session, FINANCE, DocumentFilters(customer="x" * 5_000))
    assert len(str(refused.value)) < 100


def test_filters_by_issue_period(session, three):
    today = three[0].issued_at.date()
    assert len(numbers(session, DocumentFilters(since=today, until=today))) == 3
    assert numbers(session, DocumentFilters(until=today - timedelta(days=1))) == []
    with pytest.raises(BillingError, match="start date is after the end date"):
        bills.list_documents(session, FINANCE, DocumentFilters(since=today, until=today - timedelta(days=1)))


def test_number_range_takes_sequences_of_one_series(session, three):
    de, cn, fr = (i.number for i in three)
    assert numbers(session, DocumentFilters(number_from=cn, number_to=fr)) == [fr, cn]
    assert numbers(session, DocumentFilters(number_to=cn)) == [cn, de]
    with pytest.raises(BillingError, match="within one series"):
        bills.list_documents(session, FINANCE, DocumentFilters(number_from=de, number_to="CN-2026-000001"))
    with pytest.raises(BillingError, match="not an invoice number"):
        bills.list_documents(session, FINANCE, DocumentFilters(number_from="last week"))


def test_sandbox_documents_are_left_out_unless_asked(session, admin, support, pricing, settings, three, analyst):
    customer = make_customer(session, admin, email="sbx@sandbox.test", sandbox=True)
    order = orders.create_order(session, admin, customer_id=customer.id, amount="100", method="stripe", pricing=pricing)
    orders.complete_order(session, analyst, order.id, settings=settings, reason="sandbox", payment=paid(order))
    sandbox_number = orders._invoice_for(session, order.id).number
    assert sandbox_number not in numbers(session, DocumentFilters())
    assert sandbox_number in numbers(session, DocumentFilters(include_sandbox=True))


def test_credit_notes_point_at_their_invoice_and_filter_by_kind(seeded):
    with seeded.session() as session:
        notes = bills.list_documents(session, FINANCE, DocumentFilters(kind=InvoiceKind.CREDIT_NOTE), 500).rows
        assert notes and all(n.kind == InvoiceKind.CREDIT_NOTE and n.total_cents < 0 for n in notes)
        invoices = {
            r.number: r for r in bills.iter_documents(session, FINANCE, DocumentFilters(kind=InvoiceKind.INVOICE))
        }
        for note in notes:
            assert invoices[note.refers_to].order_public_id == note.order_public_id


# --- paging and totals ----------------------------------------------------------------------------


def test_paging_visits_every_document_once_newest_first(seeded):
    with seeded.session() as session:
        everything = session.scalar(select(func.count()).select_from(Invoice).where(Invoice.sandbox.is_(False)))
        seen, cursor, pages = [], None, 0
        while True:
            page = bills.list_documents(session, FINANCE, DocumentFilters(), page_size=37, after=cursor)
            seen += page.rows
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        counted = bills.count_documents(session, FINANCE, DocumentFilters())
    assert len(seen) == len({r.id for r in seen}) == everything == counted
    assert pages == -(-everything // 37)
    keys = [(r.issued_at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(
    "filters",
    [
        DocumentFilters(),
        DocumentFilters(plans=("pro", "max"), methods=("stripe",)),
        DocumentFilters(kind="credit_note"),
    ],
    ids=["all", "pro-max-stripe", "credit-notes"],
)
def test_totals_by_month_and_plan_equal_the_sums_of_the_listed_documents(seeded, filters):
    with seeded.session() as session:
        expected = defaultdict(lambda: [0, 0, 0, 0, 0])
        for row in bills.iter_documents(session, FINANCE, filters, batch_size=100):
            cell = expected[(f"{row.issued_at:%Y-%m}", row.plan)]
            for i, value in enumerate((1, row.subtotal_cents, row.fee_cents, row.tax_cents, row.total_cents)):
                cell[i] += value
        got = {
            (t.month, t.plan): [t.documents, t.subtotal_cents, t.fee_cents, t.tax_cents, t.total_cents]
            for t in bills.totals(session, FINANCE, filters)
        }
    assert got == dict(expected)
    assert len({month for month, _ in got}) > 1 or filters.kind == "credit_note"


def test_csv_export_has_every_matching_document_spreadsheet_safe(seeded):
    filters = DocumentFilters(kind=InvoiceKind.CREDIT_NOTE)
    with seeded.session() as session:
        data, written = bills.documents_csv(session, FINANCE, filters)
        count = bills.count_documents(session, FINANCE, filters)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert written == len(rows) == count > 0
    assert list(rows[0]) == list(bills.EXPORT_COLUMNS)
    assert all(r["total"].startswith("-") and float(r["total"]) < 0 for r in rows)  # numbers, not '-text
    assert all(r["refers_to"] for r in rows)


def test_csv_export_neutralises_formulas_in_text(session, admin, support, pricing, settings):
    pay(session, admin, support, pricing, settings, "=cmd@example.com")
    data, _ = bills.documents_csv(session, FINANCE, DocumentFilters())
    assert "'=cmd@example.com" in data.decode("utf-8")


# --- checks ---------------------------------------------------------------------------------------


def check(session, name: str, root: Path) -> bills.Check:
    return next(c for c in bills.checks(session, FINANCE, root=root) if c.name == name)


def test_clean_data_passes_every_check(seeded, tmp_path):
    with seeded.session() as session:
        found = bills.checks(session, FINANCE, root=tmp_path)
    assert [c.ok for c in found] == [True] * len(bills.CHECKS), found


def test_a_paid_order_whose_invoice_is_gone_is_flagged(seeded, tmp_path):
    with seeded.session() as session, transaction(session):
        invoice = session.scalars(
            select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE, ~Invoice.id.in_(_referred()))
        ).first()
        order_id = invoice.order_id
        session.execute(delete(Invoice).where(Invoice.id == invoice.id))
    with seeded.session() as session:
        flagged = check(session, "Paid order without an invoice", tmp_path)
        assert flagged.count == 1 and flagged.examples == [session.get(Order, order_id).public_id]
        assert not check(session, "Gap or repeat in a number series", tmp_path).ok  # its number is now missing


def _referred():
    return select(Invoice.refers_to_id).where(Invoice.refers_to_id.is_not(None))


def test_an_invoice_total_that_differs_from_its_order_is_flagged(seeded, tmp_path):
    with seeded.session() as session, transaction(session):
        invoice = session.scalars(select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE)).first()
        number = invoice.number
        session.execute(update(Invoice).where(Invoice.id == invoice.id).values(total_cents=Invoice.total_cents + 1))
    with seeded.session() as session:
        flagged = check(session, "Invoice total differs from its order", tmp_path)
    assert flagged.count == 1 and flagged.examples[0].startswith(f"{number}: ")


def test_a_gap_in_a_number_series_is_flagged_with_the_missing_number(seeded, tmp_path):
    with seeded.session() as session, transaction(session):
        last = session.scalars(select(Invoice).where(Invoice.series.like("INV-%")).order_by(Invoice.id.desc())).first()
        session.add(
            Invoice(
                number=f"{last.series}-{last.sequence + 2:06d}", series=last.series, sequence=last.sequence + 2,
                kind=InvoiceKind.CREDIT_NOTE, order_id=last.order_id, issued_at=last.issued_at,
                subtotal_cents=0, fee_cents=0, total_cents=0, seller={}, buyer={}, lines=[], template_version="1",
            )
        )  # fmt: skip
    with seeded.session() as session:
        flagged = check(session, "Gap or repeat in a number series", tmp_path)
    assert flagged.count == 1
    assert f"{last.series}: missing {last.sequence + 1}" in flagged.examples


def test_a_tampered_stored_file_is_flagged(seeded, finance, files_settings):
    root = Path(files_settings.invoice_dir)
    with seeded.session() as session:
        ids = list(session.scalars(select(Invoice.id).order_by(Invoice.id).limit(3)))
    stored = [storage.issued_pdf(seeded, finance, i, settings=files_settings)[0] for i in ids]
    with seeded.session() as session:
        assert check(session, "Stored file altered or missing", root).ok
    (root / stored[1].path).write_bytes(b"%PDF-forged")
    with seeded.session() as session:
        flagged = check(session, "Stored file altered or missing", root)
    assert flagged.count == 1 and flagged.examples == [f"altered {stored[1].path}"]


# --- regeneration jobs from the app ---------------------------------------------------------------


def test_a_launched_job_runs_in_its_own_process_to_a_zip(db, admin, finance, files_settings):
    demo.seed(db, orders=30, seed=2, actor=admin)
    with db.session() as session:
        chosen = batch.select_invoices(session, FINANCE, plans=["study", "standard", "custom"])
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "new footer").id
    process = bills.launch_job(files_settings, FINANCE, job_id, workers=1)
    assert process.wait(timeout=120) == 0
    with db.session() as session:
        job = bills.get_job(session, FINANCE, job_id)
    assert (job.status, job.done, job.total) == (RegenerationStatus.FINISHED, chosen.count, chosen.count)
    assert (Path(files_settings.invoice_dir) / job.zip_path).stat().st_size > 0


def test_cancelling_stops_a_running_job_and_is_audited(seeded, finance, support):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job_id = batch.start_job(session, finance, chosen, "new logo").id
        with pytest.raises(PermissionDenied):
            bills.cancel_job(session, support, job_id)
        bills.cancel_job(session, finance, job_id)
        with pytest.raises(BillingError, match="only a running job"):
            bills.cancel_job(session, finance, job_id)
        assert session.get(RegenerationJob, job_id).status == RegenerationStatus.CANCELLED
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "regeneration_job"))
        assert list(actions) == ["invoices.regenerate.start", "invoices.regenerate.cancel"]


def test_job_eta_comes_from_progress_so_far(seeded, finance):
    with seeded.session() as session:
        chosen = batch.select_invoices(session, FINANCE)
        with transaction(session):
            job = batch.start_job(session, finance, chosen, "eta")
            job.done = chosen.count // 4
        time.sleep(0.05)
        view = bills.get_job(session, FINANCE, job.id)
    assert view.fraction == pytest.approx(0.25, abs=0.01)
    assert view.eta_seconds is not None and view.eta_seconds > 0


def test_split_number_reads_series_and_sequence():
    assert bills.split_number(" INV-2026-000042 ") == ("INV-2026", 42)
