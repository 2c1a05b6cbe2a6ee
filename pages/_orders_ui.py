"""Pieces of the Orders page: its tables (search results, an order's facts, the timeline) and the
bulk tabs (reconcile stuck orders, import a settlement file).

Money and credits are formatted here; every figure comes from billing_core. Tables are dataframes, so
text from customers or files is shown as text, never as markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from billing_core.core.errors import BillingError
from billing_core.core.money import format_cents, format_credits
from billing_core.orders.detail import OrderDetail, RefundView, TimelineEvent
from billing_core.orders.refunds import WHAT_TO_DO, RefundPlan
from billing_core.orders.search import OrderRow
from billing_core.pricing.catalog import Method
from billing_core.reconcile import settlement
from billing_core.reconcile import stuck as reconcile
from billing_core.reconcile.settlement import SettlementPreview
from billing_core.reconcile.stuck import ReconcileReport
from pages._shared import PageContext, hand_over_to_router, plain

REPORT_KEY = "orders_reconcile_report"
STATUS_COLOURS = {
    "pending": "orange",
    "paid": "green",
    "failed": "red",
    "expired": "gray",
    "cancelled": "gray",
    "refunded": "violet",
    "partially_refunded": "violet",
}


def _when(at) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else "—"


def results_frame(rows: Iterable[OrderRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Order": r.public_id,
                "Created (UTC)": _when(r.created_at),
                "Customer": r.customer_name,
                "Email": r.customer_email,
                "Status": r.status.value,
                "Plan": r.plan.value,
                "Method": r.method.value,
                "Amount": format_cents(r.amount_cents),
                "Total": format_cents(r.total_cents),
                "Credits": format_credits(r.credits),
                "Invoice": r.invoice_number or "—",
                "Provider ref": r.provider_ref or "—",
            }
            for r in rows
        ],
        columns=[
            "Order",
            "Created (UTC)",
            "Customer",
            "Email",
            "Status",
            "Plan",
            "Method",
            "Amount",
            "Total",
            "Credits",
            "Invoice",
            "Provider ref",
        ],
    )


def facts_table(title: str, frame: pd.DataFrame) -> None:
    """A small titled table shown whole, its first column narrow."""
    st.markdown(f"**{title}**")
    first = st.column_config.TextColumn(width="small")
    st.dataframe(frame, hide_index=True, height="content", column_config={frame.columns[0]: first})


def _facts(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["Field", "Value"])


def customer_frame(detail: OrderDetail) -> pd.DataFrame:
    c = detail.customer
    return _facts(
        [
            ("Name", c.name),
            ("Email", c.email),
            ("Company", c.company or "—"),
            ("Country", c.country),
            ("Tax id", c.tax_id or "—"),
            ("Customer id", c.public_id),
            ("Credits balance", format_credits(detail.balance)),
        ]
    )


def order_frame(detail: OrderDetail) -> pd.DataFrame:
    o = detail.order
    return _facts(
        [
            ("Plan", o.plan.value),
            ("Method", o.method.value + (" (sandbox)" if o.sandbox else "")),
            ("Amount", format_cents(o.amount_cents, o.currency)),
            ("Fee", format_cents(o.fee_cents, o.currency)),
            ("Total charged", format_cents(o.total_cents, o.currency)),
            ("Credits", format_credits(o.credits)),
            ("Pricing version", o.pricing_version),
            ("Created (UTC)", _when(o.created_at)),
            ("Expires (UTC)", _when(o.expires_at)),
            ("Paid (UTC)", _when(o.paid_at)),
            ("Completed by", o.completed_by or "—"),
            ("Completion reason", o.completion_reason or "—"),
            ("Invoice", detail.invoice_number or "—"),
            ("Credit notes", ", ".join(detail.credit_notes) or "—"),
        ]
    )


def truth_frame(detail: OrderDetail) -> pd.DataFrame:
    """Our books beside the gateway's latest answer, one row per fact."""
    o, check = detail.order, detail.latest_check
    gateway = (
        {
            "Status": check.state,
            "Amount": format_cents(check.amount_cents, check.currency.upper()),
            "Currency": check.currency.upper(),
            "Reference": check.ref,
            "Refunded": format_cents(check.refunded_cents, check.currency.upper()),
            "Checked (UTC)": f"{_when(check.checked_at)} by {check.checked_by}",
        }
        if check
        else {}
    )
    ours = {
        "Status": o.status.value,
        "Amount": format_cents(o.total_cents, o.currency),
        "Currency": o.currency,
        "Reference": o.provider_ref or "—",
        "Refunded": format_cents(detail.refunded_cents, o.currency),
        "Checked (UTC)": "",
    }
    return pd.DataFrame(
        [{"": fact, "Here": ours[fact], "At the gateway": gateway.get(fact, "not checked yet")} for fact in ours]
    )


def timeline_frame(events: Iterable[TimelineEvent]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"When (UTC)": _when(e.at), "What": e.what, "Who": e.who or "—", "Reason": e.reason, "Detail": e.detail}
            for e in events
        ],
        columns=["When (UTC)", "What", "Who", "Reason", "Detail"],
    )


def refund_plan_words(plan: RefundPlan) -> str:
    whole = " (all of it)" if plan.full else ""
    after = plan.balance - plan.credits_taken_back
    pending = f" ({format_cents(plan.pending_cents)} more is pending)" if plan.pending_cents else ""
    return (
        f"Refunds {format_cents(plan.amount_cents)} of {format_cents(plan.remaining_cents)} refundable{whole}"
        f"{pending}; takes back {format_credits(plan.credits_taken_back)} credits; "
        f"paid credits {format_credits(plan.balance)} → {format_credits(after)}."
    )


def pending_refunds_words(pending: list[RefundView]) -> str:
    each = "; ".join(f"{format_cents(r.amount_cents)} requested by {r.by} at {_when(r.at)} UTC" for r in pending)
    return (
        f"Refund pending: {each}. The gateway's answer is not recorded yet, so nothing of it counts as refunded. "
        f"{WHAT_TO_DO}"
    )


def reconcile_counts_frame(report: ReconcileReport) -> pd.DataFrame:
    return pd.DataFrame([{"Outcome": o.value, "Orders": n} for o, n in report.counts.items()])


def reconcile_rows_frame(report: ReconcileReport) -> pd.DataFrame:
    return pd.DataFrame([row.as_dict() for row in report.rows])


def settlement_counts_frame(shown: SettlementPreview) -> pd.DataFrame:
    return pd.DataFrame([{"Verdict": v.value, "Lines": n} for v, n in shown.counts.items()])


def settlement_lines_frame(shown: SettlementPreview) -> pd.DataFrame:
    return pd.DataFrame([line.as_dict() for line in shown.lines])


# --- bulk reconcile and settlement files -------------------------------------------------------------


def reconcile_tab(ctx: PageContext) -> None:
    st.caption("Asks the gateway about every pending or expired order in the range and completes the paid ones.")
    today = datetime.now(UTC).date()
    dates_col, methods_col = st.columns(2)
    dates = dates_col.date_input("Created between (UTC)", value=(today - timedelta(days=7), today), key="r_dates")
    methods = methods_col.multiselect("Methods", [m.value for m in Method], key="r_methods", placeholder="all")
    if len(dates) != 2:
        st.info("Pick the last day of the range.")
        return
    since, until = _day(dates[0]), _day(dates[1] + timedelta(days=1))
    chosen = [Method(m) for m in methods] or None
    try:
        with ctx.database.session() as session:
            stuck = reconcile.count_stuck(session, ctx.actor, since=since, until=until, methods=chosen)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.metric("Stuck orders in range", f"{stuck:,}")
    if st.button("Run reconcile", key="run_reconcile", type="primary", icon=":material/sync:", disabled=not stuck):
        bar = st.progress(0.0, text="Asking the gateway…")

        def show(done: int, total: int) -> None:
            bar.progress(done / total if total else 1.0, text=f"Checked {done:,} of {total:,} orders")

        try:
            report = reconcile.reconcile(
                ctx.database, ctx.actor, ctx.settings, since=since, until=until, methods=chosen, progress=show
            )
        except BillingError as exc:
            st.error(plain(exc), icon=":material/error:")
            return
        st.session_state[REPORT_KEY] = report
        st.rerun()  # so the count above shows what is still stuck
    if (report := st.session_state.get(REPORT_KEY)) is not None:
        st.success(plain(report.summary()), icon=":material/task_alt:")
        st.dataframe(reconcile_counts_frame(report), hide_index=True)
        st.dataframe(reconcile_rows_frame(report), hide_index=True)
        st.download_button("Download CSV", report.to_csv(), "reconcile.csv", "text/csv", key="reconcile_csv")


def _day(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def settlement_tab(ctx: PageContext) -> None:
    st.caption("Airwallex or Alipay settlement CSV: preview what it would complete, then apply it.")
    uploaded = st.file_uploader("Settlement file (.csv)", type=["csv"], key="settlement_file")
    if uploaded is None:
        return
    try:
        parsed = settlement.parse_settlement(uploaded.getvalue(), uploaded.name)
        with ctx.database.session() as session:
            shown = settlement.preview(session, ctx.actor, parsed)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.caption(f"{parsed.provider.value.title()} file · {len(shown.lines):,} lines")
    if shown.previously_imported:
        st.warning(plain(shown.previously_imported), icon=":material/history:")
    st.dataframe(settlement_counts_frame(shown), hide_index=True)
    st.dataframe(settlement_lines_frame(shown), hide_index=True)
    confirmed = st.checkbox(f"I confirm: complete the {len(shown.to_complete)} orders this file shows paid")
    if st.button("Apply settlement file", key="apply_settlement", type="primary", disabled=not confirmed):
        bar = st.progress(0.0, text="Completing orders…")
        try:
            result = settlement.apply(
                ctx.database,
                ctx.actor,
                ctx.settings,
                parsed,
                progress=lambda done, total: bar.progress(done / total if total else 1.0),
            )
        except BillingError as exc:
            st.error(plain(exc), icon=":material/error:")
            return
        st.success(plain(result.summary()), icon=":material/task_alt:")
        for line, problem in result.errors:
            st.error(plain(f"Line {line}: {problem}"))


if __name__ == "__main__":
    hand_over_to_router()
