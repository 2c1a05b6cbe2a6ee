"""The liability roll-forward reconciles to the ledger's sum at every month end, to the cent: on demo data
with usage, and after random sequences of every kind of entry (hypothesis); drill-down and CSV."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_core.core.db import transaction
from billing_core.core.models import CreditPool, LedgerKind
from billing_core.credits import ledger, liability
from billing_core.demo import seeding as demo
from billing_core.revenue import rollup
from tests.helpers import make_customer
from tests.test_credits_ledger import rollup_rows

_emails = itertools.count()


def assert_reconciles(db, actor, lines):
    assert lines
    with db.session() as s:
        for line in lines:
            credits, cents = liability.ledger_closing(s, actor, line.month)[line.pool]
            assert (line.credits.closing, line.usd.closing) == (credits, cents), (line.month, line.pool)
    by_pool = {}
    for line in lines:  # each month opens where the one before closed
        if line.pool in by_pool:
            assert line.credits.opening == by_pool[line.pool].credits.closing
            assert line.usd.opening == by_pool[line.pool].usd.closing
        by_pool[line.pool] = line


def test_the_roll_forward_of_demo_data_reconciles_at_every_month_end(db, admin, finance):
    demo.seed(db, orders=3000, seed=9, actor=admin)
    with db.session() as s:
        lines = liability.roll_forward(s, finance)
    assert len({line.month for line in lines}) >= 12
    assert_reconciles(db, finance, lines)
    last_paid = [line for line in lines if line.pool is CreditPool.PAID][-1]
    assert last_paid.credits.topups > 0 and last_paid.credits.closing > 0


entry = st.tuples(
    st.sampled_from(list(LedgerKind)),
    st.sampled_from(list(CreditPool)),
    st.integers(-50_000, 50_000).filter(bool),
    st.integers(0, 2),  # customer
    st.integers(0, 17),  # month offset from 2025-01
    st.integers(1, 28),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(entries=st.lists(entry, min_size=1, max_size=30))
def test_random_sequences_of_every_kind_of_entry_reconcile_to_the_ledger(db, admin, finance, entries):
    with db.session() as s:
        customers = [make_customer(s, admin, email=f"liab{next(_emails)}@example.com").id for _ in range(3)]
    for kind, pool, credits, who, offset, day in entries:
        at = datetime(2025 + offset // 12, offset % 12 + 1, day, 12, tzinfo=UTC)
        with db.session() as s, transaction(s):
            balance = ledger._balance(s, customers[who], lock=True)
            value = credits if credits > 0 else -ledger._paid_value_taken(balance, -credits)
            ledger._post(s, [ledger._entry(customers[who], kind, pool, credits, value, by="prop", at=at)])
    with db.session() as s:
        lines = liability.roll_forward(s, finance)
        since = liability.roll_forward(s, finance, since=date(2025, 6, 1), until=date(2026, 3, 31))
    assert_reconciles(db, finance, lines)
    assert_reconciles(db, finance, since)
    assert since[0].month == date(2025, 6, 1) and since[-1].month == date(2026, 3, 1)
    kept = rollup_rows(db)
    rollup.rebuild(db, admin)
    assert rollup_rows(db) == kept


def test_the_drill_down_lists_the_customers_behind_a_month_and_their_openings(db, admin, finance):
    with db.session() as s:
        ids = [make_customer(s, admin, email=f"drill{i}@example.com").id for i in range(3)]
    for cid, credits in zip(ids, (10_00, 20_00, 30_00), strict=True):
        with db.session() as s, transaction(s):
            at = datetime(2026, 1, 5, tzinfo=UTC)
            ledger._post(s, [ledger._entry(cid, LedgerKind.TOPUP, CreditPool.PAID, credits, credits, by="t", at=at)])
    with db.session() as s, transaction(s):
        at = datetime(2026, 2, 5, tzinfo=UTC)
        ledger._post(s, [ledger._entry(ids[1], LedgerKind.USAGE, CreditPool.PAID, -5_00, -5_00, by="t", at=at)])
    with db.session() as s:
        page, cursor = liability.customers_in_month(s, finance, date(2026, 1, 1), size=2)
        assert [line.customer_id for line in page] == ids[:2] and cursor == ids[1]
        rest, cursor = liability.customers_in_month(s, finance, date(2026, 1, 1), after_customer_id=cursor, size=2)
        assert [line.customer_id for line in rest] == ids[2:] and cursor is None
        [feb], _ = liability.customers_in_month(s, finance, date(2026, 2, 1))
    paid = feb.moved[CreditPool.PAID]
    assert (feb.customer_id, paid.opening, paid.usage, paid.closing) == (ids[1], 20_00, 5_00, 15_00)


def test_the_csv_carries_every_figure_of_the_page(db, admin, finance):
    with db.session() as s:
        cid = make_customer(s, admin).id
    with db.session() as s, transaction(s):
        at = datetime(2026, 3, 5, tzinfo=UTC)
        ledger._post(s, [ledger._entry(cid, LedgerKind.TOPUP, CreditPool.PAID, 100_00, 95_00, by="t", at=at)])
        ledger._post(s, [ledger._entry(cid, LedgerKind.EXPIRY, CreditPool.PAID, -40_00, -38_00, by="t", at=at)])
    with db.session() as s:
        lines = liability.roll_forward(s, finance)
    rows = list(csv.DictReader(io.StringIO(liability.roll_forward_csv(lines).decode())))
    paid = next(r for r in rows if r["pool"] == "paid")
    assert (paid["month"], paid["closing_credits"], paid["closing_usd"], paid["breakage_usd"]) == (
        "2026-03",
        "60.00",
        "57.00",
        "38.00",
    )
