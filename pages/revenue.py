"""Revenue: top-up revenue and trends by plan, method and customer cohort, from the revenue rollup.

Only functions: app.py registers ``render`` with st.navigation. The filters live in the URL query
string, so a view can be shared by link; figures are cached per filters and rollup version, so a
completed order shows on the next rerun.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from billing_core.access.roles import Actor
from billing_core.core import countries, money
from billing_core.core.errors import InvalidCountry
from billing_core.core.exports import to_csv_bytes
from billing_core.revenue import charts, rollup
from billing_core.revenue import report as reports
from billing_core.revenue.report import Filters, RevenueReport, Totals
from pages import _shared
from pages._shared import PageContext, plain, signed_cents

KEYS = ("rev_range", "rev_dates", "rev_tz", "rev_bucket", "rev_plans", "rev_methods", "rev_countries", "rev_kind")
BUCKET_LABELS = {"day": "Day", "week": "Week", "month": "Month"}
KIND_LABELS = {"all": "All customers", "new": "New", "returning": "Returning"}


def render() -> None:
    ctx = _shared.page_context("revenue")
    zones = ctx.settings.report_timezones
    if rollup.ensure_built(ctx.database, ctx.actor, zones) is not None:
        st.toast("Revenue figures rebuilt from the orders.", icon=":material/sync:")
    st.title("Revenue")

    with ctx.database.session() as session:
        first_days = {tz: reports.first_day(session, ctx.actor, tz) for tz in zones}  # an index seek each
    filters = _filters(zones, first_days)
    if filters is None:
        return
    st.query_params.from_dict(reports.filters_to_query_params(filters))
    for note in filters.notes:
        st.warning(plain(note), icon=":material/link_off:")
    with ctx.database.session() as session:
        version = rollup.version(session)
    report = _report(ctx.settings.database_url, ctx.actor, _cache_key(filters), version, filters)

    _kpis(report)
    _trend(report)
    _breakdowns(report)
    _top_customers(ctx, report, version)
    _pricing_whatif(ctx, filters)


# --- filters, kept in the URL ----------------------------------------------------------------------


def _filters(zones: tuple[str, ...], first_days: dict[str, date | None]) -> Filters | None:
    """The filters the widgets hold, or None when one of them is wrong (its error is shown under it)."""
    if "rev_range" not in st.session_state:
        from_url = reports.filters_from_query_params(st.query_params.to_dict(), timezones=zones, first_days=first_days)
        _load_from_url(from_url)
        for note in from_url.notes:  # what the shared link got wrong, said once
            st.warning(plain(note), icon=":material/link_off:")
    st.caption(
        "Top-ups of real customers (sandbox never counts). Revenue is the top-up amount; fees are "
        "what customers paid on top; refunds fall on the day they were made."
    )
    when, tz_column, bucket_column = st.columns([5, 2, 2])
    with tz_column:
        tz = st.selectbox("Time zone", zones, key="rev_tz", on_change=_range_changed, args=(first_days,))
    with when:
        preset_column, dates_column = st.columns(2)
        with preset_column:
            preset = st.selectbox(
                "Period",
                list(reports.PRESETS),
                key="rev_range",
                format_func=reports.PRESETS.get,
                on_change=_range_changed,
                args=(first_days,),
            )
        with dates_column:
            picked = st.date_input("Dates (first and last day)", key="rev_dates", on_change=_dates_changed)
    with bucket_column:
        bucket = st.segmented_control(
            "Per", reports.BUCKETS, key="rev_bucket", format_func=BUCKET_LABELS.get, selection_mode="single"
        )
    plans_column, methods_column, countries_column, kind_column = st.columns([3, 3, 3, 4])
    with plans_column:
        plans = st.multiselect(
            "Plans", reports.PLANS, key="rev_plans", format_func=charts.PLAN_LABELS.get, placeholder="All plans"
        )
    with methods_column:
        methods = st.multiselect(
            "Methods", reports.METHODS, key="rev_methods", format_func=charts.METHOD_LABELS.get, placeholder="All"
        )
    with countries_column:
        countries_text = st.text_input(
            "Countries",
            key="rev_countries",
            placeholder="e.g. Germany, US",
            max_chars=countries.COUNTRIES_MAX_CHARS,
            help="Country names or two-letter codes, separated by commas.",
        )
        try:
            picked_countries = countries.parse_countries(countries_text)
        except InvalidCountry as error:
            st.error(plain(error), icon=":material/error:")
            picked_countries = None
    with kind_column:
        kind = st.segmented_control(
            "Customers", reports.KINDS, key="rev_kind", format_func=KIND_LABELS.get, selection_mode="single"
        )

    if picked_countries is None:
        return None
    if preset == "custom" and isinstance(picked, tuple | list) and len(picked) == 2:
        start, end = picked[0], picked[1] + pd.Timedelta(days=1).to_pytimedelta()
    else:
        start, end = reports.preset_range(
            preset if preset != "custom" else reports.DEFAULT_PRESET, _today(tz), first_days.get(tz)
        )
    params = {"range": preset} if preset != "custom" else {"start": start.isoformat(), "end": end.isoformat()}
    params |= {"plan": ",".join(plans), "method": ",".join(methods), "country": ",".join(picked_countries)}
    params |= {"kind": kind or "all", "tz": tz, "bucket": bucket or "day"}
    return reports.filters_from_query_params(params, today=_today(tz), timezones=zones, first_days=first_days)


def _today(tz: str) -> date:
    return reports.today_in(tz)


def _load_from_url(filters: Filters) -> None:
    state = st.session_state
    state["rev_range"] = filters.preset
    state["rev_dates"] = (filters.start, _last_day(filters))
    state["rev_tz"] = filters.tz
    state["rev_bucket"] = filters.bucket
    state["rev_plans"] = list(filters.plans)
    state["rev_methods"] = list(filters.methods)
    state["rev_countries"] = ", ".join(filters.countries)
    state["rev_kind"] = filters.kind


def _last_day(filters: Filters) -> date:
    return filters.end - pd.Timedelta(days=1).to_pytimedelta()


def _range_changed(first_days: dict[str, date | None]) -> None:
    preset = st.session_state["rev_range"]
    if preset != "custom":
        tz = st.session_state["rev_tz"]
        start, end = reports.preset_range(preset, _today(tz), first_days.get(tz))
        st.session_state["rev_dates"] = (start, end - pd.Timedelta(days=1).to_pytimedelta())


def _dates_changed() -> None:
    st.session_state["rev_range"] = "custom"


def _cache_key(filters: Filters) -> tuple:
    return (*sorted(reports.filters_to_query_params(filters).items()), filters.start, filters.end)


@st.cache_data(ttl=3600, max_entries=128, show_spinner="Adding up revenue…")
def _report(url: str, actor: Actor, key: tuple, version: int, _filters: Filters) -> RevenueReport:
    """Cached per person, filters and rollup version: any order write bumps the version, so nothing stale shows."""
    with _shared.database(url).session() as session:
        return reports.revenue_report(session, actor, _filters, with_top_customers=False)


@st.cache_data(ttl=3600, max_entries=64, show_spinner="Finding the top customers…")
def _top(url: str, actor: Actor, first: date, last: date, version: int) -> pd.DataFrame:
    """Apart from the other figures: when its bounds cannot settle the ten, it groups every customer of the months."""
    with _shared.database(url).session() as session:
        return reports.top_customers(session, actor, first, last)[0]


# --- figures ----------------------------------------------------------------------------------------


def _delta_cents(now: int, before: int, show: bool) -> str | None:
    if not show:
        return None
    change = f" ({(now - before) / before:+.1%})" if before else ""
    return ("+" if now > before else "") + money.format_compact(now - before) + change


def _delta_count(now: int, before: int, show: bool) -> str | None:
    if not show:
        return None
    change = f" ({(now - before) / before:+.1%})" if before else ""
    return f"{now - before:+,}{change}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _exact(cents: int | None, before: int | None, show: bool, note: str = "") -> str:
    """The tooltip of a money tile: the exact amounts its compact figures stand for."""
    lines = [f"Exactly {money.format_cents(cents)}." if cents is not None else ""]
    if show and cents is not None and before is not None:
        lines.append(f"The period before: {money.format_cents(before)} ({signed_cents(cents - before)}).")
    return "  \n".join(line for line in (note, *lines) if line)


def _money_metric(
    column, label: str, now: int, before: int, show: bool, *, note: str = "", delta_color: str = "normal"
) -> None:
    column.metric(
        label,
        money.format_compact(now),
        _delta_cents(now, before, show),
        delta_color=delta_color,
        border=True,
        help=plain(_exact(now, before, show, note)),
    )


def _kpis(report: RevenueReport) -> None:
    now, before, show = report.current, report.previous, report.has_previous
    f = report.filters
    st.caption(
        f"{report.start:%d %b %Y} – {_last_day(f):%d %b %Y} ({f.tz})"
        + (f" · compared with the {(f.end - report.start).days:,} days before" if show else "")
    )
    row = st.columns(4)
    _money_metric(row[0], "Top-up revenue", now.amount_cents, before.amount_cents, show)
    row[1].metric("Paid top-ups", f"{now.paid:,}", _delta_count(now.paid, before.paid, show), border=True)
    row[2].metric(
        "Average top-up",
        _money_or_dash(now.average_cents),
        _avg_delta(now, before, show),
        border=True,
        help=plain(_exact(now.average_cents, before.average_cents, show)) or None,
    )
    row[3].metric(
        "Payment success",
        _rate(now.success_rate),
        _rate_delta(now, before, show),
        border=True,
        help="Paid top-ups per order created in the period.",
    )
    row = st.columns(4)
    _money_metric(row[0], "Fees collected", now.fee_cents, before.fee_cents, show)
    _money_metric(row[1], "Charged (top-ups + fees)", now.total_cents, before.total_cents, show)
    _money_metric(
        row[2],
        "Refunded",
        now.refunded_cents,
        before.refunded_cents,
        show,
        note=f"{now.refund_count:,} refunds made in the period.",
        delta_color="inverse",
    )
    _money_metric(row[3], "Net charged", now.net_cents, before.net_cents, show, note="Charged less refunded.")


def _money_or_dash(cents: int | None) -> str:
    return "—" if cents is None else money.format_compact(cents)


def _avg_delta(now: Totals, before: Totals, show: bool) -> str | None:
    if not show or now.average_cents is None or before.average_cents is None:
        return None
    return _delta_cents(now.average_cents, before.average_cents, show)


def _rate_delta(now: Totals, before: Totals, show: bool) -> str | None:
    if not show or now.success_rate is None or before.success_rate is None:
        return None
    return f"{(now.success_rate - before.success_rate) * 100:+.1f} pts"


def _trend(report: RevenueReport) -> None:
    if report.series.empty:
        st.info("No paid top-ups match these filters.", icon=":material/search_off:")
        return
    bucket = report.filters.bucket
    st.plotly_chart(charts.revenue_by_plan(report.series, bucket), key="revenue_chart")
    table = reports.revenue_table(report.series)
    labels = [reports.period_label(r.period, r.period_end, r.partial, bucket) for r in table.itertuples()]
    cut = [label for label, partial in zip(labels, table["partial"], strict=True) if partial]
    if cut:
        st.caption(plain(f"Lighter bars are {bucket}s the range cuts, so they are not whole: {'; '.join(cut)}."))
    shown = pd.DataFrame({"Period": labels})
    for plan in reports.PLANS:
        shown[charts.PLAN_LABELS[plan]] = table[plan].map(money.format_cents)
    shown["Total"] = table["total_cents"].map(money.format_cents)
    shown["Top-ups"] = table["topups"].map("{:,}".format)
    with st.expander("The figures behind the chart", icon=":material/table:"):
        st.dataframe(shown, hide_index=True, key="revenue_table")
        st.download_button(
            "Download CSV",
            to_csv_bytes(reports.revenue_csv_rows(report)),
            file_name=reports.csv_file_name(report),
            mime="text/csv",
            icon=":material/download:",
            key="revenue_csv",
        )


def _breakdowns(report: RevenueReport) -> None:
    mix, methods, kinds = st.columns([4, 5, 3])  # the methods table has a fees column more
    with mix:
        st.plotly_chart(charts.plan_mix(report.plans), key="plan_mix")
        st.dataframe(_share_table(report.plans, "plan", charts.PLAN_LABELS, "Plan"), hide_index=True)
    with methods:
        st.plotly_chart(charts.method_split(report.methods), key="method_split")
        table = _share_table(report.methods, "method", charts.METHOD_LABELS, "Method")
        st.dataframe(table.assign(Fees=report.methods["fee_cents"].map(money.format_cents)), hide_index=True)
    with kinds:
        st.markdown("**New vs returning**")
        st.caption("A top-up is new when it is the customer's first paid one.")
        for row in report.kinds.itertuples():
            st.metric(
                f"{KIND_LABELS[row.kind]} customers",
                money.format_compact(int(row.revenue_cents)),
                f"{int(row.topups):,} top-ups · {row.revenue_share:.0%} of revenue",
                delta_color="off",
                delta_arrow="off",
                help=plain(f"Exactly {money.format_cents(int(row.revenue_cents))}."),
            )


def _share_table(frame: pd.DataFrame, key: str, labels: dict, title: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            title: frame[key].map(labels),
            "Revenue": frame["revenue_cents"].map(money.format_cents),
            "Share": frame["revenue_share"].map("{:.1%}".format),
            "Top-ups": frame["topups"].map("{:,}".format),
        }
    )


def _top_customers(ctx: PageContext, report: RevenueReport, version: int) -> None:
    first, last = report.top_months
    st.subheader("Top customers")
    st.caption(
        f"By amount charged in whole UTC months {first:%b %Y} – {last:%b %Y}; plan, method, country "
        "and new/returning filters do not apply here."
    )
    top = _top(ctx.settings.database_url, ctx.actor, first, last, version)
    st.dataframe(
        pd.DataFrame(
            {
                "Customer": top["customer"],
                "Email": top["email"],
                "Country": top["country"],
                "Top-ups": top["topups"].map("{:,}".format),
                "Charged": top["total_cents"].map(money.format_cents),
                "Top-up amount": top["amount_cents"].map(money.format_cents),
            }
        ),
        hide_index=True,
        key="top_customers",
    )


def _pricing_whatif(ctx: PageContext, filters: Filters) -> None:
    with st.expander("Pricing what-if over these orders", icon=":material/compare:"):
        st.caption(
            "Prices every paid order of the period again under a proposed pricing. Orders the proposal "
            "would refuse (an amount or method it does not accept) count as lost. The new/returning "
            "filter does not apply."
        )
        proposal = _shared.whatif_pricing(ctx.settings, "rev_whatif", height=220)
        if proposal is None:
            return
        if not st.toggle("Compute the what-if", key="rev_whatif_on"):
            return
        with ctx.database.session() as session:
            frame = reports.pricing_whatif(session, ctx.actor, filters, proposal)
        if frame.empty:
            st.info("No paid orders in the period.")
            return
        st.dataframe(
            pd.DataFrame(
                {
                    "Plan": frame["plan"].map(charts.PLAN_LABELS),
                    "Orders": frame["orders"].map("{:,}".format),
                    "Refused": frame["refused"].map("{:,}".format),
                    "Fees now": frame["fee_now"].map(money.format_cents),
                    "Fees what-if": frame["fee_then"].map(money.format_cents),
                    "Δ fees": frame["fee_diff"].map(signed_cents),
                    "Charged now": frame["charged_now"].map(money.format_cents),
                    "Charged what-if": frame["charged_then"].map(money.format_cents),
                    "Δ charged": frame["charged_diff"].map(signed_cents),
                    "Δ credits": frame["credits_diff"].map(_shared.signed_credits),
                }
            ),
            hide_index=True,
            key="whatif_table",
        )


if __name__ == "__main__":
    _shared.hand_over_to_router()
