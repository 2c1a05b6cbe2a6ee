"""Approvals (finance): proposed adjustments, refunds and manual completions waiting for a second pair of
eyes; approve or reject each.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_guard.hand_over_to_router``).
"""

from __future__ import annotations

import streamlit as st

from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.core import money
from billing_core.core.errors import BillingError
from billing_core.core.models import ApprovalKind, ApprovalStatus, RefundStatus
from billing_core.credits import approvals
from billing_core.orders import refunds
from pages import _guard, _text
from pages._guard import PageContext
from pages._text import plain
from pages.customers import proposals_frame

ALL = "all"
OUTCOME_KEY = "appr_outcome"


def render() -> None:
    ctx = _guard.page_context("approvals")
    st.title("Approvals")
    above = money.format_cents(ctx.settings.credits.refund_approval_above_cents)
    completions = " and manual completions" if ctx.settings.credits.manual_completion_approval else ""
    st.caption(
        f"Grants and correction debits proposed on customer pages, refunds above {above}{completions} proposed on "
        "orders. Nobody approves their own proposal; an approved refund is sent to the gateway at once."
    )
    _show_outcome()
    left, middle, right = st.columns(3)
    status = left.selectbox("Status", [s.value for s in ApprovalStatus] + [ALL], key="appr_status")
    kind = middle.selectbox("What", [ALL] + [k.value for k in ApprovalKind], key="appr_kind")
    customer = right.text_input("Customer (cus_…)", key="appr_customer", max_chars=64)
    with ctx.database.session() as session:
        rows = approvals.queue(
            session,
            ctx.actor,
            status=None if status == ALL else ApprovalStatus(status),
            kind=None if kind == ALL else ApprovalKind(kind),
            customer_public_id=customer.strip() or None,
        )
    st.dataframe(proposals_frame(rows), hide_index=True)
    pending = [r for r in rows if r.status is ApprovalStatus.PENDING]
    if not pending:
        st.caption("Nothing here waits for a decision.")
        return
    chosen = st.selectbox(
        "Decide on",
        [r.id for r in pending],
        format_func=lambda i: next(_choice(r) for r in pending if r.id == i),
        key="appr_pick",
    )
    reason = st.text_input("Reason, when rejecting", key="appr_reason", max_chars=REASON_MAX_CHARS)
    approve, reject, _ = st.columns([1, 1, 4])
    # Callbacks run before the next script run, so the table and the sidebar's count then show the decision.
    approve.button("Approve", key="appr_approve", type="primary", on_click=_approve, args=(ctx, chosen))
    reject.button("Reject", key="appr_reject", on_click=_reject, args=(ctx, chosen, reason))


def _show_outcome() -> None:
    outcome = st.session_state.pop(OUTCOME_KEY, None)
    if outcome is None:
        return
    kind, text, icon = outcome
    {"ok": st.success, "warning": st.warning, "error": st.error}[kind](text, icon=icon)


def _approve(ctx: PageContext, chosen: int) -> None:
    try:
        with ctx.database.session() as session:
            approvals.approve(session, ctx.actor, chosen, settings=ctx.settings)
            done = approvals.proposal(session, ctx.actor, chosen)
    except BillingError as exc:
        st.session_state[OUTCOME_KEY] = ("error", plain(exc), ":material/error:")
        return
    st.session_state[OUTCOME_KEY] = _approved(done)


def _reject(ctx: PageContext, chosen: int, reason: str) -> None:
    try:
        with ctx.database.session() as session:
            approvals.reject(session, ctx.actor, chosen, reason=reason)
    except BillingError as exc:
        st.session_state[OUTCOME_KEY] = ("error", plain(exc), ":material/error:")
        return
    st.session_state[OUTCOME_KEY] = ("ok", f"Proposal {chosen} rejected.", ":material/block:")


def _choice(r: approvals.QueueRow) -> str:
    if r.kind is ApprovalKind.REFUND:
        return f"{r.id}: refund of {money.format_cents(r.amount_cents)}, order {r.order_public_id} ({r.customer_name})"
    if r.kind is ApprovalKind.COMPLETION:
        return f"{r.id}: manual completion of order {r.order_public_id} ({r.customer_name})"
    return f"{r.id}: {r.customer_name}, {_text.signed_credits(r.credits)} {r.pool.value}"


def _approved(done: approvals.QueueRow) -> tuple[str, str, str]:
    """What an approval came to, as (kind, sentence, icon)."""
    if done.status is not ApprovalStatus.APPROVED:
        return "ok", f"Proposal {done.id} approved; it needs one more approval.", ":material/pending:"
    if done.kind is ApprovalKind.ADJUSTMENT:
        return "ok", f"Proposal {done.id} approved and booked.", ":material/task_alt:"
    if done.kind is ApprovalKind.COMPLETION:
        return "ok", f"Proposal {done.id} approved: order {done.order_public_id} is completed.", ":material/task_alt:"
    if done.refund_status is RefundStatus.SUCCEEDED:
        refunded = money.format_cents(done.amount_cents)
        return (
            "ok",
            f"Proposal {done.id} approved: {refunded} refunded on order {done.order_public_id}.",
            ":material/task_alt:",
        )
    pending = f"Proposal {done.id} approved; the refund on order {done.order_public_id} is pending at the gateway."
    return "warning", f"{pending} {refunds.WHAT_TO_DO}", ":material/hourglass_top:"


if __name__ == "__main__":
    _guard.hand_over_to_router()
