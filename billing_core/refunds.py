"""Refunds, full or partial: money back through the gateway, credits back from the ledger, a credit note.

A refund larger than what is still refundable is refused. A refund that would take back credits
the customer has already spent is refused too, unless finance overrides it explicitly; the
balance may then go negative, and the audit event says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing_core import audit, money, rollup
from billing_core.access import Action, Actor, require
from billing_core.config import Settings
from billing_core.db import transaction
from billing_core.errors import BillingError, StateConflict
from billing_core.invoices import issue_credit_note
from billing_core.models import LedgerEntry, LedgerKind, Order, OrderStatus, Refund, utcnow
from billing_core.orders import customer_balance, get_order, invoice_for
from billing_core.payments import Gateway

REFUNDABLE = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)


@dataclass(frozen=True)
class Refunded:
    order_public_id: str
    amount_cents: int
    credits_taken_back: int
    credit_note_number: str
    order_status: OrderStatus
    balance: int


@dataclass(frozen=True)
class RefundPlan:
    """What a refund of ``amount_cents`` would do, before anything is done."""

    amount_cents: int
    paid_cents: int
    refunded_cents: int
    credits_taken_back: int
    balance: int
    full: bool

    @property
    def remaining_cents(self) -> int:
        return self.paid_cents - self.refunded_cents

    @property
    def spends_used_credits(self) -> bool:
        return self.credits_taken_back > self.balance


def _refunded_so_far(session: Session, order: Order) -> tuple[int, int]:
    row = session.execute(
        select(func.coalesce(func.sum(Refund.amount_cents), 0), func.coalesce(func.sum(Refund.credits), 0)).where(
            Refund.order_id == order.id
        )
    ).one()
    return int(row[0]), int(row[1])


def plan_refund(session: Session, order: Order, amount: int | str | None) -> RefundPlan:
    """Check a refund against the order and the customer's balance; raise if it can never be done."""
    if order.status not in REFUNDABLE:
        raise StateConflict(f"Order {order.public_id} is {order.status.value}; only a paid order can be refunded.")
    paid = order.paid_amount_cents if order.paid_amount_cents is not None else order.total_cents
    refunded, credits_back_so_far = _refunded_so_far(session, order)
    remaining = paid - refunded
    cents = remaining if amount is None or amount == "" else amount
    cents = money.parse_amount(cents) if isinstance(cents, str) else cents
    if cents <= 0:
        raise BillingError("The refund must be more than zero.")
    if cents > remaining:
        raise BillingError(
            f"A refund of {money.format_cents(cents)} is more than the {money.format_cents(remaining)} still "
            f"refundable (paid {money.format_cents(paid)}, already refunded {money.format_cents(refunded)})."
        )
    full = cents == remaining
    credits_left = order.credits - credits_back_so_far
    if full:
        credits = credits_left
    else:
        share = money.to_decimal(order.credits) * cents / paid  # hundredths, exact proportion
        credits = min(credits_left, money.from_decimal(share))
    return RefundPlan(cents, paid, refunded, credits, customer_balance(session, order.customer_id), full)


def refund_order(
    session: Session,
    actor: Actor,
    order_id: int | str,
    gateway: Gateway,
    *,
    settings: Settings,
    reason: str,
    amount: int | str | None = None,
    override: bool = False,
) -> Refunded:
    """Refund ``amount`` (cents or typed text; None = all that remains) of a paid order."""
    require(actor, Action.REFUND_ORDER)
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("Give a reason for the refund.")
    order = get_order(session, order_id)
    plan = plan_refund(session, order, amount)
    if plan.spends_used_credits and not override:
        raise StateConflict(
            f"This refund takes back {money.format_credits(plan.credits_taken_back)} credits but the customer has "
            f"{money.format_credits(plan.balance)} left; they have used the rest. Finance can override."
        )
    if not order.provider_ref:
        raise StateConflict(f"Order {order.public_id} has no payment reference to refund at the gateway.")
    ref, public_id = order.provider_ref, order.public_id
    # The same refund asked again (a retry after a crash or a double click) reuses the key, so the
    # gateway pays it out once.
    key = f"billing-ops-refund-{public_id}-{plan.refunded_cents}-{plan.amount_cents}"
    session.rollback()
    gateway.refund(ref, plan.amount_cents, key)

    with transaction(session):
        order = session.scalar(select(Order).where(Order.id == order.id).with_for_update())
        assert order is not None
        # The money has left at the gateway: record it even if another refund landed meanwhile.
        plan = plan_refund(session, order, plan.amount_cents)
        now = utcnow()
        invoice = invoice_for(session, order.id)
        if invoice is None:
            raise StateConflict(f"Order {public_id} has no invoice to credit; nothing was recorded.")
        note = issue_credit_note(
            session, invoice, order, settings, amount_cents=plan.amount_cents, issued_at=now, reason=reason
        )
        session.flush()
        refund = Refund(
            order_id=order.id,
            amount_cents=plan.amount_cents,
            credits=plan.credits_taken_back,
            provider_ref=ref,
            credit_note_id=note.id,
            created_at=now,
            created_by=actor.email,
            reason=reason,
            override=override and plan.spends_used_credits,
        )
        session.add(refund)
        session.flush()
        rollup.record_refund(session, order, refund)
        session.add(
            LedgerEntry(
                customer_id=order.customer_id,
                order_id=order.id,
                kind=LedgerKind.REFUND,
                credits=-plan.credits_taken_back,
                refund_id=refund.id,
                created_at=now,
                created_by=actor.email,
            )
        )
        before = order.status
        order.status = OrderStatus.REFUNDED if plan.full else OrderStatus.PARTIALLY_REFUNDED
        audit.record(
            session,
            actor,
            "order.refund",
            "order",
            public_id,
            reason=reason,
            before={"status": before.value, "refunded_cents": plan.refunded_cents, "balance": plan.balance},
            after={
                "status": order.status.value,
                "refund_cents": plan.amount_cents,
                "credits_taken_back": plan.credits_taken_back,
                "credit_note": note.number,
                "override": refund.override,
            },
        )
        session.flush()
        balance = customer_balance(session, order.customer_id)
    return Refunded(public_id, plan.amount_cents, plan.credits_taken_back, note.number, order.status, balance)


def refunds_for(session: Session, order_id: int) -> list[Refund]:
    return list(session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at)))
