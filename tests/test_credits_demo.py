"""The demo seeds believable usage: most customers spend most of what they buy, some keep balances, a few
hold credits bought over a year ago that they never used; the usage is booked lines a later file can
correct; the roll-forward reconciles to the ledger at every month end."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from billing_core.core.models import CreditBalance, Customer, LedgerEntry, LedgerKind, Order, UsageLine
from billing_core.credits import liability, usage
from billing_core.credits.ledger import _share
from billing_core.demo import seeding as demo
from billing_core.demo.generation import end_bound
from tests.helpers import DEMO_END
from tests.test_liability import assert_reconciles


def test_the_demo_seeds_usage_most_spend_most_some_keep_balances_some_are_idle(db, admin, finance):
    demo.seed(db, orders=3000, seed=11, actor=admin)
    with db.session() as s:
        bought = dict(
            s.execute(
                select(LedgerEntry.customer_id, func.sum(LedgerEntry.credits))
                .where(LedgerEntry.kind == LedgerKind.TOPUP)
                .group_by(LedgerEntry.customer_id)
            ).all()
        )
        held = dict(s.execute(select(CreditBalance.customer_id, CreditBalance.paid_credits)).all())
        first_topup = dict(
            s.execute(
                select(LedgerEntry.customer_id, func.min(LedgerEntry.created_at))
                .where(LedgerEntry.kind == LedgerKind.TOPUP)
                .group_by(LedgerEntry.customer_id)
            ).all()
        )
        users = set(s.scalars(select(LedgerEntry.customer_id).where(LedgerEntry.kind == LedgerKind.USAGE).distinct()))
        drawn = -s.scalar(select(func.sum(LedgerEntry.credits)).where(LedgerEntry.kind == LedgerKind.USAGE))
        booked = s.scalar(select(func.sum(UsageLine.credits)))
        lines = liability.roll_forward(s, finance)
    assert drawn == booked > 0
    left = {cid: held.get(cid, 0) / total for cid, total in bought.items() if total > 0}
    spent_most = sum(1 for share in left.values() if share <= 0.15)
    kept = sum(1 for share in left.values() if 0.25 <= share < 0.95)
    assert spent_most > 0.5 * len(left) and kept > 0.1 * len(left)
    # Idle for over a year: holding credits bought more than a year ago and never used.
    year_ago = end_bound(DEMO_END) - timedelta(days=365)
    idle = [c for c, at in first_topup.items() if at < year_ago and c not in users and held.get(c, 0) > 0]
    assert 0.02 * len(first_topup) < len(idle) < 0.2 * len(first_topup)
    assert min(held.values()) >= 0  # usage never draws more than a top-up left after its refunds
    assert_reconciles(db, finance, lines)


def test_a_file_restating_seeded_usage_books_nothing_and_a_correction_books_the_difference(db, admin, finance):
    demo.seed(db, orders=500, seed=12, actor=admin)
    with db.session() as s:
        line = s.scalar(select(UsageLine).order_by(UsageLine.day.desc()).limit(1))
        who = s.get(Customer, line.customer_id).public_id
    same = f"customer,day,model,credits\n{who},{line.day},{line.model},{line.credits / 100:.2f}\n".encode()
    assert usage.apply(db, finance, usage.parse_usage(same, "same.csv")).unchanged == 1
    fixed = f"customer,day,model,credits\n{who},{line.day},{line.model},0\n".encode()
    result = usage.apply(db, finance, usage.parse_usage(fixed, "fixed.csv"))
    assert (result.corrected, result.credits) == (1, -line.credits)


def test_seeded_top_ups_refunds_and_usage_carry_the_worth_the_ledger_gives(db, admin):
    """Each entry's worth is its share of its order's amount before fees, half up to the cent, as
    posting it one by one would give (a top-up: the whole amount)."""
    demo.seed(db, orders=1500, seed=13, actor=admin)
    with db.session() as s:
        rows = s.execute(
            select(LedgerEntry.kind, LedgerEntry.credits, LedgerEntry.value_cents, Order.amount_cents, Order.credits)
            .join(Order, Order.id == LedgerEntry.order_id)
            .where(LedgerEntry.kind.in_([LedgerKind.TOPUP, LedgerKind.REFUND]))
        ).all()
        usage_worth = s.scalar(select(func.sum(LedgerEntry.value_cents)).where(LedgerEntry.kind == LedgerKind.USAGE))
        booked_worth = s.scalar(select(func.sum(UsageLine.paid_value_cents)))
    kinds = {kind for kind, *_ in rows}
    assert kinds == {LedgerKind.TOPUP, LedgerKind.REFUND}
    for kind, credits, worth, amount, of_credits in rows:
        expected = amount if kind == LedgerKind.TOPUP else -_share(amount, -credits, of_credits)
        assert worth == expected, (kind, credits, amount, of_credits)
    assert usage_worth == -booked_worth < 0
