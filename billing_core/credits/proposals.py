"""Proposals waiting for four eyes, the pieces every kind shares: writing one, locking it, refusing a
decision on one that is decided or past its time, and what the audit log says about it.

A grant or correction debit is proposed in ``credits.approvals``; a refund above ``[credits]
refund_approval_above_cents`` in ``orders.refunds.refund_order`` and a manual completion (when
``[credits] manual_completion_approval`` is on) in ``orders.lifecycle.complete_order``, which write
their proposal here so that the order modules need not import the approvals flow that calls them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access import audit
from billing_core.access.roles import Actor
from billing_core.core import money
from billing_core.core.config import CreditPolicy
from billing_core.core.errors import BillingError, NotFound, StateConflict
from billing_core.core.models import Approval, ApprovalKind, ApprovalStatus, CreditPool, Order

# What the audit log calls each kind's events, and the record they are about: an order's proposals
# are on the order's own timeline.
EVENTS = {
    ApprovalKind.ADJUSTMENT: "credits.adjustment",
    ApprovalKind.REFUND: "order.refund",
    ApprovalKind.COMPLETION: "order.complete",
}


@dataclass(frozen=True)
class SentForApproval:
    """A refund or manual completion that became a proposal instead of happening now."""

    approval_id: int
    kind: ApprovalKind
    order_public_id: str
    amount_cents: int
    approvals_needed: int
    repeated: bool  # the same proposal was waiting already (a double click, a second tab)

    @property
    def message(self) -> str:
        what = "refund of " + money.format_cents(self.amount_cents) if self.kind is ApprovalKind.REFUND else None
        what = what or "manual completion"
        people = "another person in finance" if self.approvals_needed == 1 else "two other people in finance"
        already = "was already waiting" if self.repeated else "was sent for approval"
        return (
            f"The {what} of order {self.order_public_id} {already} (proposal {self.approval_id}): "
            f"{people} must approve it on the Approvals page; nothing happens until then."
        )


def _text(value: str | None, what: str, limit: int, *, required: bool) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise BillingError(f"Give {what}.")
        return None
    if len(value) > limit:
        raise BillingError(f"{what[0].upper()}{what[1:]} is at most {limit:,} characters.")
    return value


def _view(a: Approval) -> dict:
    view = {
        "kind": a.kind.value,
        "status": a.status.value,
        "credits": a.credits,
        "pool": a.pool.value,
        "approvals_needed": a.approvals_needed,
        "approved_by": [x["email"] for x in a.approved_by or []],
    }
    if a.kind is not ApprovalKind.ADJUSTMENT:
        view |= {"approval": a.id, "amount_cents": a.amount_cents, "reference": a.reference, "override": a.override}
    return view


def _record(session: Session, actor: Actor, proposal: Approval, verb: str, **fields) -> None:
    """The audit event of a proposal's step: on the order for a refund or completion, else on the proposal."""
    if proposal.order_id is None:
        entity, key = "approval", proposal.id
    else:
        entity, key = "order", session.scalar(select(Order.public_id).where(Order.id == proposal.order_id))
    audit.record(session, actor, f"{EVENTS[proposal.kind]}.{verb}", entity, key, **fields)


def _approvals_needed(credits: int, policy: CreditPolicy) -> int:
    return 2 if abs(credits) > policy.two_approvals_above else 1


def _propose_for_order(
    session: Session,
    actor: Actor,
    order: Order,
    kind: ApprovalKind,
    *,
    amount_cents: int,
    credits: int,
    reason: str,
    policy: CreditPolicy,
    now: datetime,
    reference: str | None = None,
    override: bool = False,
) -> SentForApproval:
    """Write a refund or completion proposal in the caller's transaction (the order held), or find the same
    one waiting. ``credits``: what it would move, signed; more than ``two_approvals_above`` needs two people."""
    same = select(Approval).where(
        Approval.order_id == order.id,
        Approval.kind == kind,
        Approval.status == ApprovalStatus.PENDING,
        Approval.expires_at > now,
    )
    if kind is ApprovalKind.REFUND:
        same = same.where(Approval.amount_cents == amount_cents)
    waiting = session.scalar(same.order_by(Approval.id).limit(1))
    if waiting is not None:
        return SentForApproval(waiting.id, kind, order.public_id, amount_cents, waiting.approvals_needed, True)
    proposal = Approval(
        kind=kind,
        status=ApprovalStatus.PENDING,
        customer_id=order.customer_id,
        order_id=order.id,
        credits=credits,
        pool=CreditPool.PAID,
        amount_cents=amount_cents,
        reference=reference,
        override=override,
        reason=reason,
        proposed_by=actor.email,
        proposed_at=now,
        expires_at=now + timedelta(hours=policy.proposal_hours),
        approvals_needed=_approvals_needed(credits, policy),
        approved_by=[],
    )
    session.add(proposal)
    session.flush()
    _record(session, actor, proposal, "propose", reason=reason, after=_view(proposal))
    return SentForApproval(proposal.id, kind, order.public_id, amount_cents, proposal.approvals_needed, False)


def _waiting_refunds(session: Session, order_id: int, now: datetime) -> list[Approval]:
    """Refund proposals of the order still waiting: what they would refund is not refundable twice."""
    stmt = select(Approval).where(
        Approval.order_id == order_id,
        Approval.kind == ApprovalKind.REFUND,
        Approval.status == ApprovalStatus.PENDING,
        Approval.expires_at > now,
    )
    return list(session.scalars(stmt.order_by(Approval.id)))


def _locked(session: Session, approval_id: int) -> Approval:
    stmt = select(Approval).where(Approval.id == int(approval_id)).with_for_update()
    proposal = session.scalar(stmt.execution_options(populate_existing=True))
    if proposal is None:
        raise NotFound(f"There is no proposal {approval_id}.")
    return proposal


def _open(session: Session, actor: Actor, proposal: Approval, now: datetime) -> str | None:
    """Refuse a decision on a proposal that is no longer pending (replay). One past its time is marked
    expired in the caller's transaction, and the sentence refusing it is returned, to raise after the commit."""
    if proposal.status is not ApprovalStatus.PENDING:
        by = f" by {proposal.decided_by}" if proposal.decided_by else ""
        raise StateConflict(f"Proposal {proposal.id} is already {proposal.status.value}{by}; nothing was changed.")
    if now < proposal.expires_at:
        return None
    before = _view(proposal)
    proposal.status = ApprovalStatus.EXPIRED
    proposal.decided_at = now
    _record(session, actor, proposal, "expire", before=before, after=_view(proposal))
    return f"Proposal {proposal.id} expired at {proposal.expires_at:%Y-%m-%d %H:%M} UTC; propose it again."
