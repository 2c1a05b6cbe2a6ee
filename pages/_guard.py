"""The access guard every page passes: settings, the cached database, who is acting, the role check.

Files in ``pages/`` define functions only. Streamlit can execute one of them as a script on its own
(see ``hand_over_to_router``); then the file's only act is to run app.py, which decides who you are.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import streamlit as st

from billing_core.access.identity import actor_for, email_of, refusal_of
from billing_core.access.roles import PAGES, Action, Actor, Role, may, may_open, pages_for
from billing_core.core.config import Settings, load_settings
from billing_core.core.db import Database
from billing_core.core.errors import ConfigError
from billing_core.credits import approvals
from pages._text import plain

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"
ROLE_KEY = "local_role"
ROLE_WIDGET_KEY = "local_role_picker"
LOCAL_MODE_BANNER = "Local mode — identity chosen here, not signed in"
NO_SIGN_IN = "No access: sign-in is not configured; set BILLING_LOCAL_MODE=1 for local mode."
NOT_SIGNED_IN = "Sign in first: this page is for signed-in staff only."
REFUSED_TITLE = "Not for your role"
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
        st.error(not_allowed(actor, page), icon=":material/block:")
        st.stop()
    return PageContext(settings, database(settings.database_url), actor)


def not_allowed(actor: Actor, page: str) -> str:
    title = PAGES[page].title if page in PAGES else page
    return f"The {actor.role.value} role may not open the {title} page."


def refused_page(actor: Actor, page: str, first: st.Page) -> None:
    """What a page's address shows to a role that may not open it: why, and the way to its own first page.

    The router registers these (hidden) rather than leaving the address unknown: Streamlit's own
    "page not found" runs the default page, whose switch to the first page can clear the notice
    before it reaches the browser, so the person would land on another page without a word.
    """
    st.title(REFUSED_TITLE)
    st.error(not_allowed(actor, page), icon=":material/block:")
    st.page_link(first, label=f"Open {first.title}", icon=first.icon or None)


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


def open_first(page: st.Page) -> None:
    """The start page at "/": open the role's first page, keeping the link's query (``/?order=…``)."""
    st.switch_page(page, query_params=st.query_params.to_dict())


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
    titles = ", ".join(PAGES[page].title for page in pages_for(actor)) or "none"
    st.title("Billing Ops")
    st.info(
        f"The {actor.role.value} role will have these pages: {titles}. None of them is available yet.",
        icon=":material/construction:",
    )


if __name__ == "__main__":
    hand_over_to_router()
