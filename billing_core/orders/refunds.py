"""Refunds, full or partial: a durable intent first, then money back through the gateway, then the books.

1. Request: under the order's row lock the amount is checked against paid − refunded − pending, and a
   ``refunds`` row is written as ``requested`` with its idempotency key; that transaction commits.
2. The gateway is asked with that key, outside any transaction.
3. Its answer is recorded in one transaction: succeeded (credit note, ledger entry, revenue rollup,
   order status, audit), failed (the gateway's sentence, nothing else), or unknown (a timeout: the
   refund stays pending and says what to do).

``reconcile_refunds`` finishes pending refunds by asking the gateway about each key (and sending it
again with the same key when the gateway has none), so a crash between 2 and 3 loses nothing and
a rerun or a race with a live refund pays nothing twice.

The key is derived from what the requester saw (the order, what was refunded or pending then, the
amount) and how many times the gateway refused that same request: two people refunding the same part
of an order at the same moment make one refund, and so does a stale tab repeating one that succeeded.
A refund that would take back credits the customer has already spent is refused unless finance
overrides it explicitly; the balance may then go negative, and the audit event says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import CreditPolicy, Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import (
    BillingError,
    GatewayError,
    GatewayUnreachable,
    PaymentMismatch,
    StateConflict,
    shown_to_people,
)
from billing_core.core.models import (
    Approval,
    ApprovalKind,
    CreditPool,
    Invoice,
    LedgerKind,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    utcnow,
)
from billing_core.credits.ledger import _balance, _entry, _post, _share
from billing_core.credits.proposals import SentForApproval, _propose_for_order, _waiting_refunds
from billing_core.invoices.issuing import _issue_credit_note
from billing_core.orders import states
from billing_core.orders.lifecycle import _customer_balance, _get_order, _invoice_for
from billing_core.orders.states import OrderAction
from billing_core.payments import Gateway, RefundResult, RefundState, registry
from billing_core.revenue import rollup

RECONCILE_REASON = "refunds reconcile"
WHAT_TO_DO = (
    "Use “Finish pending refunds” on the order, or run `python -m billing_core refunds reconcile`: "
    "it asks the gateway and records what it says."
)

GatewayFor = Callable[..., Gateway]


@dataclass(frozen=True)
class PendingRefund:
    """A refund asked of the gateway whose outcome is not recorded yet."""

    amount_cents: int
    by: str
    at: datetime

    def sentence(self) -> str:
        return (
            f"a refund of {money.format_cents(self.amount_cents)} requested by {self.by} "
            f"at {self.at:%Y-%m-%d %H:%M} UTC is still pending"
        )


@dataclass(frozen=True)
class Refunded:
    """What a refund request (or a reconcile of it) came to."""

    order_public_id: str
    amount_cents: int
    credits_taken_back: int
    credit_note_number: str | None
    order_status: OrderStatus
    balance: int
    status: RefundStatus
    message: str
    repeated: bool = False  # this refund had been finished before: nothing was done now


@dataclass(frozen=True)
class RefundPlan:
    """What a refund of ``amount_cents`` would do, before anything is done."""

    amount_cents: int
    paid_cents: int
    refunded_cents: int
    pending_cents: int
    credits_taken_back: int
    balance: int  # the customer's paid credits: a refund takes back nothing else
    full: bool
    pending: tuple[PendingRefund, ...] = ()

    @property
    def remaining_cents(self) -> int:
        return self.paid_cents - self.refunded_cents - self.pending_cents

    @property
    def committed_cents(self) -> int:
        """Refunded or pending: what the requester saw, which the refund's idempotency key names."""
        return self.refunded_cents + self.pending_cents

    @property
    def spends_used_credits(self) -> bool:
        return self.credits_taken_back > self.balance


@dataclass(frozen=True)
class _Totals:
    refunded_cents: int
    pending_cents: int
    credits_committed: int  # taken back by succeeded refunds or reserved by pending ones
    pending: tuple[PendingRefund, ...]


def _totals(session: Session, order: Order) -> _Totals:
    rows = session.execute(
        select(Refund.status, Refund.amount_cents, Refund.credits, Refund.created_by, Refund.created_at)
        .where(Refund.order_id == order.id)
        .order_by(Refund.created_at, Refund.id)
    ).all()
    by = {status: [r for r in rows if r.status is status] for status in RefundStatus}
    live = by[RefundStatus.SUCCEEDED] + by[RefundStatus.REQUESTED]
    return _Totals(
        refunded_cents=sum(r.amount_cents for r in by[RefundStatus.SUCCEEDED]),
        pending_cents=sum(r.amount_cents for r in by[RefundStatus.REQUESTED]),
        credits_committed=sum(r.credits for r in live),
        pending=tuple(PendingRefund(r.amount_cents, r.created_by, r.created_at) for r in by[RefundStatus.REQUESTED]),
    )


def _paid(order: Order) -> int:
    return order.paid_amount_cents if order.paid_amount_cents is not None else order.total_cents


def _cents(amount: int | str | None, paid: int, committed: int) -> int:
    """The amount asked: typed text or cents; nothing means all that was refundable as the requester saw it."""
    if amount is None or amount == "":
        return paid - committed
    return money.parse_amount(amount) if isinstance(amount, str) else int(amount)


def _plan(session: Session, order: Order, cents: int, *, lock: bool = False) -> RefundPlan:
    """Check a refund against the order and the customer's paid credits; raise if it cannot be done now.
    ``lock`` holds the customer's balance for the transaction, so no usage drawn meanwhile slips past."""
    if not states.applies(OrderAction.REFUND, order.status):
        raise StateConflict(f"Order {order.public_id} is {order.status.value}; only a paid order can be refunded.")
    paid = _paid(order)
    totals = _totals(session, order)
    remaining = paid - totals.refunded_cents - totals.pending_cents
    if cents <= 0:
        if totals.pending and remaining <= 0:
            raise StateConflict(
                f"Nothing is left to refund on order {order.public_id}: "
                + "; ".join(p.sentence() for p in totals.pending)
                + f". {WHAT_TO_DO}"
            )
        raise BillingError("The refund must be more than zero.")
    if cents > remaining:
        pending = ""
        if totals.pending:
            pending = " Also, " + "; ".join(p.sentence() for p in totals.pending) + "."
        raise BillingError(
            f"A refund of {money.format_cents(cents)} is more than the {money.format_cents(remaining)} still "
            f"refundable (paid {money.format_cents(paid)}, already refunded {money.format_cents(totals.refunded_cents)}"
            f", pending {money.format_cents(totals.pending_cents)}).{pending}"
        )
    full = cents == remaining
    credits_left = order.credits - totals.credits_committed
    if full:
        credits = credits_left
    else:
        share = money.to_decimal(order.credits) * cents / paid  # hundredths, exact proportion
        credits = min(credits_left, money.from_decimal(share))
    balance = _balance(session, order.customer_id, lock=lock).paid  # promotional credits are never refunded
    return RefundPlan(cents, paid, totals.refunded_cents, totals.pending_cents, credits, balance, full, totals.pending)


def needs_approval(amount_cents: int, policy: CreditPolicy) -> bool:
    """Whether a refund of this much waits for an approval instead of being sent."""
    return amount_cents > policy.refund_approval_above_cents


def plan_refund(session: Session, actor: Actor, order_id: int | str, amount: int | str | None) -> RefundPlan:
    """What refunding ``amount`` (cents or typed text; None = all that remains) of the order would do."""
    require(actor, Action.REFUND_ORDER)
    order = _get_order(session, order_id)
    totals = _totals(session, order)
    return _plan(session, order, _cents(amount, _paid(order), totals.refunded_cents + totals.pending_cents))


def refunds_for(session: Session, actor: Actor, order_id: int) -> list[Refund]:
    """Every refund of the order, pending and failed ones included, oldest first."""
    require(actor, Action.VIEW_REFUNDS)
    stmt = select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at, Refund.id)
    return list(session.scalars(stmt))


# --- one refund: request, ask, record -------------------------------------------------------------


@dataclass(frozen=True)
class _Intent:
    refund_id: int
    existing: bool  # the same request was made before (a double click, a second tab, a retry)


def _lock_order(session: Session, order_id: int | str) -> Order:
    """The order, locked for this transaction (PostgreSQL row lock; SQLite's write lock is already held)."""
    column = Order.id if isinstance(order_id, int) else Order.public_id
    key = order_id if isinstance(order_id, int) else order_id.strip()
    stmt = select(Order).where(column == key).with_for_update().execution_options(populate_existing=True)
    order = session.scalar(stmt)
    if order is None:
        _get_order(session, order_id)  # raises NotFound with the usual sentence
    return order


def _key(order: Order, seen_cents: int, cents: int, *, attempt: int) -> str:
    return f"billing-ops-refund-{order.public_id}-{seen_cents}-{cents}-{attempt}"


def _same_request(session: Session, order: Order, seen_cents: int, cents: int) -> list[Refund]:
    """The refunds of the order made by this same request (same view, same amount): its attempts, oldest first.

    Only this request's own refused attempts let it be asked again (with the next key); another
    refund failing meanwhile does not, so a stale tab repeating a refund that succeeded gets the first one.
    """
    prefix = _key(order, seen_cents, cents, attempt=0)[:-1]
    refunds = session.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id))
    return [r for r in refunds if r.idempotency_key.startswith(prefix) and r.idempotency_key[len(prefix) :].isdigit()]


def _attempt(refund: Refund) -> int:
    return int(refund.idempotency_key.rsplit("-", 1)[1])


def _request(
    session: Session,
    actor: Actor,
    order_id: int | str,
    *,
    reason: str,
    amount: int | str | None,
    override: bool,
    seen_cents: int | None,
    policy: CreditPolicy,
) -> _Intent | SentForApproval:
    """Write the refund intent (or find the same one made before), committed before the gateway is asked;
    a refund above ``policy.refund_approval_above_cents`` becomes a proposal instead."""
    if seen_cents is None:  # what the caller saw is what the order held when it asked
        order = _get_order(session, order_id)
        totals = _totals(session, order)
        seen_cents = totals.refunded_cents + totals.pending_cents
    with transaction(session):
        order = _lock_order(session, order_id)
        cents = _cents(amount, _paid(order), seen_cents)
        same = _same_request(session, order, seen_cents, cents)
        live = [r for r in same if r.status is not RefundStatus.FAILED]
        if live:
            return _Intent(live[0].id, existing=True)
        key = _key(order, seen_cents, cents, attempt=max((_attempt(r) for r in same), default=-1) + 1)
        plan = _plan(session, order, cents, lock=True)
        _check_sendable(session, order, plan, override)
        if needs_approval(cents, policy):
            return _propose(session, actor, order, plan, reason=reason, override=override, policy=policy)
        refund = _write_intent(session, actor, order, plan, key=key, reason=reason, override=override)
    return _Intent(refund.id, existing=False)


def _check_sendable(session: Session, order: Order, plan: RefundPlan, override: bool) -> None:
    if plan.spends_used_credits and not override:
        raise StateConflict(
            f"This refund takes back {money.format_credits(plan.credits_taken_back)} credits but the customer "
            f"has {money.format_credits(plan.balance)} paid credits left; they have used the rest. "
            "Finance can override."
        )
    if not order.provider_ref:
        raise StateConflict(f"Order {order.public_id} has no payment reference to refund at the gateway.")
    if _invoice_for(session, order.id) is None:
        raise StateConflict(f"Order {order.public_id} has no invoice to credit; nothing was refunded.")


def _write_intent(
    session: Session,
    actor: Actor,
    order: Order,
    plan: RefundPlan,
    *,
    key: str,
    reason: str,
    override: bool,
    requested_by: str | None = None,
    approval: dict | None = None,
) -> Refund:
    """The ``requested`` refund row and its audit event, in the caller's transaction (the order held)."""
    refund = Refund(
        order_id=order.id,
        amount_cents=plan.amount_cents,
        credits=plan.credits_taken_back,
        provider_ref=order.provider_ref,
        created_at=utcnow(),
        created_by=requested_by or actor.email,
        reason=reason,
        override=override and plan.spends_used_credits,
        status=RefundStatus.REQUESTED,
        idempotency_key=key,
    )
    session.add(refund)
    session.flush()
    audit.record(
        session,
        actor,
        "order.refund.request",
        "order",
        order.public_id,
        reason=reason,
        before={"status": order.status.value, "refunded_cents": plan.refunded_cents, "balance": plan.balance},
        after={
            "refund_cents": plan.amount_cents,
            "credits_taken_back": plan.credits_taken_back,
            "pending_cents": plan.pending_cents + plan.amount_cents,
            "idempotency_key": key,
            "override": refund.override,
        }
        | (approval or {}),
    )
    return refund


# --- refunds above the threshold: a proposal first, the refund when it is approved -----------------


def _propose(
    session: Session,
    actor: Actor,
    order: Order,
    plan: RefundPlan,
    *,
    reason: str,
    override: bool,
    policy: CreditPolicy,
) -> SentForApproval:
    """A refund proposal (or the same one already waiting); what other waiting proposals of the order would
    refund is not refundable again."""
    now = utcnow()
    others = [p for p in _waiting_refunds(session, order.id, now) if p.amount_cents != plan.amount_cents]
    waiting = sum(p.amount_cents for p in others)
    if others and plan.amount_cents + waiting > plan.remaining_cents:
        listed = "; ".join(
            f"proposal {p.id} of {money.format_cents(p.amount_cents)} by {p.proposed_by}" for p in others
        )
        raise BillingError(
            f"A refund of {money.format_cents(plan.amount_cents)} does not fit beside the refunds waiting for "
            f"approval ({listed}): {money.format_cents(plan.remaining_cents - waiting)} is left to propose."
        )
    return _propose_for_order(
        session, actor, order, ApprovalKind.REFUND,
        amount_cents=plan.amount_cents, credits=-plan.credits_taken_back, reason=reason, policy=policy, now=now,
        override=override and plan.spends_used_credits,
    )  # fmt: skip


def _approval_key(approval_id: int) -> str:
    return f"billing-ops-refund-approval-{approval_id}"


def _request_approved(session: Session, actor: Actor, proposal: Approval) -> int:
    """The refund intent of an approved proposal, in the approval's transaction (the proposal held): checked
    again against the order as it is now, keyed by the proposal, so one proposal is one refund."""
    require(actor, Action.REFUND_ORDER)
    order = _lock_order(session, proposal.order_id)
    plan = _plan(session, order, proposal.amount_cents, lock=True)
    _check_sendable(session, order, plan, proposal.override)
    refund = _write_intent(
        session, actor, order, plan,
        key=_approval_key(proposal.id), reason=proposal.reason, override=proposal.override,
        requested_by=proposal.proposed_by,
        approval={
            "approval": proposal.id,
            "proposed_by": proposal.proposed_by,
            "approved_by": [x["email"] for x in proposal.approved_by],
        },
    )  # fmt: skip
    return refund.id


def _send(session: Session, actor: Actor, settings: Settings, gateway: Gateway, refund_id: int) -> Refunded:
    """Ask the gateway for a requested refund with its key, outside any transaction, and record the answer."""
    refund = session.get(Refund, refund_id, populate_existing=True)
    ref, cents, key = refund.provider_ref, refund.amount_cents, refund.idempotency_key
    session.rollback()
    return _ask_and_record(session, actor, settings, gateway, refund_id, lambda: gateway.refund(ref, cents, key))


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
    seen_cents: int | None = None,
) -> Refunded | SentForApproval:
    """Refund ``amount`` (cents or typed text; None = all that remains) of a paid order.

    A refund of more than ``[credits] refund_approval_above_cents`` is not sent: it becomes a proposal that
    others in finance approve (``credits.approvals.approve``, which then sends it through this same path).

    ``seen_cents`` is what was refunded or pending when the requester looked (``RefundPlan.committed_cents``
    of the plan they were shown); the same request with the same view is one refund however often it comes.
    A refusal by the gateway raises GatewayError (the refund is kept as failed); a gateway that does not
    answer leaves the refund pending and the result says what to do.
    """
    require(actor, Action.REFUND_ORDER)
    reason = audit.reason_given(reason, "Give a reason for the refund.")
    intent = _request(
        session, actor, order_id,
        reason=reason, amount=amount, override=override, seen_cents=seen_cents, policy=settings.credits,
    )  # fmt: skip
    if isinstance(intent, SentForApproval):
        return intent
    if intent.existing:
        return _finished_or_pending(session, intent.refund_id)
    return _send(session, actor, settings, gateway, intent.refund_id)


def _ask_and_record(
    session: Session,
    actor: Actor,
    settings: Settings,
    gateway: Gateway,
    refund_id: int,
    ask: Callable[[], RefundResult],
) -> Refunded:
    try:
        result = ask()
    except GatewayUnreachable as exc:
        return _still_pending(session, refund_id, f"{exc} ")
    except GatewayError as exc:
        _record_failure(session, actor, refund_id, str(exc))
        raise GatewayError(f"{exc} Nothing was refunded.") from None
    return _record(session, actor, settings, refund_id, result)


def _still_pending(session: Session, refund_id: int, why: str) -> Refunded:
    refund = session.get(Refund, refund_id, populate_existing=True)
    order = _get_order(session, refund.order_id)
    message = (
        f"{why}The refund of {money.format_cents(refund.amount_cents)} is pending: nothing is counted as refunded "
        f"until the gateway's answer is recorded. {WHAT_TO_DO}"
    )
    balance = _customer_balance(session, order.customer_id)
    session.rollback()
    return Refunded(order.public_id, refund.amount_cents, 0, None, order.status, balance, refund.status, message)


def _finished_or_pending(session: Session, refund_id: int) -> Refunded:
    """The result of a refund already requested: what it came to, or that it is still pending."""
    refund = session.get(Refund, refund_id, populate_existing=True)
    order = _get_order(session, refund.order_id)
    when = f"{refund.created_at:%Y-%m-%d %H:%M} UTC"
    what = f"The same refund of {money.format_cents(refund.amount_cents)} was requested by {refund.created_by}"
    what += f" at {when}"
    if refund.status is RefundStatus.REQUESTED:
        raise StateConflict(f"{what} and is still pending; nothing more was asked of the gateway. {WHAT_TO_DO}")
    return _result(session, refund, order, repeated=True)


def _result(session: Session, refund: Refund, order: Order, *, repeated: bool) -> Refunded:
    note = session.get(Invoice, refund.credit_note_id) if refund.credit_note_id else None
    when = f" at {refund.refunded_at:%Y-%m-%d %H:%M} UTC" if refund.refunded_at else ""
    message = (
        f"Refunded {money.format_cents(refund.amount_cents)}; {money.format_credits(refund.credits)} credits "
        f"taken back; credit note {note.number if note else '—'}."
    )
    if repeated:
        message = f"Already done{when} (requested by {refund.created_by}): {message} Nothing more was refunded."
    return Refunded(
        order.public_id,
        refund.amount_cents,
        refund.credits,
        note.number if note else None,
        order.status,
        _customer_balance(session, order.customer_id),
        refund.status,
        message,
        repeated,
    )


def _locked_refund(session: Session, refund_id: int) -> tuple[Refund, Order]:
    order_id = session.scalar(select(Refund.order_id).where(Refund.id == refund_id))
    order = _lock_order(session, order_id)
    refund = session.get(Refund, refund_id, populate_existing=True)
    return refund, order


def _record_failure(session: Session, actor: Actor, refund_id: int, sentence: str) -> None:
    with transaction(session):
        refund, order = _locked_refund(session, refund_id)
        if refund.status is not RefundStatus.REQUESTED:
            return
        refund.status = RefundStatus.FAILED
        refund.failure_reason = sentence
        refund.finished_at, refund.finished_by = utcnow(), actor.email
        audit.record(
            session,
            actor,
            "order.refund.fail",
            "order",
            order.public_id,
            reason=refund.reason,
            after={
                "refund_cents": refund.amount_cents,
                "gateway": sentence,
                "requested_by": refund.created_by,
                "idempotency_key": refund.idempotency_key,
            },
        )


def _record(session: Session, actor: Actor, settings: Settings, refund_id: int, result: RefundResult) -> Refunded:
    """Record the gateway's answer about a requested refund, once: a refund already finished is left as it is."""
    if result.state is RefundState.FAILED:
        _record_failure(session, actor, refund_id, result.detail or "The gateway reports the refund failed.")
        raise GatewayError(f"The gateway reports the refund failed: {result.detail or 'no reason given'}.")
    with transaction(session):
        refund, order = _locked_refund(session, refund_id)
        if refund.status is not RefundStatus.REQUESTED:
            return _result(session, refund, order, repeated=True)
        if result.amount_cents != refund.amount_cents:
            raise PaymentMismatch(
                f"The gateway's refund {result.refund_id} is for {money.format_cents(result.amount_cents)}, "
                f"but {money.format_cents(refund.amount_cents)} was asked with its key; it stays pending for a person."
            )
        refund.gateway_refund_id = result.refund_id
        if result.state is RefundState.PENDING:
            pending = True
        else:
            pending = False
            _book(session, actor, settings, refund, order)
    if pending:
        return _still_pending(session, refund_id, "The gateway accepted the refund and is still processing it. ")
    return _result(session, refund, order, repeated=False)


def _book(session: Session, actor: Actor, settings: Settings, refund: Refund, order: Order) -> None:
    """A succeeded refund in the books: credit note, ledger entry, rollup, order status and audit."""
    now = utcnow()
    totals = _totals(session, order)
    invoice = _invoice_for(session, order.id)
    if invoice is None:
        raise StateConflict(f"Order {order.public_id} has no invoice to credit; the refund stays pending.")
    note = _issue_credit_note(session, invoice, order, settings, amount_cents=refund.amount_cents, issued_at=now)
    session.flush()
    balance_before = _customer_balance(session, order.customer_id)
    refund.status = RefundStatus.SUCCEEDED
    refund.credit_note_id = note.id
    refund.refunded_at = refund.finished_at = now
    refund.finished_by = actor.email
    session.flush()
    rollup._record_refund(session, order, refund)
    # Refunds take back paid credits only, worth their share of the order's amount at the price paid.
    value = _share(order.amount_cents, refund.credits, order.credits)
    taken = _entry(
        order.customer_id, LedgerKind.REFUND, CreditPool.PAID, -refund.credits, -value,
        by=actor.email, at=now, order_id=order.id, refund_id=refund.id,
    )  # fmt: skip
    _post(session, [taken])
    before = order.status
    refunded = totals.refunded_cents + refund.amount_cents
    order.status = OrderStatus.REFUNDED if refunded >= _paid(order) else OrderStatus.PARTIALLY_REFUNDED
    audit.record(
        session,
        actor,
        "order.refund",
        "order",
        order.public_id,
        reason=refund.reason,
        before={"status": before.value, "refunded_cents": totals.refunded_cents, "balance": balance_before},
        after={
            "status": order.status.value,
            "refund_cents": refund.amount_cents,
            "credits_taken_back": refund.credits,
            "credit_note": note.number,
            "override": refund.override,
            "requested_by": refund.created_by,
            "gateway_refund": refund.gateway_refund_id,
        },
    )
    session.flush()


# --- recovery: finish pending refunds by asking the gateway ----------------------------------------


@dataclass(frozen=True)
class RefundReconcileRow:
    order: str
    amount_cents: int
    requested_by: str
    outcome: str  # succeeded, failed, still pending, already finished, error
    message: str


@dataclass
class RefundReconcileReport:
    rows: list[RefundReconcileRow] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        return counts

    def summary(self) -> str:
        parts = [f"{n} {outcome}" for outcome, n in self.counts.items()]
        return f"Pending refunds checked: {len(self.rows)}" + (f" ({', '.join(parts)})." if parts else ".")


def _pending_ids(session: Session, order_id: int | None) -> list[int]:
    stmt = select(Refund.id).where(Refund.status == RefundStatus.REQUESTED).order_by(Refund.created_at, Refund.id)
    if order_id is not None:
        stmt = stmt.where(Refund.order_id == order_id)
    return list(session.scalars(stmt))


def reconcile_refunds(
    database: Database,
    actor: Actor,
    settings: Settings,
    *,
    order_id: int | str | None = None,
    gateway_for: GatewayFor = registry.gateway_for,
    progress: Callable[[int, int], None] | None = None,
) -> RefundReconcileReport:
    """Finish every pending refund (of one order, or all): ask the gateway about its key and record the answer.

    When the gateway has no refund with the key, the refund is sent again with that same key: the
    gateway pays it at most once, so this is safe to run twice and to race a live refund. It finishes
    what finance already asked for, so the roles that reconcile orders may run it.
    """
    require(actor, Action.RECONCILE)
    with database.session() as session:
        oid = _get_order(session, order_id).id if order_id is not None else None
        ids = _pending_ids(session, oid)
    report = RefundReconcileReport()
    gateways: dict[tuple, Gateway | GatewayError] = {}
    for done, refund_id in enumerate(ids, start=1):
        report.rows.append(_reconcile_one(database, actor, settings, refund_id, gateway_for, gateways))
        if progress:
            progress(done, len(ids))
    return report


def _reconcile_one(
    database: Database,
    actor: Actor,
    settings: Settings,
    refund_id: int,
    gateway_for: GatewayFor,
    gateways: dict[tuple, Gateway | GatewayError],
) -> RefundReconcileRow:
    with database.session() as session:
        refund = session.get(Refund, refund_id)
        order = session.get(Order, refund.order_id)
        public_id, cents, by = order.public_id, refund.amount_cents, refund.created_by

        def row(outcome: str, message: str) -> RefundReconcileRow:
            return RefundReconcileRow(public_id, cents, by, outcome, message)

        if refund.status is not RefundStatus.REQUESTED:
            return row("already finished", f"The refund is {refund.status.value} already.")
        where = (order.method, order.sandbox)
        if where not in gateways:
            try:
                gateways[where] = gateway_for(order.method, settings, database, sandbox=order.sandbox)
            except GatewayError as exc:
                gateways[where] = exc
        gateway = gateways[where]
        if isinstance(gateway, GatewayError):
            return row("error", str(gateway))
        ref, key = refund.provider_ref, refund.idempotency_key
        session.rollback()

        def ask() -> RefundResult:
            found = gateway.find_refund(ref, key)
            return found if found is not None else gateway.refund(ref, cents, key)

        try:
            done = _ask_and_record(session, actor, settings, gateway, refund_id, ask)
        except GatewayError as exc:
            return row("failed", str(exc))
        except BillingError as exc:
            return row("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken refund must not stop the others
            return row("error", shown_to_people(exc, f"finishing the refund of order {public_id}"))
    if done.repeated:
        return row("already finished", done.message)
    if done.status is RefundStatus.SUCCEEDED:
        return row("succeeded", done.message)
    return row("still pending", done.message)
