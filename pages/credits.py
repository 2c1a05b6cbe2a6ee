"""Credits (finance): usage imports from the router's metering.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_shared.hand_over_to_router``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from billing_core.access import Action, may
from billing_core.credits import usage
from billing_core.errors import BillingError
from billing_core.money import format_credits
from pages import _shared
from pages._shared import PageContext, plain


def render() -> None:
    ctx = _shared.page_context("credits")
    st.title("Credits")
    (usage_tab,) = st.tabs(["Usage import"])
    with usage_tab:
        _usage(ctx)


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
        parsed = usage.parse_usage(uploaded.getvalue(), uploaded.name)
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
    _shared.hand_over_to_router()
