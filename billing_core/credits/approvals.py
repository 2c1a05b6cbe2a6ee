"""Four-eyes approval: goodwill grants and correction debits, and the refunds and manual completions that
``[credits]`` sends here (``orders.refunds.refund_order``, ``orders.lifecycle.complete_order``).

Support (or finance) proposes: customer, credits (a grant is positive, a correction debit negative), paid
or promotional, a reason for the audit log and a note the customer sees. Finance approves; nobody
approves their own proposal or approves twice; above ``[credits] two_approvals_above`` two different
people must approve; a proposal nobody decided within ``proposal_hours`` expires. The last approval
books the ledger entry in the same transaction, under the proposal's row lock, so approving again (a
double click, a second tab, a replayed request) is refused and books nothing.

An approved refund takes the durable refund path: its intent (keyed by the proposal) is written in the
approving transaction, the gateway is asked with that key after the commit, and the answer recorded; two
people approving at once make one intent, so the money moves once. An approved completion is
``complete_order``'s own work, in the approving transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.config import Settings
from billing_core.core.db import Database, transaction
from billing_core.core.errors import BillingError, InvalidAmount, NotFound, StateConflict
from billing_core.core.models import (
    Approval,
    ApprovalKind,
    ApprovalStatus,
    CreditPool,
    Customer,
    LedgerKind,
    Order,
    Refund,
    RefundStatus,
    utcnow,
)
from billing_core.credits.ledger import _balance, _entry, _paid_value_taken, _post
from billing_core.credits.proposals import _approvals_needed, _locked, _open, _record, _text, _view
from billing_core.orders import refunds
from billing_core.orders.lifecycle import _complete_approved
from billing_core.payments import Gateway, registry

NOTE_MAX_CHARS = 500
QUEUE_LIMIT = 200


def _credits(text: str) -> int:
    """Typed credits, signed: "25", "-12.50"; a grant is positive, a correction debit negative."""
    raw = (text or "").strip()
    sign = -1 if raw[:1] in {"-", "−"} else 1
    try:
        credits = money.parse_amount(raw[1:] if sign < 0 else raw)
    except InvalidAmount as exc:
        raise BillingError(f"Enter the credits to grant (e.g. 25) or to take back (e.g. -25): {exc}") from None
    return sign * credits


def propose_adjustment(
    session: Session,
    actor: Actor,
    customer_public_id: str,
    *,
    credits: str,
    pool: CreditPool | str,
    reason: str,
    note: str | None,
    settings: Settings,
    now: datetime | None = None,
) -> Approval:
    """Propose a grant or correction debit; nothing moves until it is approved."""
    require(actor, Action.PROPOSE_ADJUSTMENT)
    amount = _credits(credits)
    try:
        pool = CreditPool(pool)
    except ValueError:
        raise BillingError("Choose paid or promotional credits.") from None
    reason = _text(reason, "a reason", REASON_MAX_CHARS, required=True)
    note = _text(note, "a note for the customer", NOTE_MAX_CHARS, required=False)
    policy = settings.credits
    now = now or utcnow()
    with transaction(session):
        customer = session.scalar(select(Customer).where(Customer.public_id == (customer_public_id or "").strip()[:64]))
        if customer is None:
            raise NotFound(f"There is no customer {(customer_public_id or '')[:40]}.")
        proposal = Approval(
            kind=ApprovalKind.ADJUSTMENT,
            status=ApprovalStatus.PENDING,
            customer_id=customer.id,
            credits=amount,
            pool=pool,
            reason=reason,
            note=note,
            proposed_by=actor.email,
            proposed_at=now,
            expires_at=now + timedelta(hours=policy.proposal_hours),
            approvals_needed=_approvals_needed(amount, policy),
            approved_by=[],
        )
        session.add(proposal)
        session.flush()
        audit.record(
            session, actor, "credits.adjustment.propose", "approval", proposal.id, reason=reason, after=_view(proposal)
        )
    return proposal


def approve(
    session: Session,
    actor: Actor,
    approval_id: int,
    *,
    settings: Settings,
    gateway_for: Callable[[Order], Gateway] | None = None,
    now: datetime | None = None,
) -> Approval:
    """Approve a pending proposal; the last approval it needs books it (a refund: sends it to the gateway
    that ``gateway_for`` gives for the order). Refused for its proposer, for someone who approved it
    already, once it is decided (replay) or expired; a refund or completion the order no longer allows is
    refused and the proposal keeps waiting (reject it)."""
    require(actor, Action.APPROVE_CHANGES)
    now = now or utcnow()
    refund_id = None
    with transaction(session):
        proposal = _locked(session, approval_id)
        expired = _open(session, actor, proposal, now)
        if expired is None:
            if proposal.proposed_by == actor.email:
                raise StateConflict("Nobody approves their own proposal: another person in finance must approve it.")
            if actor.email in {x["email"] for x in proposal.approved_by}:
                raise StateConflict(f"You approved proposal {proposal.id} already; it needs another person.")
            before = _view(proposal)
            signed = {"email": actor.email, "role": actor.role.value, "at": now.isoformat()}
            proposal.approved_by = [*proposal.approved_by, signed]
            done = {}
            if len(proposal.approved_by) >= proposal.approvals_needed:
                done = _carry_out(session, actor, proposal, settings, now)
                refund_id = proposal.refund_id
                proposal.status = ApprovalStatus.APPROVED
                proposal.decided_at, proposal.decided_by = now, actor.email
            _record(
                session, actor, proposal, "approve", reason=proposal.reason, before=before,
                after=_view(proposal) | done,
            )  # fmt: skip
    if expired:
        raise StateConflict(expired)
    if refund_id is not None:
        try:
            gateway = (gateway_for or _gateway_for(session, settings))(session.get(Order, proposal.order_id))
            refunds._send(session, actor, settings, gateway, refund_id)
        except BillingError as exc:
            raise type(exc)(f"Proposal {proposal.id} is approved, but: {exc}") from None
        session.refresh(proposal)  # the refund path ends its transactions by rolling back, which expires it
    return proposal


def _carry_out(session: Session, actor: Actor, proposal: Approval, settings: Settings, now: datetime) -> dict:
    """What the last approval does, in its transaction; what it did, for the audit event."""
    if proposal.kind is ApprovalKind.ADJUSTMENT:
        proposal.ledger_entry_id = _book(session, actor, proposal, settings, now)
        return {"ledger_entry": proposal.ledger_entry_id}
    try:
        if proposal.kind is ApprovalKind.REFUND:
            proposal.refund_id = refunds._request_approved(session, actor, proposal)
            return {"refund": proposal.refund_id}
        done = _complete_approved(session, actor, proposal, settings)
        return {"invoice": done.invoice_number}
    except BillingError as exc:
        raise type(exc)(f"{exc} Proposal {proposal.id} was not approved; reject it if it no longer applies.") from None


def _gateway_for(session: Session, settings: Settings) -> Callable[[Order], Gateway]:
    """The gateway that speaks for an order, over the session's own database."""
    bind = session.get_bind()
    database = Database(bind.url.render_as_string(hide_password=False), engine=bind)
    return lambda order: registry.gateway_for(order.method, settings, database, sandbox=order.sandbox)


def _book(session: Session, actor: Actor, proposal: Approval, settings: Settings, now: datetime) -> int:
    """The adjustment's ledger entry, with the customer's balance held: a paid grant is worth what the
    pricing says its credits cost, a paid debit its share of what the customer's paid credits are worth."""
    balance = _balance(session, proposal.customer_id, lock=True)
    value = 0
    if proposal.pool is CreditPool.PAID:
        if proposal.credits > 0:
            value = money.from_decimal(money.to_decimal(proposal.credits) / settings.pricing().credits_per_usd)
        else:
            value = -_paid_value_taken(balance, -proposal.credits)
    entry = _entry(
        proposal.customer_id,
        LedgerKind.ADJUSTMENT,
        proposal.pool,
        proposal.credits,
        value,
        by=actor.email,
        at=now,
        note=proposal.note,
    )
    _post(session, [entry])
    return entry.id


def reject(session: Session, actor: Actor, approval_id: int, *, reason: str, now: datetime | None = None) -> Approval:
    require(actor, Action.APPROVE_CHANGES)
    reason = _text(reason, "a reason", REASON_MAX_CHARS, required=True)
    now = now or utcnow()
    with transaction(session):
        proposal = _locked(session, approval_id)
        expired = _open(session, actor, proposal, now)
        if expired is None:
            before = _view(proposal)
            proposal.status = ApprovalStatus.REJECTED
            proposal.decided_at, proposal.decided_by = now, actor.email
            _record(session, actor, proposal, "reject", reason=reason, before=before, after=_view(proposal))
    if expired:
        raise StateConflict(expired)
    return proposal


def expire_stale(session: Session, actor: Actor, *, now: datetime | None = None) -> int:
    """Mark every pending proposal past its time expired (audited as one sweep); the count."""
    require(actor, Action.APPROVE_CHANGES)
    now = now or utcnow()
    with transaction(session):
        ids = list(
            session.scalars(
                select(Approval.id).where(Approval.status == ApprovalStatus.PENDING, Approval.expires_at <= now)
            )
        )
        if ids:
            session.execute(
                update(Approval)
                .where(Approval.id.in_(ids), Approval.status == ApprovalStatus.PENDING)
                .values(status=ApprovalStatus.EXPIRED, decided_at=now)
            )
            audit.record(session, actor, "credits.adjustment.expire", "approval", ids[0], after={"expired": ids[:1000]})
    return len(ids)


@dataclass(frozen=True)
class QueueRow:
    id: int
    kind: ApprovalKind
    status: ApprovalStatus
    customer_public_id: str
    customer_name: str
    credits: int
    pool: CreditPool
    reason: str
    note: str | None
    proposed_by: str
    proposed_at: datetime
    expires_at: datetime
    approvals_needed: int
    approved_by: tuple[str, ...]
    order_public_id: str | None = None  # a refund's or completion's order
    amount_cents: int | None = None  # a refund's amount, a completion's order total
    reference: str | None = None  # the provider reference a manual completion gives
    refund_status: RefundStatus | None = None  # what the refund an approval made came to


def queue(
    session: Session,
    actor: Actor,
    *,
    status: ApprovalStatus | None = ApprovalStatus.PENDING,
    kind: ApprovalKind | None = None,
    customer_public_id: str | None = None,
    limit: int = QUEUE_LIMIT,
) -> list[QueueRow]:
    """Proposals, newest first, by status and kind (None: all) and optionally one customer's."""
    require(actor, Action.APPROVE_CHANGES)
    return _rows(session, status=status, kind=kind, customer_public_id=customer_public_id, limit=limit)


def proposal(session: Session, actor: Actor, approval_id: int) -> QueueRow:
    """One proposal as the queue shows it: what a decision on it came to."""
    require(actor, Action.APPROVE_CHANGES)
    rows = _rows(session, status=None, kind=None, customer_public_id=None, limit=1, approval_id=int(approval_id))
    if not rows:
        raise NotFound(f"There is no proposal {approval_id}.")
    return rows[0]


def proposals_for(session: Session, actor: Actor, customer_public_id: str, *, limit: int = 50) -> list[QueueRow]:
    """A customer's proposals, newest first: what the customer page shows to whoever may propose."""
    require(actor, Action.PROPOSE_ADJUSTMENT)
    return _rows(session, status=None, kind=None, customer_public_id=customer_public_id, limit=limit)


def _rows(session: Session, *, status, kind, customer_public_id, limit, approval_id=None) -> list[QueueRow]:
    stmt = (
        select(Approval, Customer.public_id, Customer.name, Order.public_id, Refund.status)
        .join(Customer, Customer.id == Approval.customer_id)
        .outerjoin(Order, Order.id == Approval.order_id)
        .outerjoin(Refund, Refund.id == Approval.refund_id)
        .order_by(Approval.proposed_at.desc(), Approval.id.desc())
        .limit(min(max(limit, 1), QUEUE_LIMIT))
    )
    if approval_id is not None:
        stmt = stmt.where(Approval.id == approval_id)
    if status is not None:
        stmt = stmt.where(Approval.status == status)
    if kind is not None:
        stmt = stmt.where(Approval.kind == kind)
    if customer_public_id:
        stmt = stmt.where(Customer.public_id == customer_public_id.strip()[:64])
    return [
        QueueRow(
            a.id,
            a.kind,
            a.status,
            public_id,
            name,
            a.credits,
            a.pool,
            a.reason,
            a.note,
            a.proposed_by,
            a.proposed_at,
            a.expires_at,
            a.approvals_needed,
            tuple(x["email"] for x in a.approved_by or []),
            order_public_id,
            a.amount_cents,
            a.reference,
            refund_status,
        )
        for a, public_id, name, order_public_id, refund_status in session.execute(
            stmt.execution_options(populate_existing=True)
        )
    ]


def waiting_count(session: Session, actor: Actor, *, now: datetime | None = None) -> int:
    """Pending proposals not yet expired: the sidebar's count (an index range on status)."""
    require(actor, Action.APPROVE_CHANGES)
    now = now or utcnow()
    stmt = select(func.count()).where(Approval.status == ApprovalStatus.PENDING, Approval.expires_at > now)
    return int(session.scalar(stmt) or 0)
