"""Credits (finance): the liability roll-forward with its drill-down to customers, and usage imports.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_guard.hand_over_to_router``).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from billing_core.access.roles import Action, may
from billing_core.core.errors import BillingError
from billing_core.core.models import CreditPool, utcnow
from billing_core.core.money import format_cents, format_credits
from billing_core.credits import expiry, liability, usage
from pages import _guard
from pages._guard import PageContext
from pages._text import plain


def render() -> None:
    ctx = _guard.page_context("credits")
    st.title("Credits")
    liability_tab, usage_tab, expiry_tab = st.tabs(["Liability roll-forward", "Usage import", "Expiry"])
    with liability_tab:
        _liability(ctx)
    with usage_tab:
        _usage(ctx)
    with expiry_tab:
        _expiry(ctx)


def _expiry(ctx: PageContext) -> None:
    policy = ctx.settings.credits
    st.caption(
        f"Paid credits unused {policy.paid_expiry_days} days after their top-up expire, promotional ones "
        f"{policy.promotional_expiry_days} days after their grant; the oldest credits are used first."
    )
    # Each list reads every holder's top-ups and grants: asked for, not drawn on every run of the page.
    if st.button(f"List customers whose credits expire within {policy.notice_days} days", key="exp_soon"):
        with ctx.database.session() as session:
            st.dataframe(expiring_frame(expiry.soon(session, ctx.actor, policy)), hide_index=True)
    if not may(ctx.actor, Action.EXPIRE_CREDITS):
        return
    if st.button("Dry run: what would expire now", key="exp_plan"):
        with ctx.database.session() as session:
            st.session_state["exp_lines"] = expiry.plan(session, ctx.actor, policy)
    lines = st.session_state.get("exp_lines")
    if lines is None:
        return
    st.dataframe(expiring_frame(lines), hide_index=True)
    confirmed = st.checkbox(
        f"I confirm: expire these credits of {len({x.customer_id for x in lines}):,} customers", key="exp_ok"
    )
    if st.button("Book expiry", key="exp_book", type="primary", disabled=not (confirmed and lines)):
        done = expiry.book(ctx.database, ctx.actor, policy)
        st.session_state.pop("exp_lines", None)
        st.success(plain(done.summary()), icon=":material/task_alt:")


def expiring_frame(lines: list[expiry.Expiring]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Customer": f"/customers?customer={x.public_id}",
                "Email": x.email,
                "Kind": x.pool.value,
                "Credits": format_credits(x.credits),
                "Oldest lot (UTC)": f"{x.oldest:%Y-%m-%d}",
                "Expires (UTC)": f"{x.at:%Y-%m-%d}",
            }
            for x in lines[:1000]
        ],
        columns=["Customer", "Email", "Kind", "Credits", "Oldest lot (UTC)", "Expires (UTC)"],
    )


def _liability(ctx: PageContext) -> None:
    st.caption(
        "What we owe customers in unused credits, per UTC month: opening + top-ups + grants − usage − refunds − "
        "expiry = closing, in credits and in USD at the price paid. Promotional credits are worth nothing in USD; "
        "expired paid credits are breakage."
    )
    with ctx.database.session() as session:
        lines = liability.roll_forward(session, ctx.actor)
    if not lines:
        st.info("No credits have moved yet.")
        return
    owed = liability.owed_now(lines)
    paid, promotional = owed[CreditPool.PAID], owed[CreditPool.PROMOTIONAL]
    month = f"{paid.month:%Y-%m}"
    left, middle, right = st.columns(3)
    left.metric(f"Owed in paid credits ({month})", format_credits(paid.credits.closing))
    middle.metric(f"Owed in USD at the price paid ({month})", format_cents(paid.usd.closing))
    right.metric(f"Promotional credits outstanding ({month})", format_credits(promotional.credits.closing))
    unit = st.segmented_control("Show", ["USD at price paid", "Credits"], default="USD at price paid", key="liab_unit")
    st.caption("Newest month first; the CSV lists the months in time order, as a spreadsheet charts them.")
    st.dataframe(roll_forward_frame(liability.newest_first(lines), usd=unit != "Credits"), hide_index=True)
    st.download_button(
        "Download CSV",
        liability.roll_forward_csv(lines),
        file_name=f"liability-{lines[0].month:%Y-%m}-to-{lines[-1].month:%Y-%m}.csv",
        mime="text/csv",
        key="liab_csv",
    )
    months = sorted({line.month for line in lines}, reverse=True)
    month = st.selectbox("Customers behind a month", months, format_func=lambda m: f"{m:%Y-%m}", key="liab_month")
    cursors = st.session_state.setdefault("liab_cursors", [])
    if st.session_state.get("liab_cursor_month") != month:
        cursors.clear()
        st.session_state["liab_cursor_month"] = month
    with ctx.database.session() as session:
        people, cursor = liability.customers_in_month(
            session, ctx.actor, month, after_customer_id=cursors[-1] if cursors else 0
        )
        if st.button("Check this month against the ledger", key="liab_check"):
            ledger_sums = liability.ledger_closing(session, ctx.actor, month)
            shown = {line.pool: line for line in lines if line.month == month}
            apart = [
                pool.value
                for pool, (credits, cents) in ledger_sums.items()
                if (shown[pool].credits.closing, shown[pool].usd.closing) != (credits, cents)
            ]
            if apart:
                st.error(f"The roll-forward differs from the ledger for {', '.join(apart)} credits.")
            else:
                st.success(f"{month:%Y-%m} closes at the ledger's sum, to the cent, for paid and promotional credits.")
    st.dataframe(customers_frame(people), hide_index=True, column_config=_LINKS)
    first, following, _ = st.columns([1, 1, 4])
    first.button("First page", key="liab_first", on_click=cursors.clear, disabled=not cursors)
    following.button("Next page", key="liab_next", on_click=cursors.append, args=(cursor,), disabled=cursor is None)


_LINKS = {"Customer": st.column_config.LinkColumn("Customer", display_text=r"customer=(.*)")}
_MOVES = ("opening", "topups", "grants", "usage", "refunds", "expiry", "closing")


def roll_forward_frame(lines: list[liability.MonthLine], *, usd: bool) -> pd.DataFrame:
    def shown(value: int) -> str:
        return format_cents(value) if usd else format_credits(value)

    columns = ["Month", "Pool", *(m.title() for m in _MOVES), "Breakage"]
    rows = []
    for line in lines:
        figures = line.usd if usd else line.credits
        row = {"Month": f"{line.month:%Y-%m}", "Pool": line.pool.value}
        row |= {m.title(): shown(getattr(figures, m)) for m in _MOVES}
        row["Breakage"] = format_cents(line.breakage_cents) if usd else "—"
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def customers_frame(people: list[liability.CustomerLine]) -> pd.DataFrame:
    columns = ["Customer", "Name", "Email", *(f"Paid {m}" for m in _MOVES), "Promotional closing"]
    rows = []
    for p in people:
        paid = p.moved[CreditPool.PAID]
        row = {"Customer": f"/customers?customer={p.public_id}", "Name": p.name, "Email": p.email}
        row |= {f"Paid {m}": format_credits(getattr(paid, m)) for m in _MOVES}
        row["Promotional closing"] = format_credits(p.moved[CreditPool.PROMOTIONAL].closing)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


@st.cache_resource(max_entries=4, show_spinner="Reading the usage file…")
def _parsed(data: bytes, name: str, today: date) -> usage.ParsedUsage:
    """A usage file is read once per file and day, not on every rerun of the tab (200,000 lines take
    seconds); the parsed file is immutable, so every session may share it. Refusals are not kept."""
    return usage.parse_usage(data, name, today=today)


def _usage(ctx: PageContext) -> None:
    st.caption(
        "The router's daily usage as CSV: customer (cus_… or email), day (YYYY-MM-DD), model, credits. "
        "Each customer, day and model is booked once; a corrected file books the difference."
    )
    if not may(ctx.actor, Action.IMPORT_USAGE):
        st.info(f"The {ctx.actor.role.value} role may look here; finance imports usage.", icon=":material/lock:")
        return
    uploaded = st.file_uploader("Usage file (.csv)", type=["csv"], key="usage_file")
    if uploaded is None:
        return
    try:
        parsed = _parsed(uploaded.getvalue(), uploaded.name, utcnow().date())
        with ctx.database.session() as session:
            shown = usage.preview(session, ctx.actor, parsed, ctx.settings.credits)
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    if shown.previously_imported:
        st.warning(plain(shown.previously_imported), icon=":material/history:")
    st.dataframe(counts_frame(shown), hide_index=True)
    if shown.overdrawn:
        st.warning(f"{len(shown.overdrawn)} lines take a balance below zero; they are booked and flagged.")
    st.dataframe(lines_frame(shown), hide_index=True)
    confirmed = st.checkbox(f"I confirm: book the {len(shown.to_book)} new and corrected lines", key="usage_ok")
    if st.button("Apply usage file", key="apply_usage", type="primary", disabled=not confirmed):
        bar = st.progress(0.0, text="Booking usage…")
        try:
            result = usage.apply(
                ctx.database,
                ctx.actor,
                parsed,
                policy=ctx.settings.credits,
                progress=lambda done, total: bar.progress(done / total if total else 1.0),
            )
        except BillingError as exc:
            st.error(plain(exc), icon=":material/error:")
            return
        st.success(plain(result.summary()), icon=":material/task_alt:")


def counts_frame(shown: usage.UsagePreview) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Verdict": v.value, "Lines": n} for v, n in shown.counts.items() if n], columns=["Verdict", "Lines"]
    )


def lines_frame(shown: usage.UsagePreview) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Line": line.line,
                "Verdict": line.verdict.value,
                "Customer": line.customer,
                "Day": line.day.isoformat() if line.day else "",
                "Model": line.model,
                "Credits": format_credits(line.credits),
                "Booked": format_credits(line.booked),
                "Below zero": "yes" if line.overdraws else "",
                "Why": line.reason,
            }
            for line in shown.lines[:1000]
        ],
        columns=["Line", "Verdict", "Customer", "Day", "Model", "Credits", "Booked", "Below zero", "Why"],
    )


if __name__ == "__main__":
    _guard.hand_over_to_router()
