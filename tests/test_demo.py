"""Demo data: deterministic, consistent with the rules the app relies on, and loaded only when asked."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from billing_core import cli, demo
from billing_core.access import Actor, Role
from billing_core.db import Database
from billing_core.errors import PermissionDenied, StateConflict
from billing_core.invoices.numbering import format_number
from billing_core.models import (
    AuditEvent,
    Customer,
    Invoice,
    InvoiceSeries,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    SimulatedPayment,
    SimulatedStatus,
)
from billing_core.pricing import PlanId, quote

ORDERS = 3_000


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


def test_same_seed_and_size_give_identical_orders(db, admin, tmp_path):
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.migrate()
    try:
        demo.seed(db, orders=1_000, seed=3, actor=admin)
        demo.seed(other, orders=1_000, seed=3, actor=admin)
        assert _orders_digest(db) == _orders_digest(other)
    finally:
        other.dispose()


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
        assert report.invoices == s.scalar(select(func.count()).select_from(Invoice))
        assert report.ledger_entries == s.scalar(select(func.count()).select_from(LedgerEntry))
        assert report.paid == s.scalar(select(func.count()).where(Order.status == OrderStatus.PAID))


def test_rows_read_back_through_the_orm_with_their_types(seeded):
    db, _ = seeded
    with db.session() as s:
        order = s.scalars(select(Order).where(Order.status == OrderStatus.PAID).limit(1)).one()
        assert order.created_at.tzinfo is UTC and order.paid_at.tzinfo is UTC
        assert isinstance(order.status, OrderStatus) and isinstance(order.plan, PlanId)
        assert order.sandbox is False and order.public_id.startswith("ord_") and len(order.public_id) == 20
        assert order.created_at < order.paid_at <= demo.DATA_END
        invoice = s.scalars(select(Invoice).where(Invoice.order_id == order.id)).one()
        assert invoice.lines[0]["amount_cents"] == order.amount_cents
        assert invoice.buyer["customer"].startswith("cus_")
        assert s.scalar(select(func.max(Order.created_at))) < demo.DATA_END
        assert s.scalar(select(func.count()).where(Order.sandbox.is_(True))) == 0


def test_each_paid_order_has_one_topup_and_one_invoice(seeded):
    db, _ = seeded
    with db.session() as s:
        paid = set(s.scalars(select(Order.id).where(Order.status.in_([OrderStatus.PAID, OrderStatus.REFUNDED]))))
        topups = Counter(s.scalars(select(LedgerEntry.order_id).where(LedgerEntry.kind == LedgerKind.TOPUP)))
        invoiced = Counter(s.scalars(select(Invoice.order_id)))
    assert set(topups) == paid and set(topups.values()) == {1}
    assert set(invoiced) == paid and set(invoiced.values()) == {1}


def test_invoice_numbers_are_gapless_per_year_in_payment_order(seeded):
    db, _ = seeded
    with db.session() as s:
        rows = s.execute(
            select(Invoice.series, Invoice.sequence, Invoice.number, Order.paid_at)
            .join(Order, Order.id == Invoice.order_id)
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
        granted = s.scalar(
            select(func.sum(Order.credits)).where(Order.status.in_([OrderStatus.PAID, OrderStatus.REFUNDED]))
        )
        taken = s.scalar(select(func.sum(Order.credits)).where(Order.status == OrderStatus.REFUNDED))
        assert s.scalar(select(func.sum(LedgerEntry.credits))) == granted - taken


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
    ]:
        assert cases[case] > 0, case
    assert cases[(OrderStatus.PAID, SimulatedStatus.SUCCEEDED)] > 0.8 * ORDERS


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
        assert s.scalar(select(func.count()).select_from(Invoice)) == report.invoices
    database.dispose()
