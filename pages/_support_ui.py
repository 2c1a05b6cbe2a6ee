"""Support's widgets: "check these with the gateway" for the orders a list shows (Orders page), and the
offer to regenerate a customer's documents after an edit of billing details (Customers page).

The checks run in billing_core (payment_ops.check_payments: each gateway call outside any
transaction, each answer recorded on its order); the list then shows the answers in its own
"Gateway (last check)" column, read back from the orders. Regeneration is
billing_core.invoices.new_details.
"""

from __future__ import annotations

import streamlit as st

from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.access.roles import Action, may
from billing_core.core.errors import BillingError
from billing_core.invoices import new_details
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders.search import OrderRow
from pages._guard import PageContext, hand_over_to_router
from pages._text import plain

PROBLEMS_KEY = "orders_check_problems"
SUMMARY_KEY = "orders_check_summary"
REGENERATED_KEY = "customer_regenerated"
NUMBERS_SHOWN = 12


def check_problems() -> dict[str, str]:
    """Why an order of the last bulk check could not be asked, by order id (shown in its row)."""
    return st.session_state.get(PROBLEMS_KEY, {})


def check_these(ctx: PageContext, rows: list[OrderRow]) -> None:
    if summary := st.session_state.get(SUMMARY_KEY):
        st.info(plain(summary), icon=":material/travel_explore:")
    if not may(ctx.actor, Action.CHECK_PAYMENT):
        return
    askable = [row.public_id for row in rows if row.provider_ref]
    left = len(rows) - len(askable)
    label = "Check this one with the gateway" if len(askable) == 1 else f"Check these {len(askable)} with the gateway"
    if st.button(label, key="check_these", icon=":material/travel_explore:", disabled=not askable):
        bar = st.progress(0.0, text="Asking the gateway…")

        def show(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Asked about {done:,} of {total:,} orders")

        try:
            results = payment_ops.check_payments(ctx.database, ctx.actor, ctx.settings, askable, progress=show)
        except BillingError as exc:
            st.error(plain(exc), icon=":material/error:")
            return
        st.session_state[PROBLEMS_KEY] = {r.public_id: r.problem for r in results if r.problem}
        st.session_state[SUMMARY_KEY] = payment_ops.checks_summary(results, skipped=left)
        st.rerun()  # the list reads the answers back from the orders
    elif left:
        st.caption(f"{left} of the orders shown have no payment at the gateway yet, so there is nothing to ask.")


def new_details_offer(ctx: PageContext, public_id: str) -> None:
    """After an edit of billing details: the issued documents that show the old ones, and the explicit,
    audited step that adds a version with the new details beside each (the old versions stay)."""
    if not (may(ctx.actor, Action.REGENERATE_INVOICES) and may(ctx.actor, Action.STORE_INVOICE_FILE)):
        return
    if done := st.session_state.pop(REGENERATED_KEY, None):
        st.success(plain(done), icon=":material/task_alt:")
    try:
        with ctx.database.session() as session:
            stale = new_details.stale_documents(session, ctx.actor, public_id)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    if not stale.numbers:
        return
    with st.container(border=True):
        shown = ", ".join(stale.numbers[:NUMBERS_SHOWN]) + (" …" if len(stale.numbers) > NUMBERS_SHOWN else "")
        st.markdown(f"**{len(stale.numbers)} issued documents show other billing details than these**")
        st.caption(
            f"{plain(shown)}. Each keeps its issued version; regenerating adds a new version with the "
            "customer's details as they are now, with your reason in the audit log."
        )
        reason = st.text_input("Reason for the new versions", key="regen_reason", max_chars=REASON_MAX_CHARS)
        confirmed = st.checkbox(
            f"I confirm: add a version with the new details to {len(stale.numbers)} documents", key="regen_confirm"
        )
        if st.button(
            f"Regenerate {len(stale.numbers)} documents with the new details",
            key="regen_new_details",
            icon=":material/autorenew:",
            disabled=not confirmed,
        ):
            bar = st.progress(0.0, text="Rendering…")
            try:
                done = new_details.regenerate_with_new_details(
                    ctx.database,
                    ctx.actor,
                    ctx.settings,
                    public_id,
                    reason=reason,
                    progress=lambda n, total: bar.progress(n / total, text=f"{n:,} of {total:,} documents"),
                )
            except BillingError as exc:
                st.error(plain(exc), icon=":material/error:")
                return
            st.session_state[REGENERATED_KEY] = (
                f"{len(done.numbers)} documents have a new version with the new details; the issued ones stay."
            )
            st.session_state.pop("regen_confirm", None)
            st.rerun()


if __name__ == "__main__":
    hand_over_to_router()
