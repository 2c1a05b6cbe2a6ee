"""Sandbox top-ups: a whole customer top-up run against the simulated gateway, and what it left behind.

``run_sandbox_topup`` goes through the same services a real top-up does (order, payment, completion,
invoice, audit), so the simulator shows the real flow; only the customer is a sandbox customer, whose
orders and invoices (series ``settings.sandbox_invoice_series``) never count in revenue or bills.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access.roles import Action, Actor, require
from billing_core.core.config import Settings
from billing_core.core.db import Database
from billing_core.core.errors import NotFound
from billing_core.core.models import AuditEvent, Customer, Invoice, InvoiceKind, LedgerEntry, Order, OrderStatus
from billing_core.orders import lifecycle as orders
from billing_core.payments import PaymentState, PaymentStatus
from billing_core.payments.simulated import Outcome, SimulatedGateway
from billing_core.pricing.catalog import Method

SANDBOX_REASON = "sandbox top-up"


@dataclass(frozen=True)
class SandboxResult:
    order_public_id: str
    status: OrderStatus
    gateway: PaymentStatus
    invoice_number: str | None
    credits_granted: int  # hundredths of a credit
    balance: int  # hundredths of a credit, after the run


@dataclass(frozen=True)
class LedgerRow:
    at: datetime
    kind: str
    credits: int
    order_public_id: str | None
    created_by: str


@dataclass(frozen=True)
class OrderRow:
    public_id: str
    created_at: datetime
    plan: str
    method: str
    amount_cents: int
    fee_cents: int
    total_cents: int
    credits: int
    status: OrderStatus
    provider_ref: str | None
    invoice_number: str | None


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor_email: str
    actor_role: str
    action: str
    order_public_id: str
    reason: str | None


@dataclass(frozen=True)
class SandboxSnapshot:
    """What a sandbox customer holds after their runs: balance, ledger, orders, audit trail."""

    customer_public_id: str
    customer_email: str
    balance: int
    ledger: list[LedgerRow]
    orders: list[OrderRow]
    events: list[AuditRow]


def run_sandbox_topup(
    database: Database,
    actor: Actor,
    settings: Settings,
    *,
    customer_id: int,
    amount: int | str,
    method: Method | str,
    outcome: Outcome,
) -> SandboxResult:
    """Top up a sandbox customer end to end: order, simulated payment with ``outcome``, completion."""
    require(actor, Action.SANDBOX)
    outcome = Outcome(outcome)
    pricing = settings.pricing()
    gateway = SimulatedGateway(database)
    with database.session() as session:
        customer = _sandbox_customer(session, customer_id)
        order = orders.create_order(
            session, actor, customer_id=customer.id, amount=amount, method=method, pricing=pricing
        )
        opened = gateway.create_payment(orders._payment_request(session, order))
        orders.attach_payment(session, actor, order.public_id, opened)
        gateway.settle(opened.ref, outcome)
        status = gateway.fetch_status(opened.ref)

        invoice_number = None
        credits = 0
        if status.state is PaymentState.SUCCEEDED:
            completion = orders.complete_order(
                session, actor, order.public_id, settings=settings, reason=SANDBOX_REASON, payment=status
            )
            invoice_number, credits = completion.invoice_number, completion.credits
        elif status.state is PaymentState.FAILED:
            orders.fail_order(session, actor, order.public_id, payment=status, reason=f"{SANDBOX_REASON} declined")

        session.rollback()  # end any read transaction so the reads below see the committed state
        final = orders._get_order(session, order.public_id)
        return SandboxResult(
            order_public_id=final.public_id,
            status=final.status,
            gateway=status,
            invoice_number=invoice_number,
            credits_granted=credits,
            balance=orders._customer_balance(session, customer.id),
        )


def _sandbox_customer(session: Session, customer_id: int) -> Customer:
    """A sandbox customer; a real one is refused without naming or describing them."""
    customer = session.get(Customer, customer_id)
    if customer is None or not customer.sandbox:
        raise NotFound(f"There is no sandbox customer {customer_id}; the simulator only works with sandbox customers.")
    return customer


def sandbox_snapshot(session: Session, actor: Actor, customer_id: int, limit: int = 50) -> SandboxSnapshot:
    """A sandbox customer's balance, latest ledger entries, orders with invoice numbers, and their audit events.

    Only sandbox customers: a real customer's id is refused as if there were none.
    """
    require(actor, Action.SANDBOX)
    customer = _sandbox_customer(session, customer_id)

    order_rows = session.execute(
        select(Order, Invoice.number)
        .outerjoin(Invoice, (Invoice.order_id == Order.id) & (Invoice.kind == InvoiceKind.INVOICE))
        .where(Order.customer_id == customer.id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    ).all()
    order_list = [
        OrderRow(
            public_id=o.public_id,
            created_at=o.created_at,
            plan=o.plan.value,
            method=o.method.value,
            amount_cents=o.amount_cents,
            fee_cents=o.fee_cents,
            total_cents=o.total_cents,
            credits=o.credits,
            status=o.status,
            provider_ref=o.provider_ref,
            invoice_number=number,
        )
        for o, number in order_rows
    ]

    ledger_rows = session.execute(
        select(LedgerEntry, Order.public_id)
        .outerjoin(Order, Order.id == LedgerEntry.order_id)
        .where(LedgerEntry.customer_id == customer.id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(limit)
    ).all()
    ledger = [LedgerRow(e.created_at, e.kind.value, e.credits, public_id, e.created_by) for e, public_id in ledger_rows]

    public_ids = [row.public_id for row in order_list]
    events: list[AuditRow] = []
    if public_ids:
        stmt = (
            select(AuditEvent)
            .where(AuditEvent.entity_type == "order", AuditEvent.entity_id.in_(public_ids))
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit * 4)
        )
        events = [
            AuditRow(e.at, e.actor_email, e.actor_role.value, e.action, e.entity_id, e.reason)
            for e in session.scalars(stmt)
        ]

    return SandboxSnapshot(
        customer_public_id=customer.public_id,
        customer_email=customer.email,
        balance=orders._customer_balance(session, customer.id),
        ledger=ledger,
        orders=order_list,
        events=events,
    )
