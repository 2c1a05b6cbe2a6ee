"""Demo data: deterministic, consistent with the rules the app relies on, and loaded only when asked."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from billing_core.access.roles import Actor, Role
from billing_core.cli import main as cli
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import SQLITE_CACHE_KIB, Database
from billing_core.core.errors import PermissionDenied, StateConflict
from billing_core.core.models import (
    COMPLETABLE,
    AuditEvent,
    Customer,
    CustomerMonthly,
    CustomerTotal,
    GatewayCheck,
    Invoice,
    InvoiceKind,
    InvoiceSeries,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    Refund,
    RevenueDaily,
    RevenueDailyCountry,
    RevenueState,
    SimulatedPayment,
    SimulatedStatus,
    utcnow,
)
from billing_core.demo import seeding as demo
from billing_core.demo.generation import SPAN_DAYS, end_bound
from billing_core.invoices.numbering import format_number, series_name
from billing_core.orders import lifecycle as orders
from billing_core.orders import refunds
from billing_core.payments.simulated import SimulatedGateway
from billing_core.pricing.catalog import PlanId, quote
from billing_core.reconcile.stuck import stuck_paid_page
from billing_core.revenue import rollup
from tests.helpers import DEMO_END

_DEFAULT_END = demo.default_end  # taken when the module is collected, before conftest pins it

ORDERS = 3_000
# Orders whose credits were granted (and so have a top-up entry and an invoice).
GRANTED = [OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED]
REFUNDED = [OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED]


@pytest.fixture
def seeded(db, admin):
    report = demo.seed(db, orders=ORDERS, seed=7, actor=admin)
    return db, report


def _orders_digest(database: Database) -> str:
    with database.session() as s:
        rows = s.execute(
            select(
                Order.public_id,
                Order.status,
                Order.amount_cents,
                Order.fee_cents,
                Order.credits,
                Order.method,
                Order.provider_ref,
                Order.created_at,
                Order.paid_at,
                Customer.public_id,
                Customer.email,
            )
            .join(Customer, Customer.id == Order.customer_id)
            .order_by(Order.id)
        ).all()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _documents_digest(database: Database) -> str:
    """Invoices, credit notes, refunds and the ledger, as the ORM reads them back."""
    with database.session() as s:
        rows = [
            s.execute(
                select(
                    Invoice.id,
                    Invoice.number,
                    Invoice.kind,
                    Invoice.order_id,
                    Invoice.refers_to_id,
                    Invoice.issued_at,
                    Invoice.subtotal_cents,
                    Invoice.fee_cents,
                    Invoice.total_cents,
                    Invoice.seller,
                    Invoice.buyer,
                    Invoice.lines,
                ).order_by(Invoice.id)
            ).all(),
            s.execute(select(Refund.__table__).order_by(Refund.id)).all(),
            s.execute(select(LedgerEntry.__table__).order_by(LedgerEntry.id)).all(),
            s.execute(select(SimulatedPayment.__table__).order_by(SimulatedPayment.ref)).all(),
        ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_same_seed_and_size_give_identical_orders(db, admin, tmp_path):
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.migrate()
    try:
        demo.seed(db, orders=1_000, seed=3, actor=admin)
        demo.seed(other, orders=1_000, seed=3, actor=admin)
        assert _orders_digest(db) == _orders_digest(other)
        assert _documents_digest(db) == _documents_digest(other)
    finally:
        other.dispose()


def _created_span(database: Database) -> tuple[datetime, datetime]:
    with database.session() as s:
        return s.execute(select(func.min(Order.created_at), func.max(Order.created_at))).one()


def test_the_data_ends_on_its_end_date_and_the_same_seed_and_end_give_the_same_rows(tmp_path, admin):
    end = date(2025, 3, 1)
    a, b, c = (Database(f"sqlite:///{tmp_path / f'{n}.db'}") for n in "abc")
    try:
        for database, day in ((a, end), (b, end), (c, end - timedelta(days=40))):
            database.migrate()
            report = demo.seed(database, orders=2_000, seed=4, actor=admin, end=day)
            assert report.end == day and f"up to {day}" in demo.describe(report)
        first, last = _created_span(a)
        bound = end_bound(end)
        assert bound == datetime(2025, 3, 2, tzinfo=UTC)
        assert bound - timedelta(days=2) < last < bound  # the newest orders are from the end date
        assert first >= bound - timedelta(days=SPAN_DAYS)
        assert _orders_digest(a) == _orders_digest(b)
        assert _orders_digest(a) != _orders_digest(c)
        assert _created_span(c)[1] < end_bound(end - timedelta(days=40))
    finally:
        for database in (a, b, c):
            database.dispose()


def test_without_an_end_date_the_data_ends_on_the_default_end(db, admin, monkeypatch):
    seeded_on = date(2024, 1, 10)
    monkeypatch.setattr(demo, "default_end", lambda: seeded_on)
    report = demo.seed(db, orders=1_000, seed=2, actor=admin)
    assert report.end == seeded_on
    with db.session() as s:
        last = s.scalar(select(func.max(Order.created_at)))
        assert s.scalar(select(func.max(Order.paid_at))) < end_bound(seeded_on)
    assert end_bound(seeded_on) - timedelta(days=2) < last < end_bound(seeded_on)


def test_demo_data_ends_yesterday_outside_the_tests():
    assert demo.default_end is not _DEFAULT_END  # conftest pins it for the tests
    assert _DEFAULT_END() == datetime.now(UTC).date() - timedelta(days=1)  # no order later than the clock


def test_a_different_seed_gives_different_orders(tmp_path, admin):
    a, b = (Database(f"sqlite:///{tmp_path / f'{n}.db'}") for n in "ab")
    for database, seed in ((a, 1), (b, 2)):
        database.migrate()
        demo.seed(database, orders=500, seed=seed, actor=admin)
    assert _orders_digest(a) != _orders_digest(b)
    a.dispose()
    b.dispose()


def test_report_counts_match_the_tables(seeded):
    db, report = seeded
    with db.session() as s:
        assert report.orders == s.scalar(select(func.count()).select_from(Order)) == ORDERS
        assert report.customers == s.scalar(select(func.count()).select_from(Customer))
        assert report.invoices == s.scalar(select(func.count()).where(Invoice.kind == InvoiceKind.INVOICE))
        assert report.credit_notes == s.scalar(select(func.count()).where(Invoice.kind == InvoiceKind.CREDIT_NOTE))
        assert report.refunds == report.credit_notes == s.scalar(select(func.count()).select_from(Refund)) > 0
        # The report counts the orders' top-ups and refunds; usage is seeded after (billing_core.credits.demo).
        assert report.ledger_entries == s.scalar(select(func.count()).where(LedgerEntry.kind != LedgerKind.USAGE))
        assert report.paid == s.scalar(select(func.count()).where(Order.status == OrderStatus.PAID))


def test_rows_read_back_through_the_orm_with_their_types(seeded):
    db, _ = seeded
    with db.session() as s:
        order = s.scalars(select(Order).where(Order.status == OrderStatus.PAID).limit(1)).one()
        assert order.created_at.tzinfo is UTC and order.paid_at.tzinfo is UTC
        assert isinstance(order.status, OrderStatus) and isinstance(order.plan, PlanId)
        assert order.sandbox is False and order.public_id.startswith("ord_") and len(order.public_id) == 20
        assert order.created_at < order.paid_at <= end_bound(DEMO_END)
        invoice = s.scalars(select(Invoice).where(Invoice.order_id == order.id)).one()
        assert invoice.lines[0]["amount_cents"] == order.amount_cents
        assert invoice.buyer["customer"].startswith("cus_")
        assert s.scalar(select(func.max(Order.created_at))) < end_bound(DEMO_END)
        assert s.scalar(select(func.count()).where(Order.sandbox.is_(True))) == 0


def test_each_paid_order_has_one_topup_and_one_invoice(seeded):
    db, _ = seeded
    with db.session() as s:
        paid = set(s.scalars(select(Order.id).where(Order.status.in_(GRANTED))))
        topups = Counter(s.scalars(select(LedgerEntry.order_id).where(LedgerEntry.kind == LedgerKind.TOPUP)))
        invoiced = Counter(s.scalars(select(Invoice.order_id).where(Invoice.kind == InvoiceKind.INVOICE)))
    assert set(topups) == paid and set(topups.values()) == {1}
    assert set(invoiced) == paid and set(invoiced.values()) == {1}


def test_invoice_numbers_are_gapless_per_year_in_payment_order(seeded):
    db, _ = seeded
    with db.session() as s:
        rows = s.execute(
            select(Invoice.series, Invoice.sequence, Invoice.number, Order.paid_at)
            .join(Order, Order.id == Invoice.order_id)
            .where(Invoice.kind == InvoiceKind.INVOICE)
            .order_by(Invoice.series, Invoice.sequence)
        ).all()
        next_numbers = {r.series: r.next_number for r in s.scalars(select(InvoiceSeries))}
    by_series = defaultdict(list)
    for row in rows:
        assert row.series == f"INV-{row.paid_at.year}"
        assert row.number == format_number(row.series, row.sequence)
        by_series[row.series].append(row)
    assert len(by_series) >= 2
    for series, items in by_series.items():
        assert [r.sequence for r in items] == list(range(1, len(items) + 1))
        assert [r.paid_at for r in items] == sorted(r.paid_at for r in items)
        assert next_numbers[series] == len(items) + 1


def test_balance_is_the_sum_of_ledger_and_refunds_take_credits_back(seeded):
    db, _ = seeded
    with db.session() as s:
        refunded = s.scalars(select(Order).where(Order.status == OrderStatus.REFUNDED)).all()
        assert refunded
        for order in refunded[:20]:
            entries = s.scalars(select(LedgerEntry).where(LedgerEntry.order_id == order.id)).all()
            assert sorted(e.credits for e in entries) == [-order.credits, order.credits]
            payment = s.get(SimulatedPayment, order.provider_ref)
            assert payment.refunded_cents == order.total_cents
        granted = s.scalar(select(func.sum(Order.credits)).where(Order.status.in_(GRANTED)))
        taken = s.scalar(select(func.sum(Refund.credits)))
        used = -s.scalar(select(func.sum(LedgerEntry.credits)).where(LedgerEntry.kind == LedgerKind.USAGE))
        assert s.scalar(select(func.sum(LedgerEntry.credits))) == granted - taken - used


def test_money_is_exactly_what_quote_gives(seeded, pricing):
    db, _ = seeded
    with db.session() as s:
        orders = s.scalars(select(Order).order_by(Order.id).limit(400)).all()
    for order in orders:
        q = quote(order.amount_cents, order.method, pricing)
        assert (order.fee_cents, order.credits, order.plan) == (q.fee_cents, q.credits, q.plan)
        assert order.total_cents == order.amount_cents + order.fee_cents
        assert order.pricing_version == pricing.version


def test_every_messy_case_is_present_and_the_gateway_tells_the_truth(seeded):
    db, _ = seeded
    with db.session() as s:
        rows = s.execute(
            select(Order.status, SimulatedPayment.status, Order.total_cents, SimulatedPayment.amount_cents).join(
                SimulatedPayment, SimulatedPayment.ref == Order.provider_ref
            )
        ).all()
        without_payment = s.scalar(
            select(func.count())
            .select_from(Order)
            .outerjoin(SimulatedPayment, SimulatedPayment.ref == Order.provider_ref)
            .where(Order.provider_ref.is_not(None), SimulatedPayment.ref.is_(None))
        )
    assert without_payment == 0
    cases = Counter((order_status, gateway) for order_status, gateway, _, _ in rows)
    assert all(total == charged for _, _, total, charged in rows)
    for case in [
        (OrderStatus.PENDING, SimulatedStatus.SUCCEEDED),
        (OrderStatus.PENDING, SimulatedStatus.REQUIRES_PAYMENT),
        (OrderStatus.FAILED, SimulatedStatus.DECLINED),
        (OrderStatus.EXPIRED, SimulatedStatus.REQUIRES_PAYMENT),
        (OrderStatus.EXPIRED, SimulatedStatus.SUCCEEDED),
        (OrderStatus.CANCELLED, SimulatedStatus.CANCELED),
        (OrderStatus.REFUNDED, SimulatedStatus.SUCCEEDED),
        (OrderStatus.PARTIALLY_REFUNDED, SimulatedStatus.SUCCEEDED),
    ]:
        assert cases[case] > 0, case
    assert cases[(OrderStatus.PAID, SimulatedStatus.SUCCEEDED)] > 0.8 * ORDERS


def test_support_checked_every_open_order_and_the_stuck_view_shows_the_lost_webhooks(seeded, support):
    db, _ = seeded
    with db.session() as s:
        rows = s.execute(
            select(Order, GatewayCheck, SimulatedPayment)
            .join(GatewayCheck, GatewayCheck.order_id == Order.id)
            .join(SimulatedPayment, SimulatedPayment.ref == Order.provider_ref)
        ).all()
        open_with_ref = s.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.status.in_(COMPLETABLE), Order.provider_ref.is_not(None))
        )
        unchecked_closed = s.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.status.not_in(COMPLETABLE), Order.gateway_state.is_not(None))
        )
        stuck = stuck_paid_page(s, support, size=500)
    assert len(rows) == open_with_ref > 0 and unchecked_closed == 0  # each open order once, nothing else
    paid_there = set()
    for order, check, payment in rows:
        assert check.ref == order.provider_ref and check.amount_cents == payment.amount_cents == order.total_cents
        assert (check.state == "succeeded") == (payment.status is SimulatedStatus.SUCCEEDED)
        assert (order.gateway_state, order.gateway_checked_at) == (check.state, check.checked_at)
        assert order.created_at < check.checked_at <= end_bound(DEMO_END)
        if payment.status is SimulatedStatus.SUCCEEDED:
            assert check.checked_at >= payment.created_at
            paid_there.add(order.public_id)
    assert paid_there and len(paid_there) < 500
    shown = [row.public_id for row in stuck.rows]
    assert set(shown) == paid_there and stuck.count.value == len(paid_there)
    created = [row.created_at for row in stuck.rows]
    assert created == sorted(created)  # oldest first


def test_refunded_orders_are_recorded_as_a_live_refund_would_be(seeded):
    db, _ = seeded
    with db.session() as s:
        orders_by_id = {o.id: o for o in s.scalars(select(Order).where(Order.status.in_(REFUNDED)))}
        refunds_by_order = defaultdict(list)
        for refund in s.scalars(select(Refund)):
            refunds_by_order[refund.order_id].append(refund)
        entries = defaultdict(list)
        for entry in s.scalars(select(LedgerEntry).where(LedgerEntry.order_id.in_(list(orders_by_id)))):
            entries[entry.order_id].append(entry)
        gateway = {p.ref: p for p in s.scalars(select(SimulatedPayment))}
        refunded_at_gateway = {ref: p.refunded_cents for ref, p in gateway.items() if p.refunded_cents}
    assert set(refunds_by_order) == set(orders_by_id)
    statuses = Counter(o.status for o in orders_by_id.values())
    assert statuses[OrderStatus.REFUNDED] > 0 and statuses[OrderStatus.PARTIALLY_REFUNDED] > 0
    for order_id, order in orders_by_id.items():
        (refund,) = refunds_by_order[order_id]
        assert refund.provider_ref == order.provider_ref is not None
        assert order.paid_at < refund.created_at < end_bound(DEMO_END)
        assert refund.override is False and refund.reason and refund.created_by.endswith("@company.test")
        topup = [e for e in entries[order_id] if e.kind is LedgerKind.TOPUP]
        taken = [e for e in entries[order_id] if e.kind is LedgerKind.REFUND]
        assert [e.credits for e in topup] == [order.credits] and [e.refund_id for e in topup] == [None]
        assert [(e.refund_id, e.credits, e.created_at) for e in taken] == [
            (refund.id, -refund.credits, refund.created_at)
        ]
        assert taken[0].created_by == refund.created_by and taken[0].customer_id == order.customer_id
        assert gateway[order.provider_ref].refunded_cents == refund.amount_cents
        assert gateway[order.provider_ref].status is SimulatedStatus.SUCCEEDED
        if order.status is OrderStatus.REFUNDED:
            assert (refund.amount_cents, refund.credits) == (order.total_cents, order.credits)
            assert sum(e.credits for e in entries[order_id]) == 0
        else:
            assert 0 < refund.amount_cents < order.paid_amount_cents
            share = money.to_decimal(order.credits) * refund.amount_cents / order.paid_amount_cents
            assert refund.credits == money.from_decimal(share)
            assert sum(e.credits for e in entries[order_id]) == order.credits - refund.credits
    # The gateway's book: money went back exactly for the refunded orders, as much as was refunded.
    assert refunded_at_gateway == {
        o.provider_ref: sum(r.amount_cents for r in refunds_by_order[o.id]) for o in orders_by_id.values()
    }


def test_credit_notes_are_gapless_and_credit_the_orders_invoice(seeded, settings):
    db, report = seeded
    with db.session() as s:
        notes = s.scalars(
            select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE).order_by(Invoice.series, Invoice.sequence)
        ).all()
        invoices = {i.id: i for i in s.scalars(select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE))}
        refund_of_note = {r.credit_note_id: r for r in s.scalars(select(Refund))}
        orders_by_id = {o.id: o for o in s.scalars(select(Order).where(Order.status.in_(REFUNDED)))}
        next_numbers = {r.series: r.next_number for r in s.scalars(select(InvoiceSeries))}
    assert len(notes) == report.credit_notes == len(refund_of_note) > 0
    by_series = defaultdict(list)
    for note in notes:
        refund = refund_of_note[note.id]
        order = orders_by_id[note.order_id]
        invoice = invoices[note.refers_to_id]
        assert refund.order_id == invoice.order_id == note.order_id
        assert note.series == series_name(settings.credit_note_series, note.issued_at) == f"CN-{note.issued_at.year}"
        assert note.number == format_number(note.series, note.sequence)
        assert note.issued_at == refund.created_at and note.issued_at > invoice.issued_at
        # Exactly what invoices.issuing._issue_credit_note writes.
        subtotal = money.from_decimal(money.to_decimal(refund.amount_cents) * order.amount_cents / order.total_cents)
        assert note.total_cents == -refund.amount_cents < 0
        assert (note.subtotal_cents, note.fee_cents, note.tax_cents) == (-subtotal, subtotal - refund.amount_cents, 0)
        assert (note.seller, note.buyer, note.currency, note.sandbox) == (
            invoice.seller,
            invoice.buyer,
            invoice.currency,
            False,
        )
        assert note.template_version == invoice.template_version
        assert note.lines == [
            {
                "description": f"Refund of invoice {invoice.number}",
                "quantity": "1",
                "unit": "refund",
                "amount_cents": -refund.amount_cents,
            }
        ]
        by_series[note.series].append(note)
    for series, items in by_series.items():
        assert [n.sequence for n in items] == list(range(1, len(items) + 1))
        assert [n.issued_at for n in items] == sorted(n.issued_at for n in items)
        assert next_numbers[series] == len(items) + 1
    # Ids follow issue time across invoices and credit notes, as they would have live.
    issued = [i.issued_at for i in sorted([*invoices.values(), *notes], key=lambda i: i.id)]
    assert issued == sorted(issued)


def test_every_customer_balance_is_the_sum_of_their_ledger(seeded):
    db, _ = seeded
    with db.session() as s:
        ledger = dict(
            s.execute(
                select(LedgerEntry.customer_id, func.sum(LedgerEntry.credits))
                .where(LedgerEntry.kind != LedgerKind.USAGE)
                .group_by(LedgerEntry.customer_id)
            ).all()
        )
        balances = dict(
            s.execute(
                select(LedgerEntry.customer_id, func.sum(LedgerEntry.credits)).group_by(LedgerEntry.customer_id)
            ).all()
        )
        granted = dict(
            s.execute(
                select(Order.customer_id, func.sum(Order.credits))
                .where(Order.status.in_(GRANTED))
                .group_by(Order.customer_id)
            ).all()
        )
        taken = dict(
            s.execute(
                select(Order.customer_id, func.sum(Refund.credits))
                .join(Order, Order.id == Refund.order_id)
                .group_by(Order.customer_id)
            ).all()
        )
        assert ledger == {c: credits - taken.get(c, 0) for c, credits in granted.items()}
        assert all(balance >= 0 for balance in balances.values())  # seeded usage never overdraws
        for customer_id in sorted(taken)[:10]:
            assert orders._customer_balance(s, customer_id) == balances[customer_id]


def test_sqlite_seed_keeps_every_foreign_key(seeded):
    db, _ = seeded
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL checks its foreign keys before the commit (next tests)")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # The load's 512 MiB cache is given back: the connection returns to the pool as every other is.
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB


def _next_number(session, series: str) -> str:
    taken = session.scalar(select(func.count()).where(Invoice.series == series))
    stored = session.scalar(select(InvoiceSeries.next_number).where(InvoiceSeries.series == series))
    assert stored in (None, taken + 1)
    return format_number(series, taken + 1)


def test_live_refunds_and_completions_continue_the_seeded_numbering(seeded, settings, finance, support):
    db, _ = seeded
    gateway = SimulatedGateway(db)
    with db.session() as s:
        paid = s.scalars(select(Order).where(Order.status == OrderStatus.PAID).order_by(Order.id.desc()).limit(1)).one()
        partial = s.scalars(select(Order).where(Order.status == OrderStatus.PARTIALLY_REFUNDED).limit(1)).one()
        lost = s.scalars(
            select(Order)
            .join(SimulatedPayment, SimulatedPayment.ref == Order.provider_ref)
            .where(Order.status == OrderStatus.PENDING, SimulatedPayment.status == SimulatedStatus.SUCCEEDED)
            .limit(1)
        ).one()
        cn_series = series_name(settings.credit_note_series, utcnow())
        inv_series = series_name(settings.invoice_series, utcnow())
        expected = _next_number(s, cn_series)
        balance = orders._customer_balance(s, paid.customer_id)

    with db.session() as s:
        done = refunds.refund_order(s, finance, paid.id, gateway, settings=settings, reason="customer asked")
    assert done.credit_note_number == expected
    assert done.order_status is OrderStatus.REFUNDED and done.balance == balance - paid.credits

    # The rest of a seeded partial refund: the live code sees what the seed recorded.
    with db.session() as s:
        expected = _next_number(s, cn_series)
        already = s.execute(select(Refund.amount_cents, Refund.credits).where(Refund.order_id == partial.id)).one()
        rest = refunds.refund_order(s, finance, partial.id, gateway, settings=settings, reason="the rest")
    assert rest.credit_note_number == expected
    assert rest.amount_cents == partial.total_cents - already.amount_cents
    assert rest.credits_taken_back == partial.credits - already.credits
    assert rest.order_status is OrderStatus.REFUNDED

    with db.session() as s:
        expected = _next_number(s, inv_series)
        completion = orders.complete_order(
            s,
            support,
            lost.id,
            settings=settings,
            reason="lost webhook",
            payment=gateway.fetch_status(lost.provider_ref),
        )
    assert completion.invoice_number == expected

    with db.session() as s:
        for order_id in (paid.id, partial.id):
            assert s.scalar(select(func.sum(LedgerEntry.credits)).where(LedgerEntry.order_id == order_id)) == 0
            assert (
                s.get(SimulatedPayment, s.get(Order, order_id).provider_ref).refunded_cents
                == s.get(Order, order_id).total_cents
            )
        for series in (cn_series, inv_series):
            numbers = list(s.scalars(select(Invoice.sequence).where(Invoice.series == series)))
            assert sorted(numbers) == list(range(1, len(numbers) + 1))


def test_customers_are_named_in_eight_scripts_with_unique_lowercase_emails(seeded):
    db, _ = seeded
    with db.session() as s:
        customers = s.scalars(select(Customer)).all()
    names = " ".join(c.name for c in customers)
    probes = {
        "accented": "éèüöøåçñłó",
        "cyrillic": "абвгдежзиклмнопрстуя",
        "greek": "αβγδεζηικλμνξοπρστυωάέίόώ",
        "chinese": "王李张刘陈杨黄赵",
        "japanese": "佐藤鈴木高橋田中渡辺山本",
        "korean": "김이박최정강",
        "arabic": "ابتثجحخدرسعفقلمنهوي",
    }
    for script, letters in probes.items():
        assert any(ch in names.lower() for ch in letters), script
    assert any(c.name.isascii() for c in customers)
    emails = [c.email for c in customers]
    assert len(set(emails)) == len(emails) and all(e == e.lower() for e in emails)
    taxed = {c.country for c in customers if c.tax_id}
    assert {"DE", "JP", "CN"} <= taxed or len(taxed) >= 5
    assert all(c.address for c in customers)


def test_pro_leads_revenue_and_weekdays_are_busier(seeded):
    db, _ = seeded
    with db.session() as s:
        revenue = dict(
            s.execute(
                select(Order.plan, func.sum(Order.amount_cents))
                .where(Order.status == OrderStatus.PAID)
                .group_by(Order.plan)
            ).all()
        )
        created = s.scalars(select(Order.created_at)).all()
        methods = set(s.scalars(select(Order.method).distinct()))
    assert max(revenue, key=revenue.get) is PlanId.PRO
    assert len(methods) == 3
    per_day = Counter(c.date() for c in created)
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert sum(weekday) / len(weekday) > sum(weekend) / len(weekend)
    first_year = sum(1 for c in created if c < datetime(2025, 11, 27, tzinfo=UTC))
    assert ORDERS - first_year > first_year  # growth


def test_seed_writes_one_audit_event(seeded, admin):
    db, report = seeded
    with db.session() as s:
        events = s.scalars(select(AuditEvent)).all()
    assert [(e.action, e.entity_type, e.actor_email) for e in events] == [("demo.seed", "database", admin.email)]
    assert events[0].after["orders"] == report.orders


def test_seed_refuses_a_database_with_orders_and_changes_nothing(seeded, admin):
    db, _ = seeded
    before = _orders_digest(db)
    with pytest.raises(StateConflict, match="already has 3,000 orders"):
        demo.seed(db, orders=100, seed=9, actor=admin)
    assert _orders_digest(db) == before


def test_replace_deletes_existing_data_first(seeded, admin):
    db, _ = seeded
    report = demo.seed(db, orders=200, seed=9, actor=admin, replace=True)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == report.orders == 200
        assert s.scalar(select(func.min(Order.id))) == 1


def test_a_seed_on_postgresql_leaves_statistics_on_every_table_it_fills(pg_database, admin):
    """Without them the planner guesses: at 10,000,000 orders the Credits page read customer_credit_monthly
    with a parallel scan (0.7 s) instead of its (customer_id, month) index."""
    from sqlalchemy import text

    demo.seed(pg_database, orders=300, actor=admin, replace=True, end=DEMO_END)
    with pg_database.engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        filled = [t for t in tables if conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() >= 100]
        never = (
            conn.execute(
                text("SELECT relname FROM pg_class WHERE relname = ANY(:names) AND reltuples < 0 ORDER BY relname"),
                {"names": filled},
            )
            .scalars()
            .all()
        )
    assert "customer_credit_monthly" in filled and "usage_lines" in filled
    assert never == []


def test_a_seed_on_postgresql_leaves_the_tables_vacuumed(pg_database, admin):
    """Until VACUUM sets a table's visibility map an index-only scan reads every row's page from the
    table as well: the page of a last-name search's orders took 30 ms at 1,000,000 orders instead of 4."""
    from sqlalchemy import text

    demo.seed(pg_database, orders=2000, actor=admin, replace=True, end=DEMO_END)
    with pg_database.engine.connect() as conn:
        pages = dict(
            conn.execute(
                text("SELECT relname, relallvisible::float / relpages FROM pg_class WHERE relname = ANY(:names)"),
                {"names": ["orders", "customers", "invoices", "ledger_entries"]},
            ).all()
        )
    assert len(pages) == 4 and all(share == 1 for share in pages.values()), pages


def _foreign_keys(database: Database) -> list[tuple]:
    with database.engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE contype = 'f' ORDER BY 1, 2"
        ).all()


def test_a_seed_on_postgresql_keeps_every_foreign_key_and_checks_it(pg_database, admin):
    """The seed drops the foreign keys while it loads and adds them back, checked, before it commits."""
    before = _foreign_keys(pg_database)
    demo.seed(pg_database, orders=300, actor=admin, replace=True, end=DEMO_END)
    after = _foreign_keys(pg_database)
    assert after == before and len(after) > 15 and all(validated for *_, validated in after)
    assert {"fk_orders_customer_id_customers", "fk_ledger_entries_order_id_orders"} <= {k[1] for k in after}


def test_every_table_whose_keys_the_seed_drops_is_wiped_by_name():
    """With its keys dropped a table is no longer reached by TRUNCATE's CASCADE: the wipe must name it."""
    from billing_core.demo import bulk_load

    assert set(demo._FOREIGN_KEY_TABLES) <= set(bulk_load._WIPE_ORDER)


def test_a_seed_on_postgresql_that_breaks_a_reference_commits_nothing(pg_database, admin, monkeypatch):
    demo.seed(pg_database, orders=200, seed=1, actor=admin, replace=True, end=DEMO_END)
    orders_before, keys_before = _orders_digest(pg_database), _foreign_keys(pg_database)
    finish = demo._finish

    def dangling(conn, *args):
        finish(conn, *args)
        conn.exec_driver_sql("UPDATE orders SET customer_id = 999999999 WHERE id = (SELECT min(id) FROM orders)")

    monkeypatch.setattr(demo, "_finish", dangling)
    with pytest.raises(IntegrityError, match="fk_orders_customer_id_customers"):
        demo.seed(pg_database, orders=300, seed=2, actor=admin, replace=True, end=DEMO_END)
    assert _orders_digest(pg_database) == orders_before
    assert _foreign_keys(pg_database) == keys_before


def test_only_admins_may_seed(db, analyst):
    with pytest.raises(PermissionDenied):
        demo.seed(db, orders=10, actor=analyst)


def test_setup_seeds_only_once(db, admin):
    first = demo.setup(db, actor=admin, orders=300)
    assert first is not None and first.orders == 300
    assert demo.setup(db, actor=admin, orders=300) is None
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 300


def test_progress_reaches_the_total(db, admin):
    calls = []
    demo.seed(db, orders=200, actor=admin, progress=lambda done, total: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1]


def test_cli_seed_exit_codes(tmp_path, sqlite_template, capsys):
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    assert cli.main(["seed", "--orders", "300", "--seed", "5", "--database-url", url]) == 0
    assert "seeded 300 orders" in capsys.readouterr().out
    assert cli.main(["seed", "--orders", "300", "--database-url", url]) == 2
    assert "already has 300 orders" in capsys.readouterr().err
    assert cli.main(["seed", "--orders", "100", "--replace", "--database-url", url]) == 0
    assert cli.main(["setup", "--database-url", url]) == 0
    assert "already has data" in capsys.readouterr().out


def test_cli_seed_takes_the_end_date(tmp_path, sqlite_template, capsys):
    path = tmp_path / "ends.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    assert cli.main(["seed", "--orders", "500", "--end-date", "2025-06-30", "--database-url", url]) == 0
    assert "up to 2025-06-30" in capsys.readouterr().out
    database = Database(url)
    try:
        assert _created_span(database)[1] < datetime(2025, 7, 1, tzinfo=UTC)
    finally:
        database.dispose()
    with pytest.raises(SystemExit):
        cli.main(["seed", "--orders", "5", "--end-date", "30/06/2025", "--database-url", url])
    assert "not a date" in capsys.readouterr().err


def test_cli_setup_seeds_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli.main(["setup", "--database-url", url]) == 0
    database = Database(url)
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == demo.FIRST_RUN_ORDERS
    database.dispose()


@pytest.mark.slow
def test_a_large_seed_on_sqlite_is_complete(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'large.db'}")
    database.migrate()
    report = demo.seed(database, orders=200_000, actor=Actor("a@company.test", Role.ADMIN))
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 200_000
        assert s.scalar(select(func.count()).select_from(Invoice)) == report.invoices + report.credit_notes
        assert s.scalar(select(func.count()).select_from(Refund)) == report.refunds > 0
    database.dispose()


def _rollup_rows(database: Database) -> dict[str, list[tuple]]:
    with database.session() as s:
        return {
            model.__tablename__: sorted(tuple(row) for row in s.execute(select(model.__table__)).all())
            for model in (RevenueDaily, RevenueDailyCountry, CustomerMonthly, CustomerTotal)
        }


def test_seed_leaves_the_rollup_equal_to_a_rebuild(seeded, settings, admin):
    db, _ = seeded
    written = _rollup_rows(db)
    assert all(written.values())
    assert rollup.ensure_built(db, admin, settings.report_timezones) is None  # built: the page won't rebuild it
    rollup.rebuild(db, admin)
    assert _rollup_rows(db) == written


def test_the_rollup_is_seeded_for_the_configured_time_zones(db, admin, settings):
    # Half-hour and 45-minute offsets, and a half-hour daylight-saving shift (Lord Howe).
    zones = ("Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu")
    settings = dataclasses.replace(settings, report_timezones=zones)
    demo.seed(db, orders=2_000, seed=5, actor=admin, settings=settings)
    written = _rollup_rows(db)
    assert {row[0] for row in written["revenue_daily"]} == set(zones)
    assert rollup.ensure_built(db, admin, zones) is None
    rollup.rebuild(db, admin)
    assert _rollup_rows(db) == written


def test_replace_rewrites_the_rollup_and_moves_its_version_on(seeded, admin):
    db, _ = seeded
    with db.session() as s:
        before = rollup.version(s)
    demo.seed(db, orders=400, seed=9, actor=admin, replace=True)
    written = _rollup_rows(db)
    with db.session() as s:
        assert rollup.version(s) > before
        state = s.get(RevenueState, 1)
        assert state.built and state.timezones == ",".join(Settings().report_timezones)
        assert sum(r.created_count for r in s.scalars(select(RevenueDaily)).all()) == 400 * len(
            state.timezones.split(",")
        )
    rollup.rebuild(db, admin)
    assert _rollup_rows(db) == written


def test_a_failed_seed_leaves_orders_and_rollup_as_they_were(seeded, admin, monkeypatch):
    db, _ = seeded
    orders_before, rollup_before = _orders_digest(db), _rollup_rows(db)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "rollup_tables", broken)
    with pytest.raises(RuntimeError):
        demo.seed(db, orders=300, seed=2, actor=admin, replace=True)
    assert _orders_digest(db) == orders_before
    assert _rollup_rows(db) == rollup_before
