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
from pages._guard import PageContext, hand_over_to_router
from pages._text import plain

REPORT_KEY = "orders_reconcile_report"
PREVIEW_KEY = "orders_reconcile_preview"  # (range, dry-run report): Apply waits for a dry run of the range
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


def gateway_words(row: OrderRow, problem: str = "") -> str:
    """The list's "Gateway (last check)" cell: why it could not be asked, or its last answer and when."""
    if problem:
        return problem
    if row.gateway_state is None:
        return "not checked"
    # With its year: a stuck order's last check can be a year old (the demo's oldest is 14 months).
    return (
        f"{row.gateway_state} · {row.gateway_checked_at:%Y-%m-%d %H:%M}"
        if row.gateway_checked_at
        else row.gateway_state
    )


def results_frame(rows: Iterable[OrderRow], problems: dict[str, str] | None = None) -> pd.DataFrame:
    problems = problems or {}
    return pd.DataFrame(
        [
            {
                "Order": r.public_id,
                "Created (UTC)": _when(r.created_at),
                "Customer": r.customer_name,
                "Email": r.customer_email,
                "Status": r.status.value,
                "Gateway (last check)": gateway_words(r, problems.get(r.public_id, "")),
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
            "Gateway (last check)",
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
    other = reconcile.Outcome.COMPLETED if report.dry_run else reconcile.Outcome.WOULD_COMPLETE
    return pd.DataFrame([{"Outcome": o.value, "Orders": n} for o, n in report.counts.items() if o is not other])


def reconcile_rows_frame(report: ReconcileReport) -> pd.DataFrame:
    return pd.DataFrame([row.as_dict() for row in report.rows])


def settlement_counts_frame(shown: SettlementPreview) -> pd.DataFrame:
    return pd.DataFrame([{"Verdict": v.value, "Lines": n} for v, n in shown.counts.items() if n])


def settlement_lines_frame(shown: SettlementPreview) -> pd.DataFrame:
    return pd.DataFrame([line.as_dict() for line in shown.lines])


# --- bulk reconcile and settlement files -------------------------------------------------------------


def reconcile_tab(ctx: PageContext) -> None:
    st.caption(
        "Asks the gateway about every pending or expired order in the range and completes the paid ones: "
        "a dry run first lists what each order would become and changes nothing."
    )
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
    scope = (since, until, tuple(chosen or ()))
    preview = st.session_state.get(PREVIEW_KEY)
    previewed = preview is not None and preview[0] == scope
    dry, apply = st.columns(2)
    if dry.button("Dry run", key="dry_run_reconcile", icon=":material/preview:", disabled=not stuck):
        report = _run_reconcile(ctx, since, until, chosen, dry_run=True)
        if report is not None:
            st.session_state[PREVIEW_KEY] = (scope, report)
            st.session_state.pop(REPORT_KEY, None)
            st.rerun()
    confirmed = previewed and st.checkbox(
        "I confirm: complete the orders the gateway says are paid (it is asked again)", key="reconcile_confirm"
    )
    if apply.button(
        "Apply",
        key="run_reconcile",
        type="primary",
        icon=":material/sync:",
        disabled=not (stuck and confirmed),
        help="Run a dry run of this range first; it lists what each order would become.",
    ):
        report = _run_reconcile(ctx, since, until, chosen, dry_run=False)
        if report is not None:
            st.session_state[REPORT_KEY] = report
            st.session_state.pop(PREVIEW_KEY, None)
            st.rerun()  # so the count above shows what is still stuck
    shown = st.session_state.get(REPORT_KEY) or (preview[1] if previewed else None)
    if shown is not None:
        box = st.info if shown.dry_run else st.success
        box(plain(shown.summary()), icon=":material/preview:" if shown.dry_run else ":material/task_alt:")
        st.dataframe(reconcile_counts_frame(shown), hide_index=True)
        st.dataframe(reconcile_rows_frame(shown), hide_index=True)
        name = "reconcile-dry-run.csv" if shown.dry_run else "reconcile.csv"
        st.download_button("Download CSV", shown.to_csv(), name, "text/csv", key="reconcile_csv")


def _run_reconcile(ctx: PageContext, since, until, methods, *, dry_run: bool) -> ReconcileReport | None:
    bar = st.progress(0.0, text="Asking the gateway…")

    def show(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Checked {done:,} of {total:,} orders")

    try:
        return reconcile.reconcile(
            ctx.database, ctx.actor, ctx.settings, since=since, until=until, methods=methods, progress=show,
            dry_run=dry_run,
        )  # fmt: skip
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return None


def _day(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


KIND_CHOICES = {"Not said yet": None, "Payments": "payment", "Refunds": "refund"}


@st.cache_resource(max_entries=4, show_spinner="Reading the report…")
def _parsed(data: bytes, name: str, kind: str | None) -> settlement.ParsedFile:
    """A report is read once, not on every rerun of the tab (a 50,000-row file takes a second or more);
    the parsed file is immutable, so every session may share it. Refusals are not kept."""
    return settlement.parse_settlement(data, name, kind=kind)


def settlement_tab(ctx: PageContext) -> None:
    st.caption(
        "Airwallex or Alipay settlement report (CSV, zip or xlsx, as the dashboard or SFTP gives it): "
        "preview what it would complete, then apply it. Only payment rows complete orders."
    )
    uploaded = st.file_uploader("Settlement report", type=["csv", "txt", "zip", "xlsx"], key="settlement_file")
    if uploaded is None:
        return
    if st.session_state.get("settlement_kind_file") != uploaded.file_id:  # a new file: nobody has said yet
        st.session_state["settlement_kind_file"] = uploaded.file_id
        st.session_state["settlement_kind"] = "Not said yet"
    kind = KIND_CHOICES[st.session_state["settlement_kind"]]
    try:
        parsed = _parsed(uploaded.getvalue(), uploaded.name, kind)
        with ctx.database.session() as session:
            shown = settlement.preview(session, ctx.actor, parsed)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    st.caption(f"Recognised: {plain(parsed.recognised)} · {len(shown.lines):,} line{'s' * (len(shown.lines) != 1)}")
    if not parsed.kind_stated:
        st.radio(
            "This file does not say whether its rows are payments or refunds. What are they?",
            list(KIND_CHOICES),
            key="settlement_kind",
            horizontal=True,
        )
        if parsed.needs_kind:
            st.warning("Nothing in this file will complete an order until you say what its rows are.")
    if shown.previously_imported:
        st.warning(plain(shown.previously_imported), icon=":material/history:")
    if flagged := shown.refunds_not_in_books:
        st.warning(
            f"{len(flagged)} refund{'s' * (len(flagged) != 1)} at the provider with no refund in our books: "
            "finance should look into them (listed below as “refund not in our books” and kept with the import).",
            icon=":material/flag:",
        )
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
