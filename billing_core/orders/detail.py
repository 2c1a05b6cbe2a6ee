"""Everything the order detail view shows, read in one place: the order, its customer, invoice, refunds,
balance, the gateway's latest word beside ours, and one timeline of what happened, by whom and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing_core.access.audit import _events_for
from billing_core.access.roles import Action, Actor, require
from billing_core.core import money
from billing_core.core.models import (
    Approval,
    ApprovalKind,
    ApprovalStatus,
    AuditEvent,
    Customer,
    GatewayCheck,
    Invoice,
    InvoiceKind,
    Order,
    RefundStatus,
    utcnow,
)
from billing_core.orders.gateway_actions import _successful_refs, checks_for, discrepancies
from billing_core.orders.lifecycle import _customer_balance, _get_customer, _get_order
from billing_core.orders.refunds import refunds_for
from billing_core.payments import PaymentState, PaymentStatus

ACTION_LABELS = {
    "order.create": "Created",
    "order.payment_created": "Payment created",
    "order.resume_payment": "Payment resumed",
    "order.check_payment": "Gateway check",
    "order.complete": "Completed",
    "order.fail": "Failed",
    "order.expire": "Expired",
    "order.cancel": "Cancelled",
    "order.refund.request": "Refund requested",
    "order.refund": "Refunded",
    "order.refund.fail": "Refund failed",
    "order.refund.propose": "Refund sent for approval",
    "order.refund.approve": "Refund approved",
    "order.refund.reject": "Refund rejected",
    "order.refund.expire": "Refund proposal expired",
    "order.complete.propose": "Completion sent for approval",
    "order.complete.approve": "Completion approved",
    "order.complete.reject": "Completion rejected",
    "order.complete.expire": "Completion proposal expired",
}
TIMELINE_LIMIT = 500


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    what: str
    who: str
    detail: str
    reason: str = ""


@dataclass(frozen=True)
class RefundView:
    at: datetime
    amount_cents: int
    credits: int
    by: str
    reason: str
    credit_note: str | None
    override: bool
    status: RefundStatus
    failure_reason: str | None = None

    @property
    def pending(self) -> bool:
        return self.status is RefundStatus.REQUESTED


@dataclass(frozen=True)
class WaitingApproval:
    """A refund or manual completion of the order proposed and not yet decided."""

    id: int
    kind: ApprovalKind
    amount_cents: int
    proposed_by: str
    proposed_at: datetime
    expires_at: datetime
    approvals_needed: int
    approvals: int
    reason: str

    def sentence(self) -> str:
        what = f"A refund of {money.format_cents(self.amount_cents)}"
        if self.kind is ApprovalKind.COMPLETION:
            what = "A manual completion"
        given = f", {self.approvals} given" if self.approvals else ""
        return (
            f"{what} was sent for approval by {self.proposed_by} at {self.proposed_at:%Y-%m-%d %H:%M} UTC "
            f"(proposal {self.id}, {self.approvals_needed} approval{'s' * (self.approvals_needed != 1)} needed"
            f"{given}; it expires at {self.expires_at:%Y-%m-%d %H:%M} UTC). Nothing happens until finance "
            "approves it on the Approvals page."
        )


@dataclass(frozen=True)
class OrderDetail:
    order: Order  # detached, fully loaded
    customer: Customer
    invoice_number: str | None
    credit_notes: list[str]
    refunds: list[RefundView]
    balance: int
    latest_check: GatewayCheck | None
    discrepancies: list[str]
    timeline: list[TimelineEvent]
    waiting_approvals: list[WaitingApproval] = ()

    @property
    def refunded_cents(self) -> int:
        return sum(r.amount_cents for r in self.refunds if r.status is RefundStatus.SUCCEEDED)

    @property
    def pending_refunds(self) -> list[RefundView]:
        return [r for r in self.refunds if r.pending]


def order_detail(session: Session, actor: Actor, public_id: str) -> OrderDetail:
    """The detail view of one order by its public id; NotFound when there is none."""
    require(actor, Action.READ_ORDERS)
    order = _get_order(session, public_id)
    customer = _get_customer(session, order.customer_id)
    documents = list(
        session.scalars(select(Invoice).where(Invoice.order_id == order.id).order_by(Invoice.issued_at, Invoice.id))
    )
    notes_by_id = {d.id: d.number for d in documents}
    refunds = [
        RefundView(
            r.created_at,
            r.amount_cents,
            r.credits,
            r.created_by,
            r.reason,
            notes_by_id.get(r.credit_note_id),
            r.override,
            r.status,
            r.failure_reason,
        )
        for r in refunds_for(session, actor, order.id)
    ]
    checks = checks_for(session, actor, order.id, limit=TIMELINE_LIMIT)
    latest = checks[0] if checks else None
    found = []
    if latest is not None:
        others = _successful_refs(session, order) - {latest.ref}
        found = discrepancies(order, as_status(latest), len(others))
    events = _events_for(session, "order", order.public_id, limit=TIMELINE_LIMIT)
    waiting = session.scalars(
        select(Approval)
        .where(Approval.order_id == order.id, Approval.status == ApprovalStatus.PENDING, Approval.expires_at > utcnow())
        .order_by(Approval.proposed_at, Approval.id)
    )
    return OrderDetail(
        order=order,
        customer=customer,
        invoice_number=next((d.number for d in documents if d.kind is InvoiceKind.INVOICE), None),
        credit_notes=[d.number for d in documents if d.kind is InvoiceKind.CREDIT_NOTE],
        refunds=refunds,
        balance=_customer_balance(session, order.customer_id),
        latest_check=latest,
        discrepancies=found,
        timeline=timeline(order, events, checks, documents),
        waiting_approvals=[_waiting(a) for a in waiting],
    )


def _approval_words(action: str, after: dict) -> str:
    """A refund's or manual completion's step through the approvals flow, for the timeline."""
    what = f"refund of {money.format_cents(after.get('amount_cents') or 0)}"
    if action.startswith("order.complete."):
        what = f"manual completion, reference {after.get('reference')}"
    approved = after.get("approved_by") or []
    tally = f"{len(approved)} of {after.get('approvals_needed')} approvals"
    tally += f" ({', '.join(approved)})" if approved else ""
    return f"proposal {after.get('approval')}: {what}; {after.get('status')}, {tally}"


def _waiting(a: Approval) -> WaitingApproval:
    approvals = len(a.approved_by or [])
    return WaitingApproval(
        a.id, a.kind, a.amount_cents or 0, a.proposed_by, a.proposed_at, a.expires_at, a.approvals_needed,
        approvals, a.reason,
    )  # fmt: skip


def as_status(check: GatewayCheck) -> PaymentStatus:
    """A recorded gateway check as the gateway's answer it was."""
    return PaymentStatus(
        provider=check.provider,
        ref=check.ref,
        state=PaymentState(check.state),
        amount_cents=check.amount_cents,
        currency=check.currency,
        checked_at=check.checked_at,
        refunded_cents=check.refunded_cents,
        detail=check.detail or "",
    )


def timeline(
    order: Order, events: list[AuditEvent], checks: list[GatewayCheck], documents: list[Invoice]
) -> list[TimelineEvent]:
    """Audit events, gateway checks no audit event describes, and invoices/credit notes, oldest first.

    A document is issued in the same transaction as the completion or refund that names it, a moment
    before that event is written; it is placed right after the event so the story reads in order.
    """
    keyed: list[tuple[tuple, TimelineEvent]] = []
    audited_checks = set()
    named_at: dict[str, datetime] = {}
    for n, event in enumerate(events):
        after = event.after if isinstance(event.after, dict) else {}
        if event.action == "order.check_payment":
            audited_checks.add((after.get("ref"), after.get("checked_at")))
        for key in ("invoice", "credit_note"):
            if isinstance(after.get(key), str):
                named_at[after[key]] = event.at
        who = f"{event.actor_email} ({event.actor_role.value})"
        item = TimelineEvent(
            event.at, ACTION_LABELS.get(event.action, event.action), who, _describe(order, event), event.reason or ""
        )
        keyed.append(((event.at, 0, n), item))
    for n, check in enumerate(reversed(checks)):
        if (check.ref, check.checked_at.isoformat()) in audited_checks:
            continue
        item = TimelineEvent(check.checked_at, "Gateway check", check.checked_by, _gateway_words(_check_dict(check)))
        keyed.append(((check.checked_at, 0, len(events) + n), item))
    for n, doc in enumerate(documents):
        credit = doc.kind is InvoiceKind.CREDIT_NOTE
        item = TimelineEvent(
            doc.issued_at,
            "Credit note issued" if credit else "Invoice issued",
            "",
            f"{doc.number}, {money.format_cents(doc.total_cents, doc.currency)}",
        )
        keyed.append(((named_at.get(doc.number, doc.issued_at), 1, n), item))
    return [item for _, item in sorted(keyed, key=lambda pair: pair[0])]


def _check_dict(check: GatewayCheck) -> dict:
    return {
        "state": check.state,
        "amount_cents": check.amount_cents,
        "currency": check.currency,
        "ref": check.ref,
        "detail": check.detail,
        "refunded_cents": check.refunded_cents,
    }


def _gateway_words(gateway: dict | str | None) -> str:
    if not isinstance(gateway, dict):
        return f"gateway {gateway}" if gateway else ""
    words = f"gateway says {gateway.get('state', '?')}"
    if isinstance(gateway.get("amount_cents"), int):
        words += f", {money.format_cents(gateway['amount_cents'], str(gateway.get('currency') or 'USD').upper())}"
    if gateway.get("ref"):
        words += f", payment {gateway['ref']}"
    if gateway.get("refunded_cents"):
        words += f", {money.format_cents(gateway['refunded_cents'])} refunded"
    if gateway.get("detail"):
        words += f" ({gateway['detail']})"
    return words


def _describe(order: Order, event: AuditEvent) -> str:
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    action = event.action
    if action == "order.create":
        return (
            f"{money.format_cents(order.total_cents, order.currency)} for {money.format_credits(order.credits)} "
            f"credits ({order.plan.value}, {order.method.value}), pricing {order.pricing_version}"
        )
    if action == "order.payment_created":
        return f"payment {after.get('provider_ref')}"
    if action == "order.resume_payment":
        return f"new payment {after.get('provider_ref')}; previous {before.get('provider_ref') or 'none'}"
    if action == "order.check_payment":
        return _gateway_words(after)
    if action == "order.complete":
        proof = after.get("proof") if isinstance(after.get("proof"), dict) else {}
        shown = f"manual reference {proof['manual_reference']}" if proof.get("manual_reference") else None
        shown = shown or f"payment {proof.get('ref')} succeeded"
        return f"paid; invoice {after.get('invoice')}; proof: {shown}"
    if action == "order.refund.request":
        return (
            f"{money.format_cents(after.get('refund_cents') or 0)} asked of the gateway; pending until it answers"
            + (" (override: used credits taken back)" if after.get("override") else "")
        )
    if action == "order.refund.fail":
        return f"{money.format_cents(after.get('refund_cents') or 0)} not refunded: {after.get('gateway')}"
    if action == "order.refund":
        requested = after.get("requested_by")
        words = (
            f"{money.format_cents(after.get('refund_cents') or 0)} refunded, "
            f"{money.format_credits(after.get('credits_taken_back') or 0)} credits taken back, "
            f"credit note {after.get('credit_note')}; now {after.get('status')}"
        )
        if requested and requested != event.actor_email:
            words += f" (requested by {requested})"
        return words + (" (override: used credits taken back)" if after.get("override") else "")
    if action.endswith((".propose", ".approve", ".reject", ".expire")) and "approval" in after:
        return _approval_words(action, after)
    if action in ("order.fail", "order.expire", "order.cancel"):
        return f"{before.get('status', '?')} → {after.get('status', '?')}; {_gateway_words(after.get('gateway'))}"
    return ", ".join(f"{k}: {v}" for k, v in after.items() if not isinstance(v, dict))[:300]
