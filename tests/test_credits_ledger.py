"""Paid and promotional credits apart: every entry moves its pool's balance and the monthly rollup in the
same transaction; refunds take back paid credits only; the migration makes every older entry paid."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select

from billing_core.core.db import MIGRATIONS, migrate, transaction
from billing_core.core.errors import StateConflict
from billing_core.core.models import (
    CreditBalance,
    CreditMonthly,
    CreditPool,
    CustomerCreditMonthly,
    LedgerEntry,
    LedgerKind,
    Order,
)
from billing_core.credits import ledger
from billing_core.demo import seeding as demo
from billing_core.orders import refunds
from billing_core.payments.simulated import SimulatedGateway
from billing_core.revenue import rollup
from tests.test_refunds import paid_order

ROLLUPS = (CreditBalance, CreditMonthly, CustomerCreditMonthly)


def rollup_rows(db) -> dict[str, list[tuple]]:
    """The credit rollups; a balance row of zeros (left by a lock taken on a customer with no entries) is no row."""
    with db.session() as s:
        rows = {m.__tablename__: sorted(tuple(r) for r in s.execute(select(m.__table__)).all()) for m in ROLLUPS}
    rows["credit_balances"] = [r for r in rows["credit_balances"] if any(r[1:])]
    return rows


def ledger_sums(db) -> dict[tuple[int, str], tuple[int, int]]:
    with db.session() as s:
        rows = s.execute(
            select(
                LedgerEntry.customer_id,
                LedgerEntry.pool,
                func.sum(LedgerEntry.credits),
                func.sum(LedgerEntry.value_cents),
            ).group_by(LedgerEntry.customer_id, LedgerEntry.pool)
        ).all()
    return {(c, CreditPool(p).value): (int(cr), int(v)) for c, p, cr, v in rows}


def post(db, customer_id, kind, pool, credits, value=0, by="test@company.test"):
    with db.session() as s, transaction(s):
        ledger._post(s, [ledger._entry(customer_id, kind, pool, credits, value, by=by)])


@pytest.fixture
def gateway(db):
    return SimulatedGateway(db)


def test_a_topup_is_paid_credits_worth_the_amount_before_fees(db, admin, support, pricing, settings, gateway):
    order = paid_order(db, admin, support, pricing, settings, gateway, amount="100")
    with db.session() as s:
        balance = ledger._balance(s, order.customer_id)
        entry = s.scalar(select(LedgerEntry).where(LedgerEntry.order_id == order.id))
    assert (entry.pool, entry.credits, entry.value_cents) == (CreditPool.PAID, order.credits, order.amount_cents)
    assert balance == ledger.Balance(order.credits, 0, order.amount_cents)
    assert order.total_cents > order.amount_cents  # the fee is not a credit's worth


def test_usage_draws_promotional_credits_first_and_paid_ones_at_their_price(
    db, admin, support, pricing, settings, gateway
):
    order = paid_order(db, admin, support, pricing, settings, gateway, amount="100")
    post(db, order.customer_id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 30_00)
    with db.session() as s:
        balance = ledger._balance(s, order.customer_id)
    draw = ledger._draw(balance, 50_00)
    assert (draw.promotional, draw.paid, draw.paid_value_cents) == (30_00, 20_00, 20_00)
    assert ledger._draw(balance, 50_00, ledger.PAID_FIRST).promotional == 0
    overdraw = ledger._draw(balance, 200_00)
    assert (overdraw.promotional, overdraw.paid, overdraw.paid_value_cents) == (30_00, 170_00, 100_00)


def test_a_refund_takes_back_paid_credits_only(db, admin, support, finance, pricing, settings, gateway):
    order = paid_order(db, admin, support, pricing, settings, gateway, amount="500")
    post(db, order.customer_id, LedgerKind.USAGE, CreditPool.PAID, -300_00, -300_00)
    post(db, order.customer_id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 400_00)
    with db.session() as s:
        plan = refunds.plan_refund(s, finance, order.id, None)
        assert plan.balance == 200_00  # paid credits, not the 600 credits held in all
        with pytest.raises(StateConflict, match="200 paid credits left"):
            refunds.refund_order(s, finance, order.id, gateway, settings=settings, reason="asked")
        share = refunds.plan_refund(s, finance, order.id, "100").credits_taken_back
        done = refunds.refund_order(s, finance, order.id, gateway, settings=settings, reason="asked", amount="100")
        assert done.credits_taken_back == share > 0
        balance = ledger._balance(s, order.customer_id)
    assert balance.promotional == 400_00
    assert balance.paid == 200_00 - share
    assert balance.paid_value_cents == 200_00 - ledger._share(order.amount_cents, share, order.credits)
    assert ledger_sums(db)[(order.customer_id, "paid")] == (balance.paid, balance.paid_value_cents)


def test_the_rollups_kept_with_each_entry_equal_a_rebuild_from_the_ledger(
    db, admin, support, finance, pricing, settings, gateway
):
    first = paid_order(db, admin, support, pricing, settings, gateway, amount="500")
    second = paid_order(db, admin, support, pricing, settings, gateway, amount="20", email="ana@example.com")
    post(db, first.customer_id, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 10_00)
    post(db, second.customer_id, LedgerKind.USAGE, CreditPool.PAID, -5_00, -5_00)
    with db.session() as s:
        refunds.refund_order(s, finance, first.id, gateway, settings=settings, reason="asked", amount="50")
    kept = rollup_rows(db)
    assert len(kept["customer_credit_monthly"]) == 5
    rollup.rebuild(db, admin)
    assert rollup_rows(db) == kept


def test_the_migration_makes_every_older_entry_paid_worth_its_order_and_builds_the_rollups(db, admin):
    demo.seed(db, orders=3000, seed=3, actor=admin)
    with db.engine.begin() as conn:  # a ledger as it was before pools: top-ups and refunds only
        conn.exec_driver_sql("DELETE FROM usage_lines")
        conn.exec_driver_sql("DELETE FROM ledger_entries WHERE kind = 'usage'")
    rollup.rebuild(db, admin)
    seeded, sums = rollup_rows(db), ledger_sums(db)
    with db.session() as s:
        kinds = set(s.scalars(select(LedgerEntry.kind).distinct()))
    assert kinds >= {LedgerKind.TOPUP, LedgerKind.REFUND}
    assert seeded["credit_balances"] and all(pool == "paid" for _, pool in sums)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0015")
    migrate(db.engine)
    assert rollup_rows(db) == seeded
    assert ledger_sums(db) == sums
    with db.session() as s:
        mismatched = s.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .join(Order, Order.id == LedgerEntry.order_id)
            .where(LedgerEntry.kind == LedgerKind.TOPUP, LedgerEntry.value_cents != Order.amount_cents)
        )
    assert mismatched == 0
