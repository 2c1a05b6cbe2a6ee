"""The bills deep check run in the background: stored with who and when, one at a time, from cron too."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from billing_core.cli.main import main
from billing_core.core.errors import BillingError, PermissionDenied
from billing_core.core.models import (
    AuditEvent,
    CheckStatus,
    Invoice,
    InvoiceCheck,
    InvoiceKind,
    Order,
    OrderStatus,
    utcnow,
)
from billing_core.demo import seeding as demo
from billing_core.invoices import deep_check as bills_check
from billing_core.invoices import review as bills
from billing_core.orders import lifecycle as orders
from tests.helpers import make_customer, make_order, paid


@pytest.fixture
def seeded(db, admin):
    demo.seed(db, orders=300, seed=12, actor=admin)
    return db


def test_a_run_stores_every_finding_with_who_started_it_and_when(seeded, finance, tmp_path):
    with seeded.session() as s:
        check_id = bills_check.start(s, finance)
    done = bills_check.run(seeded, finance, check_id, root=tmp_path)
    assert (done.status, done.done, done.total, done.started_by) == (CheckStatus.FINISHED, 5, 5, finance.email)
    assert done.finished_at >= done.started_at and [c.ok for c in done.checks] == [True] * 5
    with seeded.session() as s:
        assert bills_check.latest(s, finance) == done == bills_check.last_finished(s, finance)
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.entity_type == "invoice_check")) == "bills.check"


def test_a_second_run_is_refused_while_one_runs_and_a_lost_one_ends_as_failed(seeded, finance, tmp_path):
    with seeded.session() as s:
        first = bills_check.start(s, finance)
        with pytest.raises(BillingError, match="still running"):
            bills_check.start(s, finance)
        with s.begin():
            s.execute(update(InvoiceCheck).values(started_at=utcnow() - bills_check.STALE_AFTER * 2))
        second = bills_check.start(s, finance)
        assert s.get(InvoiceCheck, first).status == CheckStatus.FAILED and second != first


def test_the_deep_check_finds_bills_totals_that_drifted_from_their_documents(seeded, finance, tmp_path):
    with seeded.session() as s, s.begin():
        s.execute(update(Invoice).where(Invoice.kind == InvoiceKind.INVOICE, Invoice.id == 5).values(fee_cents=0))
    with seeded.session() as s:
        found = {c.name: c for c in bills.checks(s, finance, root=tmp_path)}
    assert found["Bills totals differ from the documents"].count == 1


def test_only_finance_runs_or_reads_it(seeded, support, analyst):
    with seeded.session() as s:
        for actor in (support, analyst):
            with pytest.raises(PermissionDenied):
                bills_check.start(s, actor)
            with pytest.raises(PermissionDenied):
                bills_check.latest(s, actor)


def test_the_cli_runs_a_check_and_exits_1_on_trouble(seeded, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BILLING_INVOICE_DIR", str(tmp_path))
    assert main(["invoices", "--database-url", seeded.url, "check"]) == 0
    assert "ok   Paid order without an invoice" in capsys.readouterr().out
    with seeded.session() as s, s.begin():
        s.execute(update(Invoice).where(Invoice.id == 1).values(total_cents=Invoice.total_cents + 1))
    assert (
        main(
            [
                "invoices",
                "--database-url",
                seeded.url,
                "check",
            ]
        )
        == 1
    )
    assert "FAIL Invoice total differs from its order" in capsys.readouterr().out
    with seeded.session() as s:
        assert s.scalar(select(InvoiceCheck.started_by).order_by(InvoiceCheck.id)).startswith("cli:")


def test_an_order_whose_parts_do_not_add_up_is_not_completed_without_an_invoice(db, admin, support, pricing, settings):
    with db.session() as s:
        order = make_order(s, admin, make_customer(s, admin), pricing, "100", "stripe")
        order_id, payment = order.id, paid(order)
        with s.begin():
            s.execute(update(Order).where(Order.id == order_id).values(fee_cents=Order.fee_cents + 1))
    with db.session() as s, pytest.raises(BillingError, match="do not add up"):
        orders.complete_order(s, support, order_id, settings=settings, reason="paid", payment=payment)
    with db.session() as s:
        assert s.get(Order, order_id).status == OrderStatus.PENDING
        assert s.scalar(select(Invoice.id).where(Invoice.order_id == order_id)) is None


def test_a_run_that_fails_unexpectedly_stores_the_type_not_the_message(seeded, finance, tmp_path, monkeypatch, caplog):
    """The stored error is shown on the Invoices page: a driver's message can quote a password."""
    secret = "postgresql://billing:hunter2@db.internal/billing"

    def broken(*args, **kwargs):
        raise RuntimeError(f"connection to {secret} failed")

    monkeypatch.setattr(bills, "checks", broken)
    with seeded.session() as s:
        check_id = bills_check.start(s, finance)
    with pytest.raises(RuntimeError):
        bills_check.run(seeded, finance, check_id, root=tmp_path)
    with seeded.session() as s:
        stored = s.get(InvoiceCheck, check_id)
        assert stored.status == CheckStatus.FAILED
        assert stored.error == (
            f"Unexpected error (RuntimeError) while running deep check {check_id}; the details are in the server log."
        )
    assert secret in caplog.text
