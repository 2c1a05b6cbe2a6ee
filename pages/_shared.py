"""UI pieces every page shares: the cached database, who is acting, the page guard, money in tables.

Files in ``pages/`` define functions only. Streamlit can execute one of them as a script on its own
(see ``hand_over_to_router``); then the file's only act is to run app.py, which decides who you are.
"""

from __future__ import annotations

import re
import runpy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pandas as pd
import streamlit as st

from billing_core.access.identity import actor_for, email_of, refusal_of
from billing_core.access.roles import Action, Actor, Role, may, may_open, pages_for
from billing_core.core.config import Settings, load_settings
from billing_core.core.db import Database
from billing_core.core.errors import BillingError, ConfigError
from billing_core.core.money import format_cents, format_credits
from billing_core.credits import approvals
from billing_core.orders.sandbox import AuditRow, LedgerRow, OrderRow
from billing_core.pricing import whatif
from billing_core.pricing.catalog import MAX_FILE_CHARS, Pricing
from billing_core.pricing.whatif import ComparisonRow, Side

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"
ROLE_KEY = "local_role"
ROLE_WIDGET_KEY = "local_role_picker"
LOCAL_MODE_BANNER = "Local mode — identity chosen here, not signed in"
NO_SIGN_IN = "No access: sign-in is not configured; set BILLING_LOCAL_MODE=1 for local mode."
NOT_SIGNED_IN = "Sign in first: this page is for signed-in staff only."
PAGE_TITLES = {
    "simulator": "Top-up simulator",
    "orders": "Orders",
    "customers": "Customers",
    "revenue": "Revenue",
    "invoices": "Invoices",
    "audit": "Audit log",
    "credits": "Credits",
    "approvals": "Approvals",
}
_MODE_COLOURS = {"SIMULATED": "blue", "TEST": "orange", "LIVE": "red"}


@dataclass(frozen=True)
class PageContext:
    settings: Settings
    database: Database
    actor: Actor


def hand_over_to_router() -> None:
    """Run app.py in place of a page file that Streamlit executed as a script.

    While a ``pages/`` folder exists, a fresh Streamlit process (and AppTest on every rerun) maps a
    URL such as /simulator straight to pages/simulator.py and runs it without app.py, until some
    session has called st.navigation. Skipping the router would skip the identity and role checks,
    so the page file hands over: app.py runs, registers the pages this actor may open, and
    st.navigation runs the requested page only if it is one of them.
    """
    runpy.run_path(str(APP_FILE), run_name="__main__")


@st.cache_resource(show_spinner="Preparing the database…")
def database(url: str) -> Database:
    """One Database per URL per process, migrated to the newest schema once."""
    db = Database(url)
    db.migrate()
    return db


def settings_or_stop(*, alone: bool = False) -> Settings:
    """Settings, or their error and a stop; ``alone`` (the router) shows it as the only page."""
    try:
        return load_settings()
    except ConfigError as exc:
        message = str(exc)
    if alone:
        show_alone(refusal(message, ":material/settings_alert:"))
    st.error(message, icon=":material/settings_alert:")
    st.stop()
    raise AssertionError  # st.stop() raises; this line only tells type checkers so


def show_alone(render: Callable[[], None]) -> NoReturn:
    """Run ``render`` as the app's one and only page, then stop the router.

    Registering a page, rather than stopping before st.navigation, keeps Streamlit from listing
    the files in pages/ to people who may open none of them; any other URL is "page not found".
    """
    st.navigation([st.Page(render, title="Billing Ops", url_path="welcome")], position="hidden").run()
    st.stop()
    raise AssertionError  # st.stop() raises


def refusal(message: str, icon: str = ":material/lock:") -> Callable[[], None]:
    """A page that says why nothing else is shown."""

    def page() -> None:
        st.title("Billing Ops")
        st.error(message, icon=icon)

    return page


def current_actor(settings: Settings) -> Actor | None:
    """The acting person: the signed-in user with the role config maps them to, or in local mode
    the configured email with the role picked in the sidebar; None for anybody else."""
    if settings.local_mode:
        role = st.session_state.get(ROLE_KEY) or settings.local_default_role
        return Actor(settings.local_email, Role(role), "Local user")
    if settings.sign_in is not None and st.user.is_logged_in:
        return actor_for(st.user.to_dict(), settings.roles)
    return None


def page_context(page: str) -> PageContext:
    """The guard at the top of every page: settings, database and actor, or a refusal and stop."""
    settings = settings_or_stop()
    actor = current_actor(settings)
    if actor is None:
        st.error(NO_SIGN_IN if settings.sign_in is None else NOT_SIGNED_IN, icon=":material/lock:")
        st.stop()
    if not may_open(actor, page):
        st.error(f"The {actor.role.value} role may not open the {PAGE_TITLES.get(page, page)} page.")
        st.stop()
    return PageContext(settings, database(settings.database_url), actor)


def signed_in_actor_or_stop(settings: Settings) -> Actor:
    """Single sign-on: a sign-in button for strangers, a "no access" page for people no role rule
    names, and for everyone else their actor, shown in the sidebar with a sign-out button."""
    sign_in = settings.sign_in
    assert sign_in is not None
    if not st.user.is_logged_in:

        def sign_in_page() -> None:
            st.title("Billing Ops")
            st.info("Billing Ops is for the company's staff. Sign in to continue.", icon=":material/lock:")
            if st.button(f"Sign in with {sign_in.provider_name}", type="primary", icon=":material/login:"):
                st.login()

        show_alone(sign_in_page)
    claims = st.user.to_dict()
    actor = actor_for(claims, settings.roles)
    if actor is None:

        def no_access_page() -> None:
            st.title("No access")
            refused = refusal_of(claims)
            if refused is not None:
                st.error(plain(refused), icon=":material/block:")
            else:
                st.error(
                    f"You are signed in as {plain(email_of(claims))}, but no role in Billing Ops is assigned to "
                    "it. Ask an administrator to add you to the access settings.",
                    icon=":material/block:",
                )
            sign_out_button()

        show_alone(no_access_page)
    with st.sidebar:
        st.markdown(f"**{plain(actor.name or actor.email)}** · {actor.role.value}")
        st.text(actor.email)  # as text: markdown would turn it into a mailto link
        sign_out_button()
    return actor


def sign_out_button() -> None:
    if st.button("Sign out", icon=":material/logout:", key="sign_out"):
        st.logout()


def identity_sidebar(settings: Settings) -> Actor:
    """Local-mode identity: the banner on every page and the role picker in the sidebar."""
    st.warning(LOCAL_MODE_BANNER, icon=":material/badge:")
    roles = [role.value for role in Role]
    chosen = st.session_state.get(ROLE_KEY) or settings.local_default_role
    with st.sidebar:
        st.markdown(f"**Local user** · {plain(settings.local_email)}")
        # The choice lives under ROLE_KEY, apart from the widget: the router's widgets change
        # identity when Streamlit runs app.py from a page file (see hand_over_to_router), and a
        # widget whose identity changes starts again from `index`.
        st.selectbox(
            "Role (local mode)",
            roles,
            index=roles.index(chosen),
            key=ROLE_WIDGET_KEY,
            on_change=_remember_role,
            help="Local mode: pick the role to act as. Every change is audited with it.",
        )
    st.session_state[ROLE_KEY] = chosen
    actor = current_actor(settings)
    assert actor is not None
    return actor


def _remember_role() -> None:
    st.session_state[ROLE_KEY] = st.session_state[ROLE_WIDGET_KEY]


def status_sidebar(settings: Settings, db: Database) -> None:
    with st.sidebar:
        st.divider()
        st.caption("Database")
        st.code(db.describe(), language=None, wrap_lines=True)
        mode = settings.stripe_mode
        st.badge(f"Payments: {mode}", color=_MODE_COLOURS[mode], icon=":material/credit_card:")


def approvals_sidebar(actor: Actor, db: Database) -> None:
    """How many proposals wait for a decision, for the roles that decide (an index range)."""
    if not may(actor, Action.APPROVE_CHANGES):
        return
    with db.session() as session:
        waiting = approvals.waiting_count(session, actor)
    with st.sidebar:
        st.badge(f"Approvals waiting: {waiting:,}", color="orange" if waiting else "gray", icon=":material/approval:")


def no_page_yet() -> None:
    """For a role whose pages are all still to come: say which they will be, plainly."""
    settings = settings_or_stop()
    actor = current_actor(settings)
    if actor is None:
        st.error(NO_SIGN_IN if settings.sign_in is None else NOT_SIGNED_IN, icon=":material/lock:")
        return
    titles = ", ".join(PAGE_TITLES.get(page, page) for page in pages_for(actor)) or "none"
    st.title("Billing Ops")
    st.info(
        f"The {actor.role.value} role will have these pages: {titles}. None of them is available yet.",
        icon=":material/construction:",
    )


# --- money in tables: formatted here, computed in billing_core ---------------------------------


def signed_cents(cents: int | None) -> str:
    if cents is None:
        return "—"
    return ("+" if cents > 0 else "") + format_cents(cents)


def signed_credits(hundredths: int | None) -> str:
    if hundredths is None:
        return "—"
    return ("+" if hundredths > 0 else "") + format_credits(hundredths)


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


# --- text from people and files in markdown-rendering elements ---------------------------------

_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~:$&=\"'")
# GitHub-flavoured markdown turns www.x, http://x and a@b.c into live links after escapes are
# resolved, so escaping cannot stop it; an invisible word joiner where each starts does.
_JOINER = "\u2060"
_AUTOLINK_STARTS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)|(?<=@)")


def plain(text: object) -> str:
    """Text for st.error/st.warning/st.caption shown exactly as written: every markdown, math ($),
    directive (:red[...]) and shortcode character is escaped, so a customer's name stays a name,
    and a URL or email address in it stays text, never a link."""
    unlinked = _AUTOLINK_STARTS.sub(_JOINER, str(text))
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in unlinked)


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
