"""Sandbox top-ups run the real flow against the simulated gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from billing_core.access.roles import Actor, Role
from billing_core.core.errors import BillingError, InvalidAmount, NotFound, PermissionDenied
from billing_core.core.models import Invoice, LedgerEntry, Order, OrderStatus
from billing_core.orders import lifecycle as orders
from billing_core.orders.sandbox import run_sandbox_topup, sandbox_snapshot
from billing_core.payments import PaymentState
from billing_core.payments.simulated import Outcome
from tests.helpers import ANALYST


@pytest.fixture
def sandbox_customer(db, analyst):
    with db.session() as s:
        return orders.create_customer(
            s, analyst, email="lin@sandbox.test", name="林 Sandbox", country="SG", sandbox=True
        )


@pytest.fixture
def real_customer(db, admin):
    with db.session() as s:
        return orders.create_customer(s, admin, email="real@example.com", name="Real Person", country="DE")


def topup(db, actor, settings, customer, outcome, amount="500", method="stripe"):
    return run_sandbox_topup(
        db, actor, settings, customer_id=customer.id, amount=amount, method=method, outcome=outcome
    )


def test_succeeded_topup_pays_the_order_grants_credits_and_issues_a_sandbox_invoice(
    db, settings, analyst, sandbox_customer
):
    result = topup(db, analyst, settings, sandbox_customer, Outcome.SUCCEED)

    assert result.status is OrderStatus.PAID
    assert result.gateway.state is PaymentState.SUCCEEDED
    assert result.gateway.amount_cents == 52750  # $500 + 5.5% Stripe fee
    assert result.credits_granted == 50000
    assert result.balance == 50000
    year = datetime.now(UTC).year
    assert result.invoice_number == f"SBX-{year}-000001"
    with db.session() as s:
        invoice = s.scalar(select(Invoice))
        assert invoice.sandbox is True
        assert invoice.series == f"SBX-{year}"


def test_declined_topup_fails_the_order_and_grants_nothing(db, settings, analyst, sandbox_customer):
    result = topup(db, analyst, settings, sandbox_customer, Outcome.DECLINE)

    assert result.status is OrderStatus.FAILED
    assert result.gateway.state is PaymentState.FAILED
    assert result.invoice_number is None
    assert result.credits_granted == 0
    assert result.balance == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Invoice)) == 0
        order = orders._get_order(s, result.order_public_id)
        assert order.failure_reason == "card declined (simulated)"


def test_pending_topup_leaves_the_order_pending_with_its_payment_attached(db, settings, analyst, sandbox_customer):
    result = topup(db, analyst, settings, sandbox_customer, Outcome.STAY_PENDING)

    assert result.status is OrderStatus.PENDING
    assert result.gateway.state is PaymentState.PENDING
    assert result.invoice_number is None
    assert result.balance == 0
    with db.session() as s:
        assert orders._get_order(s, result.order_public_id).provider_ref == result.gateway.ref


def test_credits_are_granted_once_even_when_completion_is_repeated(db, settings, analyst, sandbox_customer):
    result = topup(db, analyst, settings, sandbox_customer, Outcome.SUCCEED)

    with db.session() as s, pytest.raises(BillingError, match="already paid"):
        orders.complete_order(
            s, analyst, result.order_public_id, settings=settings, reason="again", payment=result.gateway
        )
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        assert orders._customer_balance(s, sandbox_customer.id) == 50000


def test_each_run_is_its_own_order_and_balances_add_up(db, settings, analyst, sandbox_customer):
    topup(db, analyst, settings, sandbox_customer, Outcome.SUCCEED, amount="20")
    topup(db, analyst, settings, sandbox_customer, Outcome.DECLINE, amount="100")
    last = topup(db, analyst, settings, sandbox_customer, Outcome.SUCCEED, amount="12.34", method="alipay")

    assert last.balance == 2000 + 1234
    assert last.invoice_number.endswith("-000002")


def test_a_real_customer_is_refused_and_nothing_is_created(db, settings, admin, real_customer):
    with pytest.raises(NotFound, match="only works with sandbox customers") as refused:
        topup(db, admin, settings, real_customer, Outcome.SUCCEED)
    assert real_customer.email not in str(refused.value)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_the_snapshot_of_a_real_customer_is_refused_as_if_there_were_none(db, admin, real_customer):
    with db.session() as s, pytest.raises(NotFound, match="no sandbox customer") as refused:
        sandbox_snapshot(s, admin, real_customer.id)
    assert real_customer.email not in str(refused.value)


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.FINANCE])
def test_roles_without_the_simulator_may_not_read_a_sandbox_snapshot(db, sandbox_customer, role):
    with db.session() as s, pytest.raises(PermissionDenied, match=f"The {role.value} role may not sandbox.run"):
        sandbox_snapshot(s, Actor(f"{role.value}@company.test", role), sandbox_customer.id)


def test_an_invalid_amount_is_refused_and_nothing_is_created(db, settings, analyst, sandbox_customer):
    with pytest.raises(InvalidAmount, match="smallest custom top-up"):
        topup(db, analyst, settings, sandbox_customer, Outcome.SUCCEED, amount="1")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


@pytest.mark.parametrize("actor", [None, Actor("x@company.test", "guest")])  # type: ignore[arg-type]
def test_no_actor_or_an_unknown_role_is_refused(db, settings, sandbox_customer, actor):
    with pytest.raises(PermissionDenied):
        topup(db, actor, settings, sandbox_customer, Outcome.SUCCEED)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN])
def test_simulator_roles_may_run_the_sandbox(db, settings, sandbox_customer, role):
    result = topup(db, Actor(f"{role.value}@company.test", role), settings, sandbox_customer, Outcome.SUCCEED)
    assert result.status is OrderStatus.PAID


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.FINANCE])
def test_roles_without_the_simulator_may_not_run_the_sandbox(db, settings, sandbox_customer, role):
    with pytest.raises(PermissionDenied, match=f"The {role.value} role may not sandbox.run"):
        topup(db, Actor(f"{role.value}@company.test", role), settings, sandbox_customer, Outcome.SUCCEED)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_snapshot_shows_balance_ledger_orders_with_invoices_and_audit_events(db, settings, analyst, sandbox_customer):
    paid = topup(db, analyst, settings, sandbox_customer, Outcome.SUCCEED, amount="100")
    failed = topup(db, analyst, settings, sandbox_customer, Outcome.DECLINE, amount="20")

    with db.session() as s:
        snap = sandbox_snapshot(s, ANALYST, sandbox_customer.id)

    assert snap.customer_email == "lin@sandbox.test"
    assert snap.balance == 10000
    assert [(e.kind, e.credits, e.order_public_id) for e in snap.ledger] == [("topup", 10000, paid.order_public_id)]
    by_id = {o.public_id: o for o in snap.orders}
    assert by_id[paid.order_public_id].invoice_number == paid.invoice_number
    assert by_id[paid.order_public_id].total_cents == 10550
    assert by_id[failed.order_public_id].invoice_number is None
    assert by_id[failed.order_public_id].status is OrderStatus.FAILED
    actions = {(e.order_public_id, e.action) for e in snap.events}
    assert {
        (paid.order_public_id, "order.create"),
        (paid.order_public_id, "order.payment_created"),
        (paid.order_public_id, "order.complete"),
        (failed.order_public_id, "order.fail"),
    } <= actions
    assert all(e.actor_email == analyst.email for e in snap.events)


def test_snapshot_of_a_customer_without_orders_is_empty(db, sandbox_customer):
    with db.session() as s:
        snap = sandbox_snapshot(s, ANALYST, sandbox_customer.id)
    assert (snap.balance, snap.ledger, snap.orders, snap.events) == (0, [], [], [])
