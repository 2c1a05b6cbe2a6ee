"""Widgets and tables more than one page shows: the sandbox's orders, ledger and events, the pricing what-if.

Only functions (see ``_guard.hand_over_to_router``).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import streamlit as st

from billing_core.core.config import Settings
from billing_core.core.errors import BillingError
from billing_core.core.money import format_cents, format_credits
from billing_core.orders.sandbox import AuditRow, LedgerRow, OrderRow
from billing_core.pricing import whatif
from billing_core.pricing.catalog import MAX_FILE_CHARS, Pricing
from billing_core.pricing.whatif import ComparisonRow, Side
from pages._guard import hand_over_to_router
from pages._text import plain, signed_cents, signed_credits


def _side(prefix: str, side: Side) -> dict[str, str]:
    if not side.ok:
        return {f"{prefix} credits": "—", f"{prefix} fee": "—", f"{prefix} total": "—", f"{prefix} note": side.refusal}
    return {
        f"{prefix} credits": format_credits(side.credits),
        f"{prefix} fee": format_cents(side.fee_cents),
        f"{prefix} total": format_cents(side.total_cents),
        f"{prefix} note": "",
    }


def whatif_frame(rows: Iterable[ComparisonRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"Amount": format_cents(r.amount_cents), "Plan": r.label}
            | _side("Current", r.current)
            | _side("What-if", r.whatif)
            | {
                "Δ credits": signed_credits(r.credits_diff),
                "Δ fee": signed_cents(r.fee_diff),
                "Δ total": signed_cents(r.total_diff),
            }
            for r in rows
        ]
    )


def orders_frame(rows: Iterable[OrderRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Order": r.public_id,
                "Created (UTC)": f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                "Plan": r.plan,
                "Method": r.method,
                "Amount": format_cents(r.amount_cents),
                "Fee": format_cents(r.fee_cents),
                "Total": format_cents(r.total_cents),
                "Credits": format_credits(r.credits),
                "Status": r.status.value,
                "Invoice": r.invoice_number or "—",
                "Provider ref": r.provider_ref or "—",
            }
            for r in rows
        ]
    )


def ledger_frame(rows: Iterable[LedgerRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "When (UTC)": f"{r.at:%Y-%m-%d %H:%M:%S}",
                "Kind": r.kind,
                "Credits": signed_credits(r.credits),
                "Order": r.order_public_id or "—",
                "By": r.created_by,
            }
            for r in rows
        ]
    )


def events_frame(rows: Iterable[AuditRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "When (UTC)": f"{r.at:%Y-%m-%d %H:%M:%S}",
                "Action": r.action,
                "Order": r.order_public_id,
                "Who": f"{r.actor_email} ({r.actor_role})",
                "Reason": r.reason or "",
            }
            for r in rows
        ]
    )


def whatif_pricing(settings: Settings, key: str, height: int = 300) -> Pricing | None:
    """A proposed pricing, uploaded as a TOML file or edited from the current one; None (with the
    reason shown) while it does not parse."""
    uploaded = st.file_uploader("Upload a what-if pricing (.toml)", type=["toml"], key=f"{key}_file")
    try:
        if uploaded is not None:
            text, source = whatif.uploaded_text(uploaded.getvalue(), uploaded.name), uploaded.name
            st.caption(f"Using the uploaded file {plain(uploaded.name)}; remove it to edit the text instead.")
        else:
            if f"{key}_text" not in st.session_state:
                st.session_state[f"{key}_text"] = whatif.pricing_file_text(settings.pricing_file)
            text = st.text_area("What-if pricing (TOML)", key=f"{key}_text", height=height, max_chars=MAX_FILE_CHARS)
            source = "the edited what-if pricing"
    except BillingError as exc:
        st.error(plain(exc), icon=":material/error:")
        return None
    parsed = _parsed_whatif(text, source)
    if isinstance(parsed, str):
        st.error(plain(parsed), icon=":material/error:")
        return None
    return parsed


@st.cache_data(max_entries=64, show_spinner=False)
def _parsed_whatif(text: str, source: str) -> Pricing | str:
    """The what-if pricing, or why it does not parse: parsed once per text (the cache is keyed by a
    hash of the content), not again on every rerun of the page."""
    try:
        return whatif.parse_whatif(text, source=source)
    except BillingError as exc:
        return str(exc)


if __name__ == "__main__":
    hand_over_to_router()
