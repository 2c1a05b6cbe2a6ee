"""Defects found beside the refund work: one answer for a paid-then-refunded order everywhere, settlement
lines that claim an order only when they would complete it, verify's typed missing/altered, storing an
invoice file checks the role and audits, and regeneration jobs act in their starter's role."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from billing_core.access.roles import Role
from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.errors import PermissionDenied, StateConflict
from billing_core.core.models import AuditEvent, Invoice, InvoiceFile, Order, OrderStatus
from billing_core.demo import seeding as demo
from billing_core.invoices import batch, storage
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.reconcile import stuck as reconcile
from billing_core.reconcile.settlement import Verdict, apply, parse_settlement, preview
from tests.helpers import FINANCE, make_customer, make_order

HEADER = "Transaction ID,Merchant Order ID,Payment Intent ID,Currency,Amount,Fee,Net,Status,Settled At\n"


@pytest.fixture
def gateway(db) -> SimulatedGateway:
    return SimulatedGateway(db)


def partly_refunded(db, admin, support, finance, pricing, settings, gateway, method="airwallex"):
    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing, amount="100", method=method)
        payment = gateway.create_payment(orders._payment_request(s, order))
        orders.attach_payment(s, admin, order.id, payment)
        gateway.settle(payment.ref, Outcome.SUCCEED)
        payment_ops.complete_from_gateway(s, support, order.id, gateway, settings=settings, reason="paid")
        refunds.refund_order(s, finance, order.id, gateway, settings=settings, reason="part", amount="10")
        return orders._get_order(s, order.id)


# --- 2. a refunded order is "already paid" on every path ------------------------------------------------


def test_completing_a_refunded_order_says_it_is_already_paid(db, admin, support, finance, pricing, settings, gateway):
    order = partly_refunded(db, admin, support, finance, pricing, settings, gateway)
    with db.session() as s, pytest.raises(StateConflict, match="already paid .*partially refunded since"):
        orders.complete_order(s, finance, order.id, settings=settings, reason="again", manual_reference="x")


def test_both_reconcile_paths_call_a_refunded_order_already_completed(
    db, admin, support, finance, pricing, settings, gateway
):
    order = partly_refunded(db, admin, support, finance, pricing, settings, gateway)
    stuck = reconcile.StuckOrder(
        order.id, order.public_id, order.method, OrderStatus.PENDING, order.provider_ref, order.created_at
    )
    by_range = reconcile.reconcile_one(db, support, settings, stuck, gateway)
    event = reconcile._Event("evt_1", 0, order.provider_ref, order.public_id)
    by_event = reconcile._reconcile_event(db, support, settings, gateway, event)
    assert by_range.outcome is by_event.outcome is reconcile.Outcome.ALREADY


def test_settlement_calls_a_refunded_order_already_paid(db, admin, support, finance, pricing, settings, gateway):
    order = partly_refunded(db, admin, support, finance, pricing, settings, gateway)
    line = f"txn_1,{order.public_id},{order.provider_ref},USD,{order.total_cents / 100:.2f},3.62,0,SETTLED,2026-11-20\n"
    parsed = parse_settlement((HEADER + line).encode(), "airwallex.csv")
    with db.session() as s:
        assert [x.verdict for x in preview(s, FINANCE, parsed).lines] == [Verdict.ALREADY_PAID]
    result = apply(db, finance, settings, parsed)
    assert result.errors == [] and result.completed == []


def test_an_order_refunded_while_a_settlement_file_is_applied_counts_as_completed_meanwhile(
    db, admin, finance, pricing, settings, monkeypatch
):
    from billing_core.reconcile import settlement

    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing, amount="100", method="airwallex")
    line = f"txn_2,{order.public_id},,USD,{order.total_cents / 100:.2f},3.62,0,SETTLED,2026-11-20\n"
    parsed = parse_settlement((HEADER + line).encode(), "airwallex.csv")
    real_preview = settlement.preview

    def preview_then_someone_refunds(session, actor, parsed):
        shown = real_preview(session, actor, parsed)
        with db.session() as other, transaction(other):
            other.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.REFUNDED))
        return shown

    monkeypatch.setattr(settlement, "preview", preview_then_someone_refunds)
    result = apply(db, finance, settings, parsed)
    assert result.errors == [] and result.already_paid == [order.public_id]


# --- 3. only a line that would complete claims its order ------------------------------------------------


def test_a_wrong_line_before_the_right_one_does_not_claim_the_order(db, admin, pricing):
    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing, amount="100", method="airwallex")
    total = f"{order.total_cents / 100:.2f}"
    lines = (
        f"txn_a,{order.public_id},,EUR,{total},1,0,SETTLED,2026-11-20\n"
        f"txn_b,{order.public_id},,USD,1.00,1,0,SETTLED,2026-11-20\n"
        f"txn_c,{order.public_id},,USD,{total},1,0,SETTLED,2026-11-20\n"
        f"txn_d,{order.public_id},,USD,{total},1,0,SETTLED,2026-11-20\n"
    )
    with db.session() as s:
        shown = preview(s, FINANCE, parse_settlement((HEADER + lines).encode(), "airwallex.csv"))
    verdicts = [(x.verdict, x.reason) for x in shown.lines]
    assert [v for v, _ in verdicts] == [Verdict.MISMATCH, Verdict.MISMATCH, Verdict.WILL_COMPLETE, Verdict.MISMATCH]
    assert "EUR" in verdicts[0][1] and "paid $1.00" in verdicts[1][1]
    assert verdicts[3][1] == "line 4 already settles this order (paid twice?)"


# --- 4 and 5. stored invoice files ----------------------------------------------------------------------


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=40, seed=5, actor=admin)
    return db


@pytest.fixture
def files_settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, invoice_dir=tmp_path / "files")


def test_verify_tells_missing_from_altered_by_type_not_by_words(seeded, finance, files_settings):
    root = Path(files_settings.invoice_dir)
    with seeded.session() as s:
        invoice_id = s.scalar(select(Invoice.id).order_by(Invoice.id).limit(1))
    stored, _ = storage.issued_pdf(seeded, finance, invoice_id, settings=files_settings)
    odd = "odd/missing-words/v1.pdf"  # a path saying "missing" of a file that is only altered
    (root / odd).parent.mkdir(parents=True)
    (root / odd).write_bytes(b"%PDF-forged")
    with seeded.session() as s, transaction(s):
        s.execute(update(InvoiceFile).where(InvoiceFile.id == stored.id).values(path=odd))
    with seeded.session() as s:
        report = batch.verify(s, FINANCE, root=root)
        with pytest.raises(storage.FileAltered):
            storage.read_file(s.get(InvoiceFile, stored.id), root)
    assert report.altered == [odd] and report.missing == []


def test_storing_the_issued_copy_checks_the_role_and_is_audited(seeded, support, finance, files_settings):
    with seeded.session() as s:
        invoice = s.scalars(select(Invoice).order_by(Invoice.id).limit(1)).one()
    with pytest.raises(PermissionDenied):
        storage.issued_pdf(seeded, support, invoice.id, settings=files_settings)
    with seeded.session() as s:
        assert storage._latest_file(s, invoice.id) is None
    stored, _ = storage.issued_pdf(seeded, finance, invoice.id, settings=files_settings)
    with seeded.session() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "invoice.store_file"))
        with pytest.raises(PermissionDenied):
            storage.store_version(s, support, invoice, b"%PDF-x", "why", root=Path(files_settings.invoice_dir))
    assert (event.actor_email, event.actor_role, event.entity_id) == (finance.email, Role.FINANCE, invoice.number)
    assert event.after["version"] == stored.version == 1 and event.after["sha256"] == stored.sha256


# --- 1. a regeneration job acts in its starter's role (launch_job passes the starter as --actor/--role) ----


def test_a_regeneration_job_is_audited_in_the_role_of_who_started_it(seeded, admin, files_settings):
    with seeded.session() as s:
        chosen = batch.select_invoices(s, FINANCE)
        with transaction(s):
            job_id = batch.start_job(s, admin, chosen, "new logo").id
    batch.run_job(seeded, admin, job_id, should_stop=lambda: True, settings=files_settings)
    with seeded.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.entity_type == "regeneration_job")))
    assert [(e.action, e.actor_role) for e in events] == [
        ("invoices.regenerate.start", Role.ADMIN),
        ("invoices.regenerate.cancelled", Role.ADMIN),
    ]


def test_a_job_launched_from_the_page_runs_in_the_role_of_who_started_it(seeded, admin, files_settings):
    """The page's path: ``review.launch_job`` starts a real process, which acts as the starter (not as finance)."""
    from billing_core.invoices import review

    with seeded.session() as s:
        chosen = batch.select_invoices(s, FINANCE, plans=["study"])
        with transaction(s):
            job_id = batch.start_job(s, admin, chosen, "new footer").id
    process = review.launch_job(files_settings, admin, job_id, workers=1)
    assert process.wait(timeout=180) == 0
    with seeded.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.entity_type == "regeneration_job")))
    assert [(e.action, e.actor_email, e.actor_role) for e in events] == [
        ("invoices.regenerate.start", admin.email, Role.ADMIN),
        ("invoices.regenerate.finished", admin.email, Role.ADMIN),
    ]
