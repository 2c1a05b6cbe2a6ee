"""Customers and top-up orders: create from a recomputed quote, and complete exactly once.

``complete_order`` is the one function every completion path uses (gateway check, bulk reconcile,
settlement import, manual completion, the simulator): compare-and-set on the order's status, the
paid amount and currency checked against the order, credits granted once, the invoice number
allocated gaplessly, and the audit event written, all in one transaction.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import transaction
from billing_core.core.emails import parse_email
from billing_core.core.errors import BillingError, NotFound, PaymentMismatch, StateConflict
from billing_core.core.models import (
    COMPLETABLE,
    PAID_STATUSES,
    Approval,
    ApprovalKind,
    CreditPool,
    Customer,
    Invoice,
    InvoiceKind,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    utcnow,
)
from billing_core.credits.ledger import _entry, _post
from billing_core.credits.proposals import SentForApproval, _propose_for_order
from billing_core.invoices.issuing import _issue_invoice, buyer_snapshot
from billing_core.orders import states
from billing_core.orders.states import OrderAction
from billing_core.payments import PaymentRequest, PaymentState, PaymentStatus
from billing_core.pricing.catalog import Method, Pricing, plan_name, quote
from billing_core.revenue import rollup

ORDER_TTL = timedelta(hours=24)
PUBLIC_ID_MAX_CHARS = 64
NAME_MAX_CHARS = 200
REFERENCE_MAX_CHARS = 255  # a provider reference
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Completion:
    order_public_id: str
    invoice_number: str
    credits: int
    balance: int


# --- customers ---------------------------------------------------------------------------------


def create_customer(
    session: Session,
    actor: Actor,
    *,
    email: str,
    name: str,
    country: str,
    company: str | None = None,
    tax_id: str | None = None,
    address: str | None = None,
    sandbox: bool = False,
) -> Customer:
    require(actor, Action.SANDBOX if sandbox else Action.CREATE_CUSTOMER)
    parsed_email = parse_email(email)
    name = (name or "").strip()
    country = (country or "").strip().upper()
    if parsed_email is None:
        raise BillingError("Enter a valid email address, such as ana@example.com.")
    email = parsed_email
    if not name or len(name) > NAME_MAX_CHARS:
        raise BillingError(f"Enter the customer's name (at most {NAME_MAX_CHARS} characters).")
    if not _COUNTRY.match(country):
        raise BillingError("Country must be a two-letter ISO code, such as DE or JP.")
    with transaction(session):
        if session.scalar(select(Customer.id).where(Customer.email == email)) is not None:
            raise StateConflict(f"A customer with the email {email} already exists.")
        customer = Customer(
            public_id=new_public_id("cus"),
            email=email,
            name=name,
            company=(company or "").strip() or None,
            country=country,
            tax_id=(tax_id or "").strip() or None,
            address=(address or "").strip() or None,
            sandbox=sandbox,
            created_at=utcnow(),
        )
        session.add(customer)
        session.flush()
        audit.record(session, actor, "customer.create", "customer", customer.public_id, after=_customer_view(customer))
    return customer


def sandbox_customers(session: Session, actor: Actor, limit: int = 200) -> list[Customer]:
    require(actor, Action.SANDBOX)
    stmt = select(Customer).where(Customer.sandbox.is_(True)).order_by(Customer.created_at.desc()).limit(limit)
    return list(session.scalars(stmt))


def _get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"There is no customer {customer_id}.")
    return customer


# --- orders ------------------------------------------------------------------------------------


def create_order(
    session: Session,
    actor: Actor,
    *,
    customer_id: int,
    amount: int | str,
    method: Method | str,
    pricing: Pricing,
    now: datetime | None = None,
) -> Order:
    """Open a pending order. The quote is recomputed here; nothing priced by a caller is trusted."""
    priced = quote(amount, method, pricing)
    now = now or utcnow()
    with transaction(session):
        customer = _get_customer(session, customer_id)
        require(actor, Action.SANDBOX if customer.sandbox else Action.CREATE_ORDER)
        order = Order(
            public_id=new_public_id("ord"),
            customer_id=customer.id,
            plan=priced.plan,
            amount_cents=priced.amount_cents,
            credits=priced.credits,
            fee_cents=priced.fee_cents,
            total_cents=priced.total_cents,
            currency="USD",
            method=priced.method,
            pricing_version=priced.pricing_version,
            status=OrderStatus.PENDING,
            sandbox=customer.sandbox,
            created_at=now,
            expires_at=now + ORDER_TTL,
        )
        session.add(order)
        session.flush()
        rollup._record_created(session, order, customer)
        audit.record(session, actor, "order.create", "order", order.public_id, after=_order_view(order))
    return order


def _get_order(session: Session, order_id: int | str) -> Order:
    """An order by numeric id or public id, freshly read (never a stale copy from the session)."""
    if isinstance(order_id, int):
        order = session.get(Order, order_id, populate_existing=True)
    elif len(order_id) > PUBLIC_ID_MAX_CHARS:  # no order has such an id: not worth a query
        order = None
    else:
        stmt = select(Order).where(Order.public_id == order_id.strip()).execution_options(populate_existing=True)
        order = session.scalar(stmt)
    if order is None:
        raise NotFound(f"There is no order {str(order_id)[:64]!r}.")
    return order


def _payment_request(session: Session, order: Order) -> PaymentRequest:
    customer = _get_customer(session, order.customer_id)
    return PaymentRequest(
        order_public_id=order.public_id,
        amount_cents=order.total_cents,
        currency=order.currency,
        customer_email=customer.email,
        description=f"{money.format_credits(order.credits)} credits ({order.plan.value})",
    )


def attach_payment(session: Session, actor: Actor, order_id: int | str, payment: PaymentStatus) -> Order:
    """Record the gateway payment opened for an unpaid order (its provider reference)."""
    with transaction(session):
        order = _get_order(session, order_id)
        require(actor, Action.SANDBOX if order.sandbox else Action.COMPLETE_ORDER)
        if order.status not in COMPLETABLE:
            raise StateConflict(f"Order {order.public_id} is {order.status.value}; it takes no new payment.")
        before = order.provider_ref
        order.provider_ref = payment.ref
        audit.record(
            session,
            actor,
            "order.payment_created",
            "order",
            order.public_id,
            before={"provider_ref": before},
            after={"provider_ref": payment.ref, "gateway": payment.as_dict()},
        )
    return order


def complete_order(
    session: Session,
    actor: Actor,
    order_id: int | str,
    *,
    settings: Settings,
    reason: str,
    payment: PaymentStatus | None = None,
    manual_reference: str | None = None,
    from_file: bool = False,
) -> Completion | SentForApproval:
    """Mark a pending (or expired) order paid, grant its credits once and issue its invoice.

    Proof is either ``payment`` (what the gateway reports, checked against the order) or, for
    finance only, a ``manual_reference`` from the provider (Airwallex, Alipay, bank transfer). With
    ``[credits] manual_completion_approval`` on, a manual completion becomes a proposal that others in
    finance approve (``credits.approvals.approve``); a settlement file's row (``from_file``) is the
    provider's own record of the payment, not a person's word, and completes at once.
    """
    reason = audit.reason_given(reason, "Give a reason for completing the order.")
    manual_reference = (manual_reference or "").strip() or None
    if manual_reference is not None and len(manual_reference) > REFERENCE_MAX_CHARS:
        raise BillingError(f"A provider reference is at most {REFERENCE_MAX_CHARS} characters.")
    if payment is None and manual_reference is None:
        raise BillingError("Completing an order needs the gateway's payment or a provider reference.")
    if manual_reference is not None and len(manual_reference) > REFERENCE_MAX_CHARS:
        raise BillingError(f"A provider reference is at most {REFERENCE_MAX_CHARS} characters.")

    with transaction(session):
        order = _get_order(session, order_id)
        if order.sandbox:
            require(actor, Action.SANDBOX)
        elif payment is None:
            require(actor, Action.COMPLETE_ORDER_MANUALLY)
        else:
            require(actor, Action.COMPLETE_ORDER)
        if payment is None and not order.sandbox and not from_file and settings.credits.manual_completion_approval:
            if not states.applies(OrderAction.COMPLETE_MANUALLY, order.status):
                raise _already(order)
            return _propose_for_order(
                session, actor, order, ApprovalKind.COMPLETION,
                amount_cents=order.total_cents, credits=order.credits, reason=reason, policy=settings.credits,
                now=utcnow(), reference=manual_reference,
            )  # fmt: skip
        return _complete(session, actor, order, settings, reason=reason, payment=payment, reference=manual_reference)


def _complete_approved(session: Session, actor: Actor, proposal: Approval, settings: Settings) -> Completion:
    """The manual completion an approved proposal asked for, in the approval's transaction."""
    require(actor, Action.COMPLETE_ORDER_MANUALLY)
    order = _get_order(session, proposal.order_id)
    approval = {
        "approval": proposal.id,
        "proposed_by": proposal.proposed_by,
        "approved_by": [x["email"] for x in proposal.approved_by],
    }
    return _complete(
        session, actor, order, settings, reason=proposal.reason, payment=None, reference=proposal.reference,
        approval=approval,
    )  # fmt: skip


def _complete(
    session: Session,
    actor: Actor,
    order: Order,
    settings: Settings,
    *,
    reason: str,
    payment: PaymentStatus | None,
    reference: str | None,
    approval: dict | None = None,
) -> Completion:
    """The completion itself, in the caller's transaction, the actor's role checked by the caller."""
    if payment is not None:
        _check_payment(order, payment)
    completing = OrderAction.COMPLETE_MANUALLY if payment is None else OrderAction.COMPLETE_FROM_GATEWAY
    if not states.applies(completing, order.status):
        raise _already(order)

    now = utcnow()
    public_id = order.public_id
    manual_reference = reference if payment is None else None
    reference = payment.ref if payment is not None else reference
    before = _order_view(order)
    won = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(states.ACTIONS[completing].statuses))
        .values(
            status=OrderStatus.PAID,
            paid_at=now,
            completed_at=now,
            completed_by=actor.email,
            completion_reason=reason,
            paid_amount_cents=payment.amount_cents if payment is not None else order.total_cents,
            provider_ref=reference,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        session.refresh(order)
        raise _already(order)
    session.refresh(order)

    customer = _get_customer(session, order.customer_id)
    topup = _entry(
        order.customer_id, LedgerKind.TOPUP, CreditPool.PAID, order.credits, order.amount_cents,
        by=actor.email, at=now, order_id=order.id,
    )  # fmt: skip
    try:
        _post(session, [topup])
    except IntegrityError:
        raise StateConflict(f"Order {public_id} has already been credited.") from None
    invoice = _issue_invoice(session, order, customer, settings, plan_name(order.plan))
    rollup._record_paid(session, order, customer)
    after = _order_view(order) | {"invoice": invoice.number}
    audit.record(
        session,
        actor,
        "order.complete",
        "order",
        order.public_id,
        reason=reason,
        before=before,
        after=after
        | {"proof": payment.as_dict() if payment else {"manual_reference": manual_reference}}
        | (approval or {}),
    )
    balance = _customer_balance(session, order.customer_id)
    return Completion(order.public_id, invoice.number, order.credits, balance)


def fail_order(session: Session, actor: Actor, order_id: int | str, *, payment: PaymentStatus, reason: str) -> Order:
    """Record that the gateway declined the order's payment."""
    reason = audit.reason_given(reason, "Give a reason for failing the order.")
    with transaction(session):
        order = _get_order(session, order_id)
        require(actor, Action.SANDBOX if order.sandbox else Action.FAIL_ORDER)
        if payment.state is not PaymentState.FAILED:
            raise PaymentMismatch(f"The gateway says the payment is {payment.state.value}, not failed.")
        if order.status is not OrderStatus.PENDING:
            raise StateConflict(f"Order {order.public_id} is {order.status.value}, not pending.")
        before = _order_view(order)
        order.status = OrderStatus.FAILED
        order.failure_reason = payment.detail or reason
        audit.record(
            session,
            actor,
            "order.fail",
            "order",
            order.public_id,
            reason=reason,
            before=before,
            after=_order_view(order) | {"gateway": payment.as_dict()},
        )
    return order


def _check_payment(order: Order, payment: PaymentStatus) -> None:
    if payment.order_public_id and payment.order_public_id != order.public_id:
        raise PaymentMismatch(
            f"Payment {payment.ref} belongs to order {payment.order_public_id}, not {order.public_id}."
        )
    if payment.state is not PaymentState.SUCCEEDED:
        raise PaymentMismatch(f"The gateway says payment {payment.ref} is {payment.state.value}, not succeeded.")
    if payment.currency.upper() != order.currency:
        raise PaymentMismatch(
            f"Payment {payment.ref} was made in {payment.currency.upper()}, but the order is in {order.currency}."
        )
    if payment.amount_cents != order.total_cents:
        raise PaymentMismatch(
            f"Payment {payment.ref} is for {money.format_cents(payment.amount_cents)}, "
            f"but the order's total is {money.format_cents(order.total_cents)}."
        )


def _already(order: Order) -> StateConflict:
    if order.status in PAID_STATUSES:
        who = f" by {order.completed_by}" if order.completed_by else ""
        when = f" at {order.paid_at:%Y-%m-%d %H:%M} UTC" if order.paid_at else ""
        since = "" if order.status is OrderStatus.PAID else f" (and {order.status.value.replace('_', ' ')} since)"
        return StateConflict(f"Order {order.public_id} is already paid{who}{when}{since}; no credits were added.")
    return StateConflict(f"Order {order.public_id} is {order.status.value} and cannot be completed.")


# --- ledger ------------------------------------------------------------------------------------


def _customer_balance(session: Session, customer_id: int) -> int:
    """Credits (hundredths) the customer holds: the sum of their ledger."""
    stmt = select(func.coalesce(func.sum(LedgerEntry.credits), 0)).where(LedgerEntry.customer_id == customer_id)
    return int(session.scalar(stmt))


def _invoice_for(session: Session, order_id: int) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.order_id == order_id, Invoice.kind == InvoiceKind.INVOICE)
    return session.scalar(stmt)


# --- views for audit events --------------------------------------------------------------------


def _order_view(order: Order) -> dict:
    return {
        "status": order.status.value,
        "amount_cents": order.amount_cents,
        "fee_cents": order.fee_cents,
        "total_cents": order.total_cents,
        "credits": order.credits,
        "method": order.method.value,
        "provider_ref": order.provider_ref,
    }


def _customer_view(customer: Customer) -> dict:
    return buyer_snapshot(customer) | {"sandbox": customer.sandbox}
