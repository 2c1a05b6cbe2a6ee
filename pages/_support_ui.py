"""Support's queue on the Orders page: "check these with the gateway" for the orders a list shows.

The checks run in billing_core (payment_ops.check_payments: each gateway call outside any
transaction, each answer recorded on its order); the list then shows the answers in its own
"Gateway (last check)" column, read back from the orders.
"""

from __future__ import annotations

import streamlit as st

from billing_core import payment_ops
from billing_core.access import Action, may
from billing_core.errors import BillingError
from billing_core.search import OrderRow
from pages._shared import PageContext, hand_over_to_router, plain

PROBLEMS_KEY = "orders_check_problems"
SUMMARY_KEY = "orders_check_summary"


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
    label = f"Check these {len(askable)} with the gateway"
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


if __name__ == "__main__":
    hand_over_to_router()
