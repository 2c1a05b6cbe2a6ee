"""Plotly figures for the Revenue page: pure functions from report frames to figures, no I/O."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

# One colour per plan, the same in every chart; Pro (most popular) gets the strongest.
PLAN_COLOURS = {
    "study": "#9ecae1",
    "standard": "#4292c6",
    "pro": "#08519c",
    "max": "#f16913",
    "custom": "#a1a1a1",
}
METHOD_COLOURS = {"stripe": "#635bff", "airwallex": "#ff4f40", "alipay": "#1677ff"}
PLAN_LABELS = {"study": "Study", "standard": "Standard", "pro": "Pro", "max": "Max", "custom": "Custom"}
METHOD_LABELS = {"stripe": "Stripe", "airwallex": "Airwallex", "alipay": "Alipay"}
_LAYOUT = {
    "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
    "legend": {"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0},
    "plot_bgcolor": "rgba(0,0,0,0)",
}
_DAY_MS = 86_400_000
_PARTIAL_OPACITY = 0.45  # a period the range cuts is drawn lighter: its figures are not a whole period's


def _span(first, last, partial: bool, bucket: str) -> str:
    if bucket == "day":
        return f"{first:%d %b %Y}"
    return f"{first:%d %b} – {last:%d %b %Y}" + (f" (partial {bucket})" if partial else "")


def _dollars(cents: pd.Series) -> list[float]:
    """Cents to dollars for plotting only; tables and exports keep exact cents."""
    return [int(c) / 100 for c in cents]


def revenue_by_plan(series: pd.DataFrame, bucket: str = "day") -> go.Figure:
    """Stacked bars: top-up revenue per period, one colour per plan. Each bar spans the days of its
    period that are in the range (a week cut to a Thursday start starts on the Thursday), and the
    periods the range cuts are lighter."""
    figure = go.Figure()
    for plan, label in PLAN_LABELS.items():
        rows = series[series["plan"] == plan]
        if rows.empty:
            continue
        periods = list(zip(rows["period"], rows["period_end"], rows["partial"], strict=True))
        days = [(last - first).days + 1 for first, last, _ in periods]
        figure.add_bar(
            x=[str(first) for first, _, _ in periods],
            y=_dollars(rows["revenue_cents"]),
            name=label,
            width=[0.8 * n * _DAY_MS for n in days],
            offset=[0.1 * n * _DAY_MS for n in days],  # drawn from the period's first day, not centred on it
            marker={"color": PLAN_COLOURS[plan], "opacity": [_PARTIAL_OPACITY if cut else 1.0 for *_, cut in periods]},
            customdata=[(int(n), _span(*period, bucket)) for n, period in zip(rows["topups"], periods, strict=True)],
            hovertemplate=f"{label}<br>%{{customdata[1]}}<br>$%{{y:,.2f}} from %{{customdata[0]:,}} top-ups"
            "<extra></extra>",
        )
    figure.update_layout(
        barmode="stack",
        title={"text": f"Top-up revenue by plan, per {bucket}", "x": 0},
        yaxis={"title": "USD", "tickprefix": "$", "separatethousands": True, "gridcolor": "#e5e5e5"},
        xaxis={"type": "date"},
        height=420,
        **_LAYOUT,
    )
    return figure


def _donut(frame: pd.DataFrame, key: str, labels: dict, colours: dict, title: str) -> go.Figure:
    frame = frame[frame["revenue_cents"] > 0]
    figure = go.Figure(
        go.Pie(
            labels=[labels.get(k, k) for k in frame[key]],
            values=_dollars(frame["revenue_cents"]),
            marker={"colors": [colours.get(k, "#999999") for k in frame[key]]},
            hole=0.55,
            sort=False,
            textinfo="label+percent",
            hovertemplate="%{label}: $%{value:,.2f} (%{percent})<extra></extra>",
        )
    )
    figure.update_layout(title={"text": title, "x": 0}, showlegend=False, height=320, **_LAYOUT)
    return figure


def plan_mix(plans: pd.DataFrame) -> go.Figure:
    """Share of top-up revenue per plan."""
    return _donut(plans, "plan", PLAN_LABELS, PLAN_COLOURS, "Plan mix (revenue)")


def method_split(methods: pd.DataFrame) -> go.Figure:
    """Share of top-up revenue per payment method."""
    return _donut(methods, "method", METHOD_LABELS, METHOD_COLOURS, "Payment methods (revenue)")
