"""Bills totals (billing_core.invoices.totals): kept by issuing, written by the seed, rebuilt, read by the review."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, update

from billing_core.core.db import MIGRATIONS, migrate, transaction
from billing_core.core.errors import PermissionDenied
from billing_core.core.models import BillsDaily, Invoice, InvoiceKind, Order, utcnow
from billing_core.demo import seeding as demo
from billing_core.invoices import review as bills
from billing_core.invoices import totals
from billing_core.invoices.issuing import _issue_credit_note
from billing_core.invoices.review import DocumentFilters
from billing_core.orders import lifecycle as orders
from billing_core.revenue import rollup
from tests.helpers import make_customer, make_order, paid


def kept(db) -> list[tuple]:
    with db.session() as s:
        return sorted(tuple(r) for r in s.execute(select(BillsDaily.__table__)).all())


def rebuilt(db) -> list[tuple]:
    with db.engine.begin() as conn:
        totals.rebuild(conn)
    return kept(db)


def test_issuing_invoices_and_credit_notes_keeps_the_totals_a_rebuild_computes(
    db, admin, support, analyst, pricing, settings
):
    with db.session() as s:
        for email, amount, method in (("a@x.test", "500", "stripe"), ("b@x.test", "20", "alipay")):
            order = make_order(s, admin, make_customer(s, admin, email=email), pricing, amount, method)
            orders.complete_order(s, support, order.id, settings=settings, reason="paid", payment=paid(order))
        sandbox = make_customer(s, admin, email="s@sandbox.test", sandbox=True)
        trial = orders.create_order(s, admin, customer_id=sandbox.id, amount="100", method="stripe", pricing=pricing)
        orders.complete_order(s, analyst, trial.id, settings=settings, reason="sandbox", payment=paid(trial))
    with db.session() as s, transaction(s):  # what a refund issues, in its own transaction
        invoice = orders._invoice_for(s, order.id)
        order = s.get(Order, order.id)
        _issue_credit_note(s, invoice, order, settings, amount_cents=500, issued_at=utcnow())
    by_hand = kept(db)
    assert sum(r[6] for r in by_hand) == 4  # three invoices and a credit note
    assert any(r[3] == InvoiceKind.CREDIT_NOTE.value and r[10] == -500 for r in by_hand)
    assert any(r[5] for r in by_hand)  # the sandbox invoice, kept apart
    assert rebuilt(db) == by_hand


def test_the_seed_writes_the_totals_a_rebuild_computes(db, admin):
    demo.seed(db, orders=2000, seed=5, actor=admin)
    seeded = kept(db)
    assert len(seeded) > 100
    assert rebuilt(db) == seeded


def test_the_rollup_rebuild_command_rebuilds_the_bills_totals(db, admin):
    demo.seed(db, orders=500, seed=6, actor=admin)
    seeded = kept(db)
    with db.session() as s, s.begin():
        s.execute(update(BillsDaily).values(documents=BillsDaily.documents + 1))
    done = rollup.rebuild(db, admin)
    assert done.bills_rows == len(seeded) and kept(db) == seeded


def test_the_migration_fills_the_totals_from_the_documents(db, admin):
    demo.seed(db, orders=1500, seed=2, actor=admin)
    seeded = kept(db)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    assert "bills_daily" not in inspect(db.engine).get_table_names()
    migrate(db.engine)
    assert kept(db) == seeded


def test_the_summary_of_a_date_plan_method_and_kind_filter_comes_from_the_totals(db, admin, finance):
    demo.seed(db, orders=1200, seed=8, actor=admin)
    with db.session() as s:
        first = s.scalar(select(Invoice.issued_at).order_by(Invoice.issued_at).offset(300).limit(1)).date()
        for filters in (
            DocumentFilters(),
            DocumentFilters(since=first, plans=("pro", "custom"), methods=("alipay", "stripe")),
            DocumentFilters(until=first, kind=InvoiceKind.CREDIT_NOTE),
        ):
            summary = bills.summary(s, finance, filters)
            assert bills.answered_by_totals(filters) and not summary.capped
            assert summary.documents == bills.count_documents(s, finance, filters) > 0
            assert summary.rows == bills.totals(s, finance, filters)
            # The same figures the documents themselves add up to.
            listed = list(bills.iter_documents(s, finance, filters))
            assert sum(r.total_cents for r in summary.rows) == sum(r.total_cents for r in listed)


def test_a_filter_the_totals_cannot_answer_is_counted_up_to_the_cap(db, admin, finance):
    demo.seed(db, orders=600, seed=9, actor=admin)
    with db.session() as s:
        many = DocumentFilters(country="DE")
        count = bills.count_documents(s, finance, many)
        assert count > 20 and not bills.answered_by_totals(many)
        capped = bills.summary(s, finance, many, cap=20)
        assert (capped.documents, capped.capped, capped.rows, capped.label) == (20, True, None, "20+")
        exact = bills.summary(s, finance, many, cap=count)
        assert (exact.documents, exact.capped, exact.label) == (count, False, f"{count:,}")
        assert sum(r.documents for r in exact.rows) == count


def test_the_summary_is_for_finance(db, support, analyst):
    with db.session() as s:
        for actor in (support, analyst):
            try:
                bills.summary(s, actor, DocumentFilters())
            except PermissionDenied:
                continue
            raise AssertionError(f"{actor.role} read the bills summary")
