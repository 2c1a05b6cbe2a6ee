"""Approvals (finance): proposed adjustments waiting for a second pair of eyes; approve or reject each.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_guard.hand_over_to_router``).
"""

from __future__ import annotations

import streamlit as st

from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.core.errors import BillingError
from billing_core.core.models import ApprovalStatus
from billing_core.credits import approvals
from pages import _guard, _text
from pages._text import plain
from pages.customers import proposals_frame

ALL = "all"


def render() -> None:
    ctx = _guard.page_context("approvals")
    st.title("Approvals")
    st.caption("Grants and correction debits proposed on customer pages. Nobody approves their own proposal.")
    left, right = st.columns(2)
    status = left.selectbox("Status", [s.value for s in ApprovalStatus] + [ALL], key="appr_status")
    customer = right.text_input("Customer (cus_…)", key="appr_customer", max_chars=64)
    with ctx.database.session() as session:
        rows = approvals.queue(
            session,
            ctx.actor,
            status=None if status == ALL else ApprovalStatus(status),
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
        format_func=lambda i: next(
            f"{r.id}: {r.customer_name}, {_text.signed_credits(r.credits)} {r.pool.value}" for r in pending if r.id == i
        ),
        key="appr_pick",
    )
    reason = st.text_input("Reason, when rejecting", key="appr_reason", max_chars=REASON_MAX_CHARS)
    approve, reject, _ = st.columns([1, 1, 4])
    try:
        if approve.button("Approve", key="appr_approve", type="primary"):
            with ctx.database.session() as session:
                done = approvals.approve(session, ctx.actor, chosen, settings=ctx.settings)
            if done.status is ApprovalStatus.APPROVED:
                st.success(f"Proposal {done.id} approved and booked.", icon=":material/task_alt:")
            else:
                st.success(f"Proposal {done.id} approved; it needs one more approval.", icon=":material/pending:")
        if reject.button("Reject", key="appr_reject"):
            with ctx.database.session() as session:
                approvals.reject(session, ctx.actor, chosen, reason=reason)
            st.success(f"Proposal {chosen} rejected.", icon=":material/block:")
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")


if __name__ == "__main__":
    _guard.hand_over_to_router()
