"""Audit log: every recorded change, filtered by who, what, which record and when, newest first;
the before/after of one event; a CSV of everything that matches.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_shared.hand_over_to_router``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from billing_core.access import audit
from billing_core.core import exports
from billing_core.core.errors import BillingError
from pages import _shared
from pages._shared import PageContext, plain

PAGE_SIZE = 50
ANY = "any"
CURSORS_KEY = "audit_cursors"
FILTERS_KEY = "audit_filters"
TABLE_KEY = "audit_table"
ROWS_KEY = "audit_rows"


def render() -> None:
    ctx = _shared.page_context("audit")
    st.title("Audit log")
    st.caption("Every recorded change: when, who with which role, what, which record, why, and before/after.")
    try:
        with ctx.database.session() as session:
            actions, types = audit.known_values(session, ctx.actor)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    filters = _filters(actions, types)
    if filters is not None:
        _events(ctx, filters)


def _filters(actions: list[str], types: list[str]) -> audit.AuditFilters | None:
    who_col, action_col, type_col, id_col, period_col = st.columns([3, 2, 2, 2, 3])
    who = who_col.text_input("Who (part of the email)", key="audit_who", max_chars=320)
    prefixes = sorted({a.split(".", 1)[0] + "." for a in actions if "." in a})
    action = action_col.selectbox("What", [ANY, *prefixes, *actions], key="audit_action")
    entity_type = type_col.selectbox("Record type", [ANY, *types], key="audit_type")
    entity_id = id_col.text_input("Record id", key="audit_id", max_chars=64, placeholder="e.g. ord_…")
    period = period_col.date_input("Period (UTC days)", value=(), key="audit_period")
    since, until = (*period, None, None)[:2]
    return audit.AuditFilters(
        who=who,
        action="" if action == ANY else action,
        entity_type="" if entity_type == ANY else entity_type,
        entity_id=entity_id,
        since=since,
        until=until or since,
    )


def _events(ctx: PageContext, filters: audit.AuditFilters) -> None:
    if st.session_state.get(FILTERS_KEY) != filters:
        st.session_state[FILTERS_KEY] = filters
        st.session_state[CURSORS_KEY] = []
    cursors: list[audit.Cursor] = st.session_state[CURSORS_KEY]
    try:
        with ctx.database.session() as session:
            page = audit.search_events(session, ctx.actor, filters, PAGE_SIZE, cursors[-1] if cursors else None)
            rows = [audit.event_row(event) for event in page.events]
            changes = [(event.before, event.after) for event in page.events]
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.caption(f"Page {len(cursors) + 1}, newest first · {len(rows)} events on this page · select one for its changes")
    table = pd.DataFrame(rows, columns=audit.EXPORT_COLUMNS).drop(columns=["Before", "After"])
    st.dataframe(table, key=TABLE_KEY, on_select="rerun", selection_mode="single-row", hide_index=True)
    first, following, download = st.columns([1, 1, 3])
    first.button("First page", key="audit_first", on_click=cursors.clear, disabled=not cursors)
    following.button(
        "Next page",
        key="audit_next",
        on_click=cursors.append,
        args=(page.next_after,),
        disabled=page.next_after is None,
    )
    download.download_button(
        "Download CSV of all matching events",
        data=lambda: _csv(ctx, filters),
        file_name="audit-log.csv",
        mime="text/csv",
        icon=":material/download:",
        key="audit_csv",
    )
    selected = st.session_state[TABLE_KEY].selection.rows if TABLE_KEY in st.session_state else []
    if selected and selected[0] < len(rows):
        _change(rows[selected[0]], *changes[selected[0]])


def _change(row: dict[str, str], before: dict | None, after: dict | None) -> None:
    """One event's before/after, shown as data: a field-by-field table and the raw JSON."""
    st.subheader("Change", anchor=False)
    st.dataframe(pd.DataFrame([row]).drop(columns=["Before", "After"]), hide_index=True)
    st.dataframe(
        pd.DataFrame(audit.changes(before, after), columns=["Field", "Changed", "Before", "After"]), hide_index=True
    )
    left, right = st.columns(2)
    with left:
        st.caption("Before")
        st.json(before if before is not None else {}, expanded=True)
    with right:
        st.caption("After")
        st.json(after if after is not None else {}, expanded=True)


def _csv(ctx: PageContext, filters: audit.AuditFilters) -> bytes:
    with ctx.database.session() as session:
        rows = audit.export_rows(session, ctx.actor, filters)
    return exports.to_csv_bytes(rows, audit.EXPORT_COLUMNS)


if __name__ == "__main__":
    _shared.hand_over_to_router()
