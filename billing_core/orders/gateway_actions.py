"""What support does with an order at its gateway: check, complete from proof, resume, expire, cancel.

Gateway calls happen outside database transactions (a slow provider never holds a lock); what
they return is then recorded in one transaction with its audit event. A gateway error raises
GatewayError before anything here is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, GatewayError, StateConflict, shown_to_people
from billing_core.core.models import COMPLETABLE, GatewayCheck, Order, OrderStatus, utcnow
from billing_core.orders import states
from billing_core.orders.lifecycle import ORDER_TTL, Completion, _get_order, _payment_request, complete_order
from billing_core.orders.states import OrderAction
from billing_core.payments import Gateway, PaymentState, PaymentStatus, registry
from billing_core.pricing.catalog import Method

MAX_CHECKS = 200  # orders per "check these": what one page of a list shows


def record_check(session: Session, actor: Actor, order: Order, status: PaymentStatus) -> GatewayCheck:
    """Keep what the gateway said, in the caller's transaction (reconcile records its checks too)."""
    require(actor, Action.CHECK_PAYMENT)
    check = GatewayCheck(
        order_id=order.id,
        checked_at=status.checked_at,
        checked_by=actor.email,
        provider=status.provider,
        ref=status.ref,
        state=status.state.value,
        amount_cents=status.amount_cents,
        currency=status.currency,
        refunded_cents=status.refunded_cents,
        detail=status.detail or None,
    )
    session.add(check)
    order.gateway_state, order.gateway_checked_at = check.state, check.checked_at
    return check


def _reference(session: Session, actor: Actor, order_id: int | str, action: Action) -> tuple[Order, str]:
    require(actor, action)
    order = _get_order(session, order_id)
    if not order.provider_ref:
        raise StateConflict(f"Order {order.public_id} has no payment at the gateway yet; resume payment to create one.")
    ref = order.provider_ref
    session.rollback()  # end the read before talking to the gateway
    return order, ref


def check_payment(session: Session, actor: Actor, order_id: int | str, gateway: Gateway) -> PaymentStatus:
    """Ask the gateway for the payment's true status and record the answer on the order."""
    order, ref = _reference(session, actor, order_id, Action.CHECK_PAYMENT)
    status = gateway.fetch_status(ref)
    with transaction(session):
        order = _get_order(session, order.id)
        record_check(session, actor, order, status)
        audit.record(session, actor, "order.check_payment", "order", order.public_id, after=status.as_dict())
    return status


@dataclass(frozen=True)
class CheckResult:
    """One order of a bulk check: what the gateway said (``state``) or why it could not be asked."""

    public_id: str
    state: str | None
    amount_cents: int | None
    currency: str
    problem: str = ""

    @property
    def words(self) -> str:
        if self.problem:
            return self.problem
        paid = money.format_cents(self.amount_cents or 0, self.currency.upper())
        return f"The gateway says {self.state}: {paid}."


def check_payments(
    database: Database,
    actor: Actor,
    settings: Settings,
    public_ids: Sequence[str],
    *,
    gateway_for: Callable[..., Gateway] = registry.gateway_for,
    progress: Callable[[int, int], None] | None = None,
) -> list[CheckResult]:
    """Ask the gateway about each order in turn (``check_payment``: the call outside any transaction,
    the answer recorded on the order with its audit event); one order's failure is its own result."""
    require(actor, Action.CHECK_PAYMENT)
    if len(public_ids) > MAX_CHECKS:
        raise BillingError(f"Check at most {MAX_CHECKS} orders at once; narrow the list.")
    gateways: dict[tuple[Method, bool], Gateway | GatewayError] = {}
    results = []
    for done, public_id in enumerate(public_ids, start=1):
        results.append(_check_one(database, actor, settings, public_id, gateway_for, gateways))
        if progress:
            progress(done, len(public_ids))
    return results


def checks_summary(results: Sequence[CheckResult], *, skipped: int = 0) -> str:
    """A bulk check in one sentence: how many the gateway says are paid, pending, failed, or could not be asked."""
    counts: dict[str, int] = {}
    for result in results:
        key = "could not be asked" if result.problem else result.state or "unknown"
        counts[key] = counts.get(key, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda item: -item[1]))
    tail = f"; {skipped} without a payment at the gateway were not asked" if skipped else ""
    return f"Asked the gateway about {len(results)} orders: {parts or 'none'}{tail}. The list shows each answer."


def _check_one(database, actor, settings, public_id, gateway_for, gateways) -> CheckResult:
    try:
        with database.session() as session:
            order = _get_order(session, public_id)
            key = (order.method, bool(order.sandbox))
            if key not in gateways:
                try:
                    gateways[key] = gateway_for(order.method, settings, database, sandbox=key[1])
                except GatewayError as exc:
                    gateways[key] = exc
            gateway = gateways[key]
            if isinstance(gateway, GatewayError):
                return CheckResult(public_id, None, None, "", str(gateway))
            seen = check_payment(session, actor, public_id, gateway)
    except BillingError as exc:
        return CheckResult(public_id, None, None, "", str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken answer must not end the check for the others
        return CheckResult(public_id, None, None, "", shown_to_people(exc, f"checking order {public_id}"))
    return CheckResult(public_id, seen.state.value, seen.amount_cents, seen.currency)


def complete_from_gateway(
    session: Session, actor: Actor, order_id: int | str, gateway: Gateway, *, settings: Settings, reason: str
) -> Completion:
    """Complete an order when its gateway says the payment succeeded for the right amount and currency."""
    require(actor, Action.COMPLETE_ORDER)
    reason = audit.reason_given(reason, "Give a reason for completing the order.")
    status = check_payment(session, actor, order_id, gateway)
    return complete_order(session, actor, order_id, settings=settings, reason=reason, payment=status)


def discrepancies(order: Order, status: PaymentStatus | None, other_successes: int = 0) -> list[str]:
    """Where our books and the gateway disagree, in words support can act on."""
    if status is None:
        return []
    found = []
    ours = order.status
    if status.state is PaymentState.SUCCEEDED and ours in COMPLETABLE:
        found.append(f"Paid at the gateway but {ours.value} here: complete the order.")
    if status.state in (PaymentState.PENDING, PaymentState.FAILED, PaymentState.CANCELED) and ours is OrderStatus.PAID:
        found.append(f"Paid here but the gateway says {status.state.value}.")
    if status.currency.upper() != order.currency:
        found.append(f"Currency differs: the gateway has {status.currency.upper()}, the order {order.currency}.")
    if status.state is PaymentState.SUCCEEDED and status.amount_cents != order.total_cents:
        found.append(
            f"Amount differs: the gateway has {money.format_cents(status.amount_cents)}, "
            f"the order {money.format_cents(order.total_cents)}."
        )
    if status.refunded_cents and ours is OrderStatus.PAID:
        found.append(f"The gateway shows {money.format_cents(status.refunded_cents)} refunded; the order does not.")
    if other_successes:
        found.append(f"Paid twice: {other_successes} other payment(s) for this order succeeded at the gateway.")
    return found


def _successful_refs(session: Session, order: Order) -> set[str]:
    """Distinct payment references the gateway has reported as succeeded for this order."""
    stmt = select(GatewayCheck.ref).where(
        GatewayCheck.order_id == order.id, GatewayCheck.state == PaymentState.SUCCEEDED.value
    )
    return set(session.scalars(stmt.distinct()))


@dataclass(frozen=True)
class Resumed:
    payment: PaymentStatus
    message: str  # what to send the customer


def resume_payment(session: Session, actor: Actor, order_id: int | str, gateway: Gateway) -> Resumed:
    """Open a fresh payment for an unpaid order, in place of its last one.

    The last payment is asked first (a succeeded one means: complete the order instead) and cancelled,
    so the customer cannot pay both. The new payment's idempotency key names the payment it replaces:
    a double click or a second tab resuming the same order gets the same new payment, not another one.
    """
    require(actor, Action.RESUME_PAYMENT)
    order = _get_order(session, order_id)
    if not states.applies(OrderAction.RESUME_PAYMENT, order.status):
        raise StateConflict(f"Order {order.public_id} is {order.status.value}; only an unpaid order takes a payment.")
    request = _payment_request(session, order)
    previous = order.provider_ref
    session.rollback()
    if previous:
        last = gateway.fetch_status(previous)
        if last.state is PaymentState.PENDING:
            try:
                last = gateway.cancel(previous)
            except GatewayError:
                last = gateway.fetch_status(previous)  # paid or cancelled meanwhile: its state says which
                if last.state is PaymentState.PENDING:
                    raise  # still open: a second payment beside it could be paid twice
        if last.state is PaymentState.SUCCEEDED:
            raise StateConflict(f"Payment {previous} already succeeded at the gateway: complete the order instead.")
    payment = gateway.create_payment(request, idempotency_key=f"resume-{order.public_id}-{previous or 'first'}")
    replaced = Order.provider_ref == previous if previous else Order.provider_ref.is_(None)
    with transaction(session):
        now = utcnow()
        won = session.execute(
            update(Order)
            .where(
                Order.id == order.id,
                Order.status.in_(states.ACTIONS[OrderAction.RESUME_PAYMENT].statuses),
                replaced,
            )
            .values(provider_ref=payment.ref, status=OrderStatus.PENDING, expires_at=now + ORDER_TTL)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            current = session.scalar(select(Order.provider_ref).where(Order.id == order.id))
    if won != 1:
        if current != payment.ref:
            left = _cancel_orphan(gateway, payment)
            raise StateConflict(
                f"Order {order.public_id} changed meanwhile (resumed, paid or closed by someone else); "
                f"nothing was recorded. Reload it.{left}"
            )
        # A second click resuming from the same last payment: the first one recorded this very payment.
        payment = gateway.fetch_status(payment.ref)
    else:
        with transaction(session):
            audit.record(
                session,
                actor,
                "order.resume_payment",
                "order",
                order.public_id,
                before={"status": order.status.value, "provider_ref": previous},
                after={"status": OrderStatus.PENDING.value, "provider_ref": payment.ref, "gateway": payment.as_dict()},
            )
    message = (
        f"Your order {order.public_id} for {money.format_cents(order.total_cents)} "
        f"({money.format_credits(order.credits)} credits) is ready to pay again. "
        f"Open Billing in your account and choose “Complete Order”; payment reference {payment.ref}. "
        f"It stays open for {int(ORDER_TTL.total_seconds() // 3600)} hours."
    )
    return Resumed(payment, message)


def _cancel_orphan(gateway: Gateway, payment: PaymentStatus) -> str:
    """Cancel a payment no order points at (opened by a resume that lost its race); what is left to do."""
    if payment.state is not PaymentState.PENDING:
        return ""
    try:
        gateway.cancel(payment.ref)
    except GatewayError:
        return f" Payment {payment.ref}, opened for it meanwhile, could not be cancelled: cancel it at the gateway."
    return ""


def expire_order(session: Session, actor: Actor, order_id: int | str, gateway: Gateway | None, *, reason: str) -> Order:
    """Close a pending order as expired, unless the gateway says it was paid."""
    return _close(session, actor, order_id, gateway, reason, OrderStatus.EXPIRED, Action.EXPIRE_ORDER)


def cancel_order(session: Session, actor: Actor, order_id: int | str, gateway: Gateway | None, *, reason: str) -> Order:
    """Cancel an unpaid order (and its open payment at the gateway), unless the payment succeeded."""
    return _close(session, actor, order_id, gateway, reason, OrderStatus.CANCELLED, Action.CANCEL_ORDER)


def _close(
    session: Session,
    actor: Actor,
    order_id: int | str,
    gateway: Gateway | None,
    reason: str,
    target: OrderStatus,
    action: Action,
) -> Order:
    require(actor, action)
    reason = audit.reason_given(reason, "Give a reason.")
    order = _get_order(session, order_id)
    kind = OrderAction.EXPIRE if target is OrderStatus.EXPIRED else OrderAction.CANCEL
    if not states.applies(kind, order.status):
        raise StateConflict(f"Order {order.public_id} is {order.status.value}; it cannot become {target.value}.")
    expected, ref = order.status, order.provider_ref
    session.rollback()

    status = None
    if ref and gateway is not None:
        status = gateway.fetch_status(ref)
        if status.state is PaymentState.SUCCEEDED:
            with transaction(session):
                record_check(session, actor, _get_order(session, order.id), status)
            raise StateConflict(
                f"The gateway says payment {ref} succeeded: complete order {order.public_id} instead of "
                f"marking it {target.value}."
            )
        if target is OrderStatus.CANCELLED and status.state is PaymentState.PENDING:
            status = gateway.cancel(ref)

    with transaction(session):
        won = session.execute(
            update(Order)
            .where(Order.id == order.id, Order.status == expected)
            .values(status=target)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            raise StateConflict(f"Order {order.public_id} changed meanwhile; nothing was recorded. Reload it.")
        fresh = _get_order(session, order.id)
        session.refresh(fresh)
        if status is not None:
            record_check(session, actor, fresh, status)
        audit.record(
            session,
            actor,
            action.value,
            "order",
            order.public_id,
            reason=reason,
            before={"status": expected.value},
            after={
                "status": target.value,
                "gateway": status.as_dict() if status else "not asked: no payment reference or no gateway API",
            },
        )
    return fresh


def checks_for(session: Session, actor: Actor, order_id: int, limit: int = 50) -> list[GatewayCheck]:
    require(actor, Action.READ_ORDERS)
    stmt = (
        select(GatewayCheck)
        .where(GatewayCheck.order_id == order_id)
        .order_by(GatewayCheck.checked_at.desc(), GatewayCheck.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
