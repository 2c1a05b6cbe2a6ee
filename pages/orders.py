"""Orders: find a customer's order in seconds, see what really happened at the gateway, finish it once.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_guard.hand_over_to_router``).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import streamlit as st

from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.access.roles import Action, may, may_open
from billing_core.core import money
from billing_core.core.errors import BillingError, GatewayError, NotFound
from billing_core.core.models import OrderStatus, RefundStatus
from billing_core.credits.proposals import SentForApproval
from billing_core.orders import gateway_actions as payment_ops
from billing_core.orders import refunds, states
from billing_core.orders.customers import CustomerMatches, find_customers
from billing_core.orders.detail import OrderDetail, order_detail
from billing_core.orders.lifecycle import REFERENCE_MAX_CHARS, complete_order
from billing_core.orders.search import (
    MAX_QUERY_CHARS,
    Cursor,
    OrderQuery,
    OrderRow,
    search_orders,
    searched_as,
    the_one_order,
)
from billing_core.orders.states import OrderAction
from billing_core.payments import PaymentState
from billing_core.payments.registry import gateway_for
from billing_core.pricing.catalog import Method, PlanId
from billing_core.reconcile import stuck as reconcile
from pages import _guard
from pages import _orders_ui as ui
from pages import _support_ui as support
from pages._guard import PageContext
from pages._text import plain

ORDER_PARAM = "order"
PAGE_SIZE = 50
CUSTOMERS_SHOWN = 5
COUNT_LIMIT = 10_000  # a text search stops sooner (search.TEXT_COUNT_CAP)
CURSORS_KEY = "orders_cursors"
QUERY_KEY = "orders_query"
IDS_KEY = "orders_page_ids"
TABLE_KEY = "orders_table"
OUTCOME_KEY = "orders_outcome"
OPENED_FOR_KEY = "orders_opened_for"  # the text whose one order was opened: Close keeps it closed
VIEW_KEY = "orders_view"
STUCK_CURSORS_KEY = "orders_stuck_cursors"
SEARCH_VIEW, STUCK_VIEW = "Search", "Stuck: paid at the gateway, unpaid here"
# How the answer of "Check with gateway" is shown: only a succeeded payment is good news.
CHECK_KINDS = {PaymentState.SUCCEEDED: "ok", PaymentState.PENDING: "info"}


def render() -> None:
    ctx = _guard.page_context("orders")
    st.title("Orders")
    st.caption("Find an order by id, email, customer or payment reference; check it with the gateway; finish it once.")
    names = [":material/search: Find an order", ":material/sync: Bulk reconcile"]
    if may(ctx.actor, Action.IMPORT_SETTLEMENT):
        names.append(":material/upload_file: Settlement import")
    tabs = st.tabs(names)
    with tabs[0]:
        view = st.segmented_control("List", [SEARCH_VIEW, STUCK_VIEW], key=VIEW_KEY, default=SEARCH_VIEW, required=True)
        if view == STUCK_VIEW:
            _stuck(ctx)
        else:
            _lookup(ctx)
        if public_id := st.query_params.get(ORDER_PARAM):
            st.divider()
            _detail(ctx, public_id)
    with tabs[1]:
        ui.reconcile_tab(ctx)
    if len(tabs) > 2:
        with tabs[2]:
            ui.settlement_tab(ctx)


# --- lookup ----------------------------------------------------------------------------------------


def _amount_bound(label: str, key: str) -> tuple[int | None, bool]:
    text = st.text_input(label, key=key, placeholder="any", max_chars=money.AMOUNT_MAX_CHARS)
    if not text.strip():
        return None, True
    try:
        return money.parse_amount(text), True
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return None, False


def _query() -> OrderQuery | None:
    if ORDER_PARAM in st.query_params and "q" not in st.session_state:
        # A pasted link shows its order in the results (cut to what the box takes).
        st.session_state["q"] = st.query_params[ORDER_PARAM][:MAX_QUERY_CHARS]
    text = st.text_input(
        "Search orders",
        key="q",
        max_chars=MAX_QUERY_CHARS,
        placeholder="ord_…, email, customer id or name, payment reference (pi_…, int_…, sim_pi_…)",
    )
    with st.expander("Filters", icon=":material/filter_list:"):
        status_col, method_col, plan_col = st.columns(3)
        statuses = status_col.multiselect("Status", [s.value for s in OrderStatus], key="f_status")
        methods = method_col.multiselect("Method", [m.value for m in Method], key="f_method")
        plans = plan_col.multiselect("Plan", [p.value for p in PlanId], key="f_plan")
        dates_col, low_col, high_col = st.columns(3)
        dates = dates_col.date_input("Created between (UTC)", value=(), key="f_dates")
        with low_col:
            low, low_ok = _amount_bound("Amount from (USD)", "f_min")
        with high_col:
            high, high_ok = _amount_bound("Amount up to (USD)", "f_max")
    if not (low_ok and high_ok):
        return None
    start, end = (*dates, None, None)[:2]
    return OrderQuery(
        text=text,
        statuses=statuses,
        methods=methods,
        plans=plans,
        created_from=start,
        created_before=end + timedelta(days=1) if end else None,
        amount_min_cents=low,
        amount_max_cents=high,
    )


def _lookup(ctx: PageContext) -> None:
    query = _query()
    if query is None:
        st.info("Correct the filters above to search.", icon=":material/edit:")
        return
    if st.session_state.get(QUERY_KEY) != query:
        st.session_state[QUERY_KEY] = query
        st.session_state[CURSORS_KEY] = []
    cursors: list[Cursor] = st.session_state[CURSORS_KEY]
    try:
        with ctx.database.reading() as session:
            page = search_orders(
                session, ctx.actor, query, PAGE_SIZE, cursors[-1] if cursors else None, count_limit=COUNT_LIMIT
            )
            found = (
                find_customers(session, ctx.actor, query.text, limit=CUSTOMERS_SHOWN)
                if query.text.strip() and may(ctx.actor, Action.READ_CUSTOMERS)
                else None
            )
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.caption(
        f"Searched as: **{plain(searched_as(query, page.understood_as))}** · {page.count.label} matching orders · "
        f"page {len(cursors) + 1}, newest first"
    )
    for note in page.notes:
        st.caption(plain(note))
    if found is not None and found.hits:
        _customers_first(found)
    _open_the_one(ctx, query.text)
    _orders_list(ctx, page.rows)
    _pager(cursors, page.next_cursor)


def _pager(cursors: list, following) -> None:
    first, after, _ = st.columns([1, 1, 4])
    first.button("First page", key="first_page", on_click=cursors.clear, disabled=not cursors)
    after.button("Next page", key="next_page", on_click=cursors.append, args=(following,), disabled=following is None)


def _open_the_one(ctx: PageContext, text: str) -> None:
    """A pasted order id or provider reference that names exactly one order opens it (once per text)."""
    if not text.strip() or st.session_state.get(OPENED_FOR_KEY) == text:
        return
    try:
        with ctx.database.session() as session:
            public_id = the_one_order(session, ctx.actor, text)
    except BillingError:
        return
    if public_id is not None:
        st.session_state[OPENED_FOR_KEY] = text
        if st.query_params.get(ORDER_PARAM) != public_id:
            _open(public_id)


def _stuck(ctx: PageContext) -> None:
    cursors: list = st.session_state.setdefault(STUCK_CURSORS_KEY, [])
    try:
        with ctx.database.session() as session:
            page = reconcile.stuck_paid_page(session, ctx.actor, size=PAGE_SIZE, after=cursors[-1] if cursors else None)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.caption(
        f"**{page.count.label}** orders pending or expired here whose last gateway check said paid, oldest first · "
        f"page {len(cursors) + 1}. Check a list with the gateway to find more; complete them here or by bulk reconcile."
    )
    _orders_list(ctx, page.rows)
    _pager(cursors, page.next_after)


def _orders_list(ctx: PageContext, rows: list[OrderRow]) -> None:
    """The orders shown, a ticked row opening its order, and "check these with the gateway"."""
    ids = [row.public_id for row in rows]
    st.session_state[IDS_KEY] = ids
    # The table's key follows the orders it shows: when a completion drops the ticked order from the
    # list, the tick goes with it instead of landing on whichever order took its row.
    key = f"{TABLE_KEY}_{hash(tuple(ids))}"
    st.dataframe(
        ui.results_frame(rows, support.check_problems()),
        key=key,
        on_select=partial(_open_selected, key),
        selection_mode="single-row",
        hide_index=True,
    )
    support.check_these(ctx, rows)


def _customers_first(found: CustomerMatches) -> None:
    st.markdown(f"**Customers ({len(found.hits)}{'+' if found.more else ''}), best first, then their orders**")
    for hit in found.hits:
        st.caption(
            f"[open](/customers?customer={hit.public_id}) {plain(hit.name)} · {plain(hit.email)} · "
            f"matched on {hit.match.label}"
        )


def _open_selected(key: str) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        _open(st.session_state[IDS_KEY][rows[0]])


def _open(public_id: str) -> None:
    st.query_params[ORDER_PARAM] = public_id
    st.session_state.pop(OUTCOME_KEY, None)
    st.session_state.pop(_seen_key(public_id), None)  # opened again: a fresh look at its refunds


def _close() -> None:
    st.session_state.pop(_seen_key(st.query_params.get(ORDER_PARAM, "")), None)
    st.query_params.pop(ORDER_PARAM, None)
    st.session_state.pop(OUTCOME_KEY, None)


# --- one order -------------------------------------------------------------------------------------


def _detail(ctx: PageContext, public_id: str) -> None:
    try:
        with ctx.database.session() as session:
            detail = order_detail(session, ctx.actor, public_id)
    except NotFound:
        # The id came from the URL: anybody can write a link, so it is not shown back as markdown.
        if st.session_state.get(IDS_KEY) and st.session_state.get("q") == public_id[:MAX_QUERY_CHARS]:
            st.info("This link names several orders: they are listed above; tick one.", icon=":material/list:")
        else:
            st.error("No such order: the order id in this link matches no order.", icon=":material/search_off:")
        st.button("Close", key="close_order", on_click=_close)
        return
    order = detail.order
    head, close = st.columns([5, 1])
    with head:
        st.subheader(f"Order {order.public_id}", anchor=False)
        st.badge(order.status.value, color=ui.STATUS_COLOURS.get(order.status.value, "gray"))
    close.button("Close", key="close_order", icon=":material/close:", on_click=_close)

    status, total, credits, balance, invoice = st.columns([1, 1, 1, 1, 2])
    status.metric("Status", order.status.value)
    total.metric("Total charged", money.format_cents(order.total_cents, order.currency))
    credits.metric("Credits", money.format_credits(order.credits))
    balance.metric("Credits balance", money.format_credits(detail.balance))
    invoice.metric("Invoice", detail.invoice_number or "—")

    left, right = st.columns(2)
    with left:
        ui.facts_table("Customer", ui.customer_frame(detail))
        if may_open(ctx.actor, "customers"):
            st.link_button(
                "Open customer", f"/customers?customer={detail.customer.public_id}", icon=":material/person:"
            )
        ui.facts_table("Ours and the gateway's (latest check)", ui.truth_frame(detail))
        for problem in detail.discrepancies:
            st.warning(plain(problem), icon=":material/warning:")
    with right:
        ui.facts_table("Order", ui.order_frame(detail))

    _pending_refunds(ctx, detail)
    _waiting_approvals(ctx, detail)
    _actions(ctx, detail)
    st.markdown("**Timeline**")
    st.dataframe(ui.timeline_frame(detail.timeline), hide_index=True)


def _pending_refunds(ctx: PageContext, detail: OrderDetail) -> None:
    pending = detail.pending_refunds
    if not pending:
        return
    st.warning(plain(ui.pending_refunds_words(pending)), icon=":material/hourglass_top:")
    if may(ctx.actor, Action.RECONCILE):
        st.button(
            "Finish pending refunds",
            key="finish_refunds",
            icon=":material/sync:",
            on_click=_finish_refunds,
            args=(ctx, detail.order.public_id),
        )


def _waiting_approvals(ctx: PageContext, detail: OrderDetail) -> None:
    for waiting in detail.waiting_approvals:
        st.info(plain(waiting.sentence()), icon=":material/approval:")
    if detail.waiting_approvals and may_open(ctx.actor, "approvals"):
        st.link_button("Open approvals", "/approvals", icon=":material/approval:")


def _finish_refunds(ctx: PageContext, public_id: str) -> None:
    try:
        report = refunds.reconcile_refunds(ctx.database, ctx.actor, ctx.settings, order_id=public_id)
    except BillingError as exc:
        st.session_state[OUTCOME_KEY] = ("error", str(exc), "")
        return
    words = " ".join(f"{money.format_cents(r.amount_cents)}: {r.outcome} — {r.message}" for r in report.rows)
    done = all(r.outcome in ("succeeded", "already finished") for r in report.rows)
    st.session_state[OUTCOME_KEY] = ("ok" if done else "warning", f"{report.summary()} {words}", "")


def _actions(ctx: PageContext, detail: OrderDetail) -> None:
    order = detail.order
    with st.container(border=True):
        title, badge = st.columns([5, 1])
        title.markdown("**Actions**")
        mode = ctx.settings.stripe_mode
        badge.badge(mode, color={"LIVE": "red", "TEST": "orange"}.get(mode, "blue"), icon=":material/credit_card:")
        _show_outcome()
        if may(ctx.actor, Action.CHECK_PAYMENT):
            st.button(
                "Check with gateway",
                key="check_gateway",
                icon=":material/travel_explore:",
                on_click=_do,
                args=(ctx, order.public_id, "Check with gateway"),
                disabled=not order.provider_ref,
            )
        choices = states.actions_for(order.status)
        allowed = [action.value for action in choices if may(ctx.actor, states.ACTIONS[action].permission)]
        barred = [action.value for action in choices if action.value not in allowed]
        if barred:
            st.caption(f"Not for the {ctx.actor.role.value} role: {', '.join(barred).lower()}.")
        if not allowed:
            return
        chosen = st.selectbox("What to do", allowed, key="order_action")
        if chosen == OrderAction.COMPLETE_MANUALLY:
            st.text_input(
                "Provider reference (from Airwallex, Alipay or the bank)",
                key="manual_reference",
                max_chars=REFERENCE_MAX_CHARS,
            )
        if chosen == OrderAction.REFUND:
            _refund_fields(ctx, detail)
        if chosen != OrderAction.RESUME_PAYMENT:
            st.text_input("Reason (kept in the audit log)", key="action_reason", max_chars=REASON_MAX_CHARS)
        st.checkbox(f"I confirm: {chosen.lower()} for order {order.public_id}", key="action_confirm")
        st.button(
            chosen,
            key="run_action",
            type="primary",
            on_click=_do,
            args=(ctx, order.public_id, chosen),
            disabled=not st.session_state.get("action_confirm"),
        )


def _seen_key(public_id: str) -> str:
    return f"refund_seen:{public_id}"


def _refund_fields(ctx: PageContext, detail: OrderDetail) -> None:
    typed = st.text_input(
        "Refund amount (USD; empty = all that remains)", key="refund_amount", max_chars=money.AMOUNT_MAX_CHARS
    )
    try:
        with ctx.database.session() as session:
            plan = refunds.plan_refund(session, ctx.actor, detail.order.public_id, typed.strip() or None)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    # What was refunded or pending when this order's form was first shown: the same request from a
    # second tab or a second click names the same view, and so is one refund. Kept per order, so a
    # view of another order never stands for this one.
    st.session_state.setdefault(_seen_key(detail.order.public_id), plan.committed_cents)
    st.info(plain(ui.refund_plan_words(plan)), icon=":material/undo:")
    if refunds.needs_approval(plan.amount_cents, ctx.settings.credits):
        above = money.format_cents(ctx.settings.credits.refund_approval_above_cents)
        st.caption(f"Refunds above {above} go to the Approvals page: nothing is sent until finance approves it.")
    if plan.spends_used_credits:
        st.checkbox("Override: take back credits the customer has already used", key="refund_override")


def _show_outcome() -> None:
    outcome = st.session_state.get(OUTCOME_KEY)
    if outcome is None:
        return
    kind, text, message = outcome
    if kind == "error":
        st.error(plain(text), icon=":material/error:")
    elif kind == "warning":
        st.warning(plain(text), icon=":material/hourglass_top:")
    elif kind == "info":
        st.info(plain(text), icon=":material/hourglass_top:")
    else:
        st.success(plain(text), icon=":material/check_circle:")
    if message:
        st.caption("Send the customer this message:")
        st.code(message, language=None, wrap_lines=True)


def _gateway(ctx: PageContext, order, required: bool = True):
    try:
        return gateway_for(order.method, ctx.settings, ctx.database, sandbox=order.sandbox)
    except GatewayError:
        if required:
            raise
        return None


def _do(ctx: PageContext, public_id: str, chosen: str) -> None:
    """Run one action (as a button callback, so the page then shows the order as it now is)."""
    state = st.session_state
    reason = state.get("action_reason", "")
    message, kind = "", "ok"
    try:
        with ctx.database.session() as session:
            order = order_detail(session, ctx.actor, public_id).order  # checked read: which gateway
            if chosen == "Check with gateway":
                seen = payment_ops.check_payment(session, ctx.actor, public_id, _gateway(ctx, order))
                paid = money.format_cents(seen.amount_cents, seen.currency.upper())
                text = f"The gateway says {seen.state.value}: {paid}, payment {seen.ref}."
                state[OUTCOME_KEY] = (CHECK_KINDS.get(seen.state, "warning"), text, "")
                return
            elif chosen == OrderAction.COMPLETE_FROM_GATEWAY:
                done = payment_ops.complete_from_gateway(
                    session, ctx.actor, public_id, _gateway(ctx, order), settings=ctx.settings, reason=reason
                )
                text = f"Completed: {money.format_credits(done.credits)} credits added, invoice {done.invoice_number}."
            elif chosen == OrderAction.COMPLETE_MANUALLY:
                done = complete_order(
                    session,
                    ctx.actor,
                    public_id,
                    settings=ctx.settings,
                    reason=reason,
                    manual_reference=state.get("manual_reference", ""),
                )
                if isinstance(done, SentForApproval):
                    kind, text = "info", done.message
                else:
                    text = f"Completed: {money.format_credits(done.credits)} credits added, "
                    text += f"invoice {done.invoice_number}."
            elif chosen == OrderAction.RESUME_PAYMENT:
                resumed = payment_ops.resume_payment(session, ctx.actor, public_id, _gateway(ctx, order))
                text, message = f"New payment {resumed.payment.ref} opened.", resumed.message
            elif chosen in (OrderAction.EXPIRE, OrderAction.CANCEL):
                close = payment_ops.expire_order if chosen == OrderAction.EXPIRE else payment_ops.cancel_order
                closed = close(session, ctx.actor, public_id, _gateway(ctx, order, required=False), reason=reason)
                text = f"Order {public_id} is now {closed.status.value}."
            else:
                done = refunds.refund_order(
                    session,
                    ctx.actor,
                    public_id,
                    _gateway(ctx, order),
                    settings=ctx.settings,
                    reason=reason,
                    amount=state.get("refund_amount", "").strip() or None,
                    override=bool(state.get("refund_override")),
                    seen_cents=state.get(_seen_key(public_id)),
                )
                text = done.message
                state.pop(_seen_key(public_id), None)
                if isinstance(done, SentForApproval):
                    kind = "info"
                elif done.status is RefundStatus.REQUESTED:
                    state[OUTCOME_KEY] = ("warning", text, "")
                    return
    except BillingError as exc:
        if chosen == OrderAction.REFUND:
            state.pop(_seen_key(public_id), None)
        state[OUTCOME_KEY] = ("error", str(exc), "")
        return
    state[OUTCOME_KEY] = (kind, text, message)
    for key in ("action_confirm", "refund_override"):
        state[key] = False
    for key in ("action_reason", "manual_reference", "refund_amount"):
        state[key] = ""


if __name__ == "__main__":
    _guard.hand_over_to_router()
