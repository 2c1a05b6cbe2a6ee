"""Customers: find anyone the way support types it, and see the whole customer in one place.

Only functions: app.py registers ``render`` with st.navigation. ``?customer=cus_…`` opens a customer;
links from the Orders page and from search results set it. Every list pages in the database.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from billing_core.access.audit import REASON_MAX_CHARS
from billing_core.access.roles import Action, may
from billing_core.core.errors import BillingError, NotFound
from billing_core.core.models import ApprovalKind, CreditPool, LedgerKind
from billing_core.core.money import format_cents, format_credits
from billing_core.credits import approvals
from billing_core.invoices import storage
from billing_core.orders import customers as cs
from billing_core.orders.search import MAX_QUERY_CHARS, OrderQuery, search_orders
from pages import _guard, _text
from pages import _orders_ui as ui
from pages import _support_ui as support
from pages._guard import PageContext
from pages._text import plain

CUSTOMER_PARAM = "customer"
PAGE_SIZE = 25
COUNT_LIMIT = 10_000  # a text search stops sooner (search.TEXT_COUNT_CAP)
LEDGER_CURSORS, ORDER_CURSORS, DOC_CURSORS = "cust_ledger_cursors", "cust_order_cursors", "cust_doc_cursors"


def render() -> None:
    ctx = _guard.page_context("customers")
    st.title("Customers")
    if public_id := st.query_params.get(CUSTOMER_PARAM):
        st.button("Back to search", key="back_to_search", icon=":material/arrow_back:", on_click=_close)
        _customer(ctx, public_id)
    else:
        _find(ctx)


# --- search --------------------------------------------------------------------------------------


def _find(ctx: PageContext) -> None:
    typed = st.text_input(
        "Find a customer",
        key="customer_q",
        max_chars=MAX_QUERY_CHARS,
        placeholder="name or company (any order, any script), email or domain, cus_…, ord_…, tax id, amount",
    )
    if not typed.strip():
        st.caption("Type any word of a name or company, part of an email, an id or a reference.")
        return
    try:
        with ctx.database.reading() as session:
            found = cs.find_customers(session, ctx.actor, typed, limit=20)
            orders = search_orders(
                session, ctx.actor, OrderQuery(text=typed), page_size=PAGE_SIZE, count_limit=COUNT_LIMIT
            )
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.caption(f"Read as: **{plain(orders.understood_as)}**")
    for note in orders.notes:
        st.caption(plain(note))
    shown = f"{len(found.hits)}{'+' if found.more else ''}"
    st.subheader(f"Customers ({shown})", anchor=False)
    if found.hits:
        st.dataframe(
            hits_frame(found.hits),
            hide_index=True,
            column_config={"Open": st.column_config.LinkColumn("Open", display_text="open")},
        )
    else:
        st.caption("No customer matches.")
    st.subheader(f"Their orders ({orders.count.label}, newest first)", anchor=False)
    st.dataframe(ui.results_frame(orders.rows), hide_index=True)


def hits_frame(hits: list[cs.CustomerHit]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Open": f"/customers?{CUSTOMER_PARAM}={h.public_id}",
                "Name": h.name,
                "Email": h.email,
                "Company": h.company or "—",
                "Country": h.country,
                "Tax id": h.tax_id or "—",
                "Matched on": h.match.label,
            }
            for h in hits
        ],
        columns=["Open", "Name", "Email", "Company", "Country", "Tax id", "Matched on"],
    )


def _close() -> None:
    st.query_params.pop(CUSTOMER_PARAM, None)
    for key in (LEDGER_CURSORS, ORDER_CURSORS, DOC_CURSORS):
        st.session_state.pop(key, None)


# --- one customer --------------------------------------------------------------------------------


def _customer(ctx: PageContext, public_id: str) -> None:
    try:
        with ctx.database.session() as session:
            profile = cs.customer_profile(session, ctx.actor, public_id)
    except NotFound:
        st.error(f"No such customer: {plain(public_id[:64])}", icon=":material/person_off:")
        return
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.subheader(plain(profile.name), anchor=False)  # a customer's name is text, never markdown or a link
    st.caption(f"{profile.public_id} · {plain(profile.email)}" + (" · sandbox" if profile.sandbox else ""))
    balance, paid_credits, promotional, topups, refunds, orders, paid = st.columns(7)
    balance.metric("Credits balance", format_credits(profile.balance))
    paid_credits.metric("Paid credits", format_credits(profile.balance_by_pool[CreditPool.PAID]))
    promotional.metric("Promotional credits", format_credits(profile.balance_by_pool[CreditPool.PROMOTIONAL]))
    topups.metric("Topped up", format_credits(profile.balance_by_kind.get(LedgerKind.TOPUP, 0)))
    refunds.metric("Taken back", format_credits(-profile.balance_by_kind.get(LedgerKind.REFUND, 0)))
    orders.metric("Orders", f"{profile.order_count:,}")
    paid.metric("Paid, all time", format_cents(profile.paid_cents))
    tabs = st.tabs(
        [
            "Profile",
            "Orders",
            "Ledger",
            "Invoices",
            "Refunds",
            "Audit",
            "Bills tab (as the customer sees it)",
            "Adjustments",
        ]
    )
    with tabs[0]:
        ui.facts_table("Profile", profile_frame(profile))
        _edit(ctx, profile)
        support.new_details_offer(ctx, profile.public_id)
    with tabs[1]:
        _orders(ctx, profile)
    with tabs[2]:
        _ledger(ctx, profile)
    with tabs[3]:
        _documents(ctx, profile)
    with tabs[4]:
        _refunds(ctx, profile)
    with tabs[5]:
        _audit(ctx, profile)
    with tabs[6]:
        _bills(ctx, profile)
    with tabs[7]:
        _adjustments(ctx, profile)


def profile_frame(p: cs.Profile) -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("Name", p.name),
            ("Company", p.company or "—"),
            ("Country", p.country),
            ("Tax id", p.tax_id or "—"),
            ("Email", p.email),
            ("Billing address", p.address or "—"),
            ("Sandbox", "yes" if p.sandbox else "no"),
            ("Created (UTC)", f"{p.created_at:%Y-%m-%d %H:%M}"),
            ("Customer id", p.public_id),
        ],
        columns=["Field", "Value"],
    )


def _pager(key: str, cursor: cs.Cursor | None) -> None:
    """First and next page buttons over the cursors of the pages seen, kept in the session."""
    cursors = st.session_state.setdefault(key, [])
    first, following, _ = st.columns([1, 1, 4])
    first.button("First page", key=f"{key}_first", on_click=cursors.clear, disabled=not cursors)
    following.button("Next page", key=f"{key}_next", on_click=cursors.append, args=(cursor,), disabled=cursor is None)


def _start(key: str) -> cs.Cursor | None:
    cursors = st.session_state.setdefault(key, [])
    return cursors[-1] if cursors else None


def _orders(ctx: PageContext, profile: cs.Profile) -> None:
    with ctx.database.session() as session:
        rows, cursor = cs.orders_page(session, ctx.actor, profile.id, size=PAGE_SIZE, after=_start(ORDER_CURSORS))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Order": f"/orders?order={o.public_id}",
                    "Created (UTC)": f"{o.created_at:%Y-%m-%d %H:%M}",
                    "Status": o.status.value,
                    "Plan": o.plan.value,
                    "Method": o.method.value,
                    "Amount": format_cents(o.amount_cents),
                    "Total": format_cents(o.total_cents),
                    "Credits": format_credits(o.credits),
                    "Invoice": o.invoice_number or "—",
                }
                for o in rows
            ],
            columns=["Order", "Created (UTC)", "Status", "Plan", "Method", "Amount", "Total", "Credits", "Invoice"],
        ),
        hide_index=True,
        column_config={"Order": st.column_config.LinkColumn("Order", display_text=r"order=(.*)")},
    )
    _pager(ORDER_CURSORS, cursor)


def _ledger(ctx: PageContext, profile: cs.Profile) -> None:
    st.caption(f"The balance, {format_credits(profile.balance)} credits, is the sum of these entries.")
    with ctx.database.session() as session:
        rows, cursor = cs.ledger_page(session, ctx.actor, profile.id, size=PAGE_SIZE, after=_start(LEDGER_CURSORS))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When (UTC)": f"{r.created_at:%Y-%m-%d %H:%M}",
                    "Kind": r.kind.value,
                    "Pool": r.pool.value,
                    "Credits": _text.signed_credits(r.credits),
                    "Order": r.order_public_id or "—",
                    "Note": r.note or "",
                    "By": r.created_by,
                }
                for r in rows
            ],
            columns=["When (UTC)", "Kind", "Pool", "Credits", "Order", "Note", "By"],
        ),
        hide_index=True,
    )
    _pager(LEDGER_CURSORS, cursor)


def _documents(ctx: PageContext, profile: cs.Profile) -> None:
    with ctx.database.session() as session:
        rows, cursor = cs.documents_page(session, ctx.actor, profile.id, size=PAGE_SIZE, after=_start(DOC_CURSORS))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Number": r.number,
                    "Kind": r.kind.value.replace("_", " "),
                    "Issued (UTC)": f"{r.issued_at:%Y-%m-%d}",
                    "Total": format_cents(r.total_cents),
                    "Order": r.order_public_id,
                }
                for r in rows
            ],
            columns=["Number", "Kind", "Issued (UTC)", "Total", "Order"],
        ),
        hide_index=True,
    )
    _pager(DOC_CURSORS, cursor)
    if rows:
        chosen = st.selectbox("Download a PDF", [r.number for r in rows], key="cust_pdf_pick")
        document = next(r for r in rows if r.number == chosen)
        st.download_button(
            f"Download {chosen}.pdf",
            data=lambda: storage.issued_pdf(ctx.database, ctx.actor, document.id, settings=ctx.settings)[1],
            file_name=f"{chosen}.pdf",
            mime="application/pdf",
            icon=":material/picture_as_pdf:",
            key="cust_pdf",
        )


def _refunds(ctx: PageContext, profile: cs.Profile) -> None:
    with ctx.database.session() as session:
        rows = cs.refunds_for(session, ctx.actor, profile.id)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When (UTC)": f"{r.created_at:%Y-%m-%d %H:%M}",
                    "Order": r.order_public_id,
                    "Amount": format_cents(r.amount_cents),
                    "Credits taken back": format_credits(r.credits),
                    "Reason": r.reason,
                    "By": r.created_by,
                }
                for r in rows
            ],
            columns=["When (UTC)", "Order", "Amount", "Credits taken back", "Reason", "By"],
        ),
        hide_index=True,
    )


def _audit(ctx: PageContext, profile: cs.Profile) -> None:
    with ctx.database.session() as session:
        rows = cs.audit_events_for(session, ctx.actor, profile.id)
    st.dataframe(
        pd.DataFrame(
            [
                {"When (UTC)": f"{e.at:%Y-%m-%d %H:%M}", "Who": e.actor, "What": e.action, "Record": e.record}
                | {"Reason": e.reason or "—"}
                for e in rows
            ],
            columns=["When (UTC)", "Who", "What", "Record", "Reason"],
        ),
        hide_index=True,
    )


def _bills(ctx: PageContext, profile: cs.Profile) -> None:
    st.caption(
        "The product's Billing history for this customer: an unpaid order offers “Complete Order” "
        "(resume its payment from the order's page to get the message to send), a paid one its invoice."
    )
    with ctx.database.session() as session:
        orders, _ = cs.orders_page(session, ctx.actor, profile.id, size=PAGE_SIZE, after=_start(ORDER_CURSORS))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Date": f"{b.created_at:%Y-%m-%d}",
                    "Description": b.description,
                    "Amount": format_cents(b.amount_cents),
                    "Total paid": format_cents(b.total_cents),
                    "Credits": format_credits(b.credits),
                    "Status": b.status,
                    "": b.action,
                }
                for b in cs.bill_rows(orders)
            ],
            columns=["Date", "Description", "Amount", "Total paid", "Credits", "Status", ""],
        ),
        hide_index=True,
    )


def _edit(ctx: PageContext, profile: cs.Profile) -> None:
    if not may(ctx.actor, Action.EDIT_CUSTOMER):
        st.caption("Billing details are changed by finance (they appear on invoices).")
        return
    with st.expander("Edit billing details", icon=":material/edit:"):
        st.caption("Issued invoices keep the details frozen at issue; new documents use the new ones.")
        address = st.text_area(
            "Billing address", value=profile.address or "", key="edit_address", max_chars=cs.ADDRESS_MAX_CHARS
        )
        company = st.text_input(
            "Company", value=profile.company or "", key="edit_company", max_chars=cs.COMPANY_MAX_CHARS
        )
        tax_id = st.text_input("Tax id", value=profile.tax_id or "", key="edit_tax_id", max_chars=cs.TAX_ID_MAX_CHARS)
        country = st.text_input("Country (ISO code)", value=profile.country, key="edit_country", max_chars=2)
        reason = st.text_input("Reason (kept in the audit log)", key="edit_reason", max_chars=REASON_MAX_CHARS)
        if st.button("Save billing details", key="edit_save", type="primary"):
            try:
                with ctx.database.session() as session:
                    cs.update_billing_details(
                        session,
                        ctx.actor,
                        profile.public_id,
                        reason=reason,
                        address=address,
                        company=company,
                        tax_id=tax_id,
                        country=country,
                    )
            except BillingError as exc:
                st.error(plain(exc), icon=":material/error:")
                return
            st.success("Saved; the audit log has the change with before and after.", icon=":material/check_circle:")


def _adjustments(ctx: PageContext, profile: cs.Profile) -> None:
    """Goodwill grants and correction debits: proposed here, approved by finance in the Approvals queue."""
    if not may(ctx.actor, Action.PROPOSE_ADJUSTMENT):
        st.caption("Adjustments are proposed by support or finance.")
        return
    st.caption(
        "A grant (positive credits) or a correction debit (negative) is booked only when finance approves it; "
        "nobody approves their own, and large ones need two approvals."
    )
    with st.form("propose_adjustment", clear_on_submit=True):
        credits = st.text_input("Credits (e.g. 25 or -25)", key="adj_credits", max_chars=20)
        pool = st.radio("Credits kind", [p.value for p in CreditPool], key="adj_pool", horizontal=True, index=1)
        reason = st.text_input("Reason (kept in the audit log)", key="adj_reason", max_chars=REASON_MAX_CHARS)
        note = st.text_input("Note the customer sees", key="adj_note", max_chars=approvals.NOTE_MAX_CHARS)
        if st.form_submit_button("Propose adjustment", type="primary"):
            try:
                with ctx.database.session() as session:
                    proposal = approvals.propose_adjustment(
                        session,
                        ctx.actor,
                        profile.public_id,
                        credits=credits,
                        pool=pool,
                        reason=reason,
                        note=note,
                        settings=ctx.settings,
                    )
            except BillingError as exc:
                st.error(plain(exc), icon=":material/error:")
            else:
                need = "two approvals" if proposal.approvals_needed > 1 else "an approval"
                st.success(f"Proposal {proposal.id} waits for {need} from finance.", icon=":material/pending:")
    with ctx.database.session() as session:
        rows = approvals.proposals_for(session, ctx.actor, profile.public_id)
    st.dataframe(proposals_frame(rows), hide_index=True)


def proposals_frame(rows: list[approvals.QueueRow]) -> pd.DataFrame:
    """Proposals as a table: what each would do (credits of which pool, or an order's refund or completion),
    who proposed it and why, and how far its approvals got."""
    columns = ["Proposal", "Status", "What", "Customer", "Order", "Amount", "Credits", "Pool", "Reason"]
    columns += ["Customer note", "Proposed by", "Proposed (UTC)", "Expires (UTC)", "Approvals", "Outcome"]
    return pd.DataFrame(
        [
            {
                "Proposal": r.id,
                "Status": r.status.value,
                "What": _proposal_what(r),
                "Customer": r.customer_name,
                "Order": r.order_public_id or "",
                "Amount": format_cents(r.amount_cents) if r.amount_cents is not None else "",
                "Credits": _text.signed_credits(r.credits),
                "Pool": r.pool.value,
                "Reason": r.reason,
                "Customer note": r.note or "",
                "Proposed by": r.proposed_by,
                "Proposed (UTC)": f"{r.proposed_at:%Y-%m-%d %H:%M}",
                "Expires (UTC)": f"{r.expires_at:%Y-%m-%d %H:%M}",
                "Approvals": f"{len(r.approved_by)} of {r.approvals_needed}"
                + (f" ({', '.join(r.approved_by)})" if r.approved_by else ""),
                "Outcome": f"refund {r.refund_status.value}" if r.refund_status else "",
            }
            for r in rows
        ],
        columns=columns,
    )


def _proposal_what(r: approvals.QueueRow) -> str:
    if r.kind is ApprovalKind.REFUND:
        return "refund"
    if r.kind is ApprovalKind.COMPLETION:
        return f"manual completion, reference {r.reference}"
    return "grant" if r.credits > 0 else "correction debit"


if __name__ == "__main__":
    _guard.hand_over_to_router()
