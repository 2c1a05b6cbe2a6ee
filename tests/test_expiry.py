"""Expiry, first in first out: what is left of a lot past its term expires; a dry run books nothing; the
booking is audited and is breakage at the price paid; customers close to expiry are listed for notice."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing_core.cli import credits as cli_credits
from billing_core.core.config import CreditPolicy
from billing_core.core.db import transaction
from billing_core.core.models import AuditEvent, CreditPool, LedgerKind
from billing_core.credits import expiry, ledger, liability
from tests.helpers import make_customer

POLICY = CreditPolicy(paid_expiry_days=365, promotional_expiry_days=30, notice_days=30)
T0 = datetime(2025, 1, 10, tzinfo=UTC)


def post(db, cid, kind, pool, credits, value, at):
    with db.session() as s, transaction(s):
        ledger._post(s, [ledger._entry(cid, kind, pool, credits, value, by="t", at=at)])


@pytest.fixture
def customer(db, admin):
    """Two top-ups a month apart (100 and 50 credits), 120 used, and a 20-credit grant."""
    with db.session() as s:
        cid = make_customer(s, admin).id
    post(db, cid, LedgerKind.TOPUP, CreditPool.PAID, 100_00, 100_00, T0)
    post(db, cid, LedgerKind.TOPUP, CreditPool.PAID, 50_00, 50_00, T0 + timedelta(days=31))
    post(db, cid, LedgerKind.USAGE, CreditPool.PAID, -120_00, -120_00, T0 + timedelta(days=40))
    post(db, cid, LedgerKind.ADJUSTMENT, CreditPool.PROMOTIONAL, 20_00, 0, T0 + timedelta(days=40))
    return cid


def test_the_dry_run_lists_what_is_left_of_lots_past_their_term_first_in_first_out(db, finance, customer):
    with db.session() as s:
        early = expiry.plan(s, finance, POLICY, as_of=T0 + timedelta(days=75))
        after_first = expiry.plan(s, finance, POLICY, as_of=T0 + timedelta(days=366))
        after_both = expiry.plan(s, finance, POLICY, as_of=T0 + timedelta(days=400))
    # 75 days on: only the grant (day 40, a 30-day term) has expired.
    assert [(x.pool, x.credits) for x in early] == [(CreditPool.PROMOTIONAL, 20_00)]
    # The first top-up was used up first (100 of the 120), so nothing of it is left to expire.
    assert [(x.pool, x.credits) for x in after_first] == [(CreditPool.PROMOTIONAL, 20_00)]
    # The second lot (50) had 20 used: 30 left expire after its own year.
    assert sorted((x.pool.value, x.credits) for x in after_both) == [("paid", 30_00), ("promotional", 20_00)]
    with db.session() as s:
        assert ledger._balance(s, customer) == ledger.Balance(30_00, 20_00, 30_00)  # a dry run books nothing


def test_booking_expiry_is_audited_breakage_and_the_roll_forward_still_reconciles(db, finance, customer):
    at = T0 + timedelta(days=400)
    done = expiry.book(db, finance, POLICY, as_of=at)
    assert (done.customers, done.credits[CreditPool.PAID], done.breakage_cents) == (1, 30_00, 30_00)
    with db.session() as s:
        assert ledger._balance(s, customer) == ledger.Balance(0, 0, 0)
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "credits.expire"))
        assert event.after["breakage_cents"] == 30_00 and event.actor_email == finance.email
        lines = liability.roll_forward(s, finance)
        for line in lines:
            assert (line.credits.closing, line.usd.closing) == liability.ledger_closing(s, finance, line.month)[
                line.pool
            ]
    month = next(x for x in lines if x.pool is CreditPool.PAID and x.month == at.date().replace(day=1))
    assert (month.credits.expiry, month.breakage_cents) == (30_00, 30_00)
    again = expiry.book(db, finance, POLICY, as_of=at)
    assert again.customers == 0  # nothing is left to expire twice


def test_usage_after_the_dry_run_is_drawn_before_the_booking_expires_anything(db, finance, customer):
    at = T0 + timedelta(days=400)
    post(db, customer, LedgerKind.USAGE, CreditPool.PAID, -10_00, -10_00, T0 + timedelta(days=300))
    done = expiry.book(db, finance, POLICY, as_of=at)
    assert done.credits[CreditPool.PAID] == 20_00


def test_customers_close_to_expiry_are_listed_for_notice(db, finance, customer):
    with db.session() as s:
        due = expiry.soon(s, finance, POLICY, as_of=T0 + timedelta(days=31 + 340))
    assert [(x.customer_id, x.pool, x.credits) for x in due] == [(customer, CreditPool.PAID, 30_00)]


def test_the_command_dry_run_books_nothing(db, admin, customer, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db.url)
    said: list[str] = []
    args = argparse.Namespace(dry_run=True, as_of="2026-03-01", database_url=db.url)
    assert cli_credits.cli_expire(args, admin, said.append) == 0
    assert "dry run: nothing was booked" in said[-1] and "would expire" in said[-2]
    with db.session() as s:
        assert ledger._balance(s, customer).total == 50_00
    args.dry_run = False
    assert cli_credits.cli_expire(args, admin, said.append) == 0
    with db.session() as s:
        assert ledger._balance(s, customer).total == 0
